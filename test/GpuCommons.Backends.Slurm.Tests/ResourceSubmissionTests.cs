using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

/// <summary>The cores and memory the engine placed reach sbatch exactly, and sinfo's features reach the fleet.</summary>
public class ResourceSubmissionTests
{
    [Fact]
    public void Create_PassesPlacedCoresAndMemoryPerNode()
    {
        var job = Jobs.Make(5, ["n1", "n2"], 8);
        job = job with { Nodes = job.Nodes.Select(n => n with { Cpus = 96, MemoryMiB = 1_048_576 }).ToList() };

        var s = SlurmSubmission.Create(job, new SlurmBackendOptions(), "gpu");

        s.Arguments.ShouldContain("--ntasks-per-node=1");
        s.Arguments.ShouldContain("--cpus-per-task=96");
        s.Arguments.ShouldContain("--mem=1048576M");
        // The step on every node takes the same placement (srun of Slurm 22.05 does not inherit --cpus-per-task).
        s.Script.ShouldContain("srun --export=ALL --ntasks-per-node=1 --kill-on-bad-exit=1 --gpus-per-node=8 --cpus-per-task=96 --mem=1048576M -- ");
    }

    [Fact]
    public void Create_NothingTracked_PassesNoCoresOrMemory()
    {
        var s = SlurmSubmission.Create(Jobs.Make(6, ["n1"], 1), new SlurmBackendOptions(), "gpu");
        s.Arguments.ShouldNotContain(a => a.StartsWith("--cpus-per-task", StringComparison.Ordinal) || a.StartsWith("--mem", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_DifferentCoresPerNode_IsRefused()
    {
        var job = Jobs.Make(8, ["n1", "n2"], 8);
        job = job with { Nodes = [job.Nodes[0] with { Cpus = 8 }, job.Nodes[1] with { Cpus = 16 }] };
        Should.Throw<ArgumentException>(() => SlurmSubmission.Create(job, new SlurmBackendOptions(), "gpu")).Message.ShouldContain("same cores and memory");
    }

    [Fact]
    public async Task Discover_CarriesCpusMemoryAndFeaturesIntoTheFleet()
    {
        var slurm = new FakeSlurm { Sinfo = "n1|gpu*|idle|112|2000000|gpu:b200:8|ib,nvme|none\nn2|gpu*|idle|112|2000000|gpu:b200:8|(null)|none\n" };
        await using var backend = new SlurmBackend(null, slurm, TimeProvider.System);
        var discovered = await backend.DiscoverAsync(default);
        var n1 = discovered.Nodes.Single(n => n.Name == "n1");
        (n1.Cpus, n1.MemoryMiB).ShouldBe((112, 2_000_000L));
        n1.Features.ShouldBe(["ib", "nvme"]);
        var fleet = SlurmFleet.ToFleet(discovered);
        var node = fleet.FindNode("n1")!;
        (node.Cpus, node.MemoryMiB, node.GpuModel).ShouldBe((112, 2_000_000L, "b200"));
        node.Features.ShouldBe(["ib", "nvme"]);
        fleet.FindNode("n2")!.Features.ShouldBeEmpty();
        fleet.Partitions[0].DefCpusPerGpu.ShouldBe(14);
    }
}
