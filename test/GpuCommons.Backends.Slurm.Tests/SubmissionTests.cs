using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

public class SubmissionTests
{
    [Fact]
    public void Create_MultiNodeGang_PinsNodesGpusTimeAndName()
    {
        var job = Jobs.Make(42, ["n1", "n2"], 8, TimeSpan.FromSeconds(90));

        var s = SlurmSubmission.Create(job, new SlurmBackendOptions(), "gpu");

        s.JobName.ShouldBe("gpuc-42");
        s.Arguments.ShouldContain("--job-name=gpuc-42");
        s.Arguments.ShouldContain("--nodelist=n1,n2");
        s.Arguments.ShouldContain("--nodes=2");
        s.Arguments.ShouldContain("--gpus-per-node=8");
        s.Arguments.ShouldContain("--time=2"); // minutes, rounded up
        s.Arguments.ShouldContain("--export=NONE");
        s.Arguments.ShouldContain("--no-requeue");
        s.Arguments.ShouldContain("--partition=gpu");
        s.Arguments.ShouldContain("--parsable");
        s.Arguments.ShouldContain("--output=/tmp/gpuc-test-logs/gpuc-42.out");
        s.StdoutPath.ShouldBe("/tmp/gpuc-test-logs/gpuc-42.out");
        s.Script.ShouldContain("exec srun --export=ALL --ntasks-per-node=1 --kill-on-bad-exit=1 --gpus-per-node=8 -- '/bin/true'");
    }

    [Fact]
    public void Create_SingleNode_ExecsCommandQuotedWithEnvironment()
    {
        var env = new Dictionary<string, string> { ["FOO"] = "it's $HOME", ["CUDA_VISIBLE_DEVICES"] = "7", ["SLURM_X"] = "1" };
        var job = Jobs.Make(7, ["n3"], 2, command: ["python", "-c", "print('hi')"], env: env, attempt: 2);

        var s = SlurmSubmission.Create(job, new SlurmBackendOptions(), null);

        s.JobName.ShouldBe("gpuc-7-r2");
        s.Arguments.ShouldNotContain(a => a.StartsWith("--partition", StringComparison.Ordinal));
        s.Script.ShouldStartWith("#!/bin/bash\n");
        s.Script.ShouldContain("export FOO='it'\\''s $HOME'\n");
        s.Script.ShouldNotContain("CUDA_VISIBLE_DEVICES"); // Slurm sets it for the GPUs it allocated
        s.Script.ShouldNotContain("SLURM_X");
        s.Script.ShouldContain("export PATH=");
        s.Script.ShouldContain("exec 'python' '-c' 'print('\\''hi'\\'')'\n");
        s.Script.ShouldNotContain("srun");
    }

    [Fact]
    public void Create_UnequalGpusPerNode_Throws()
    {
        var job = Jobs.Make(1, ["n1", "n2"], 8) with
        {
            Nodes = [new AssignedNode("n1", [0, 1], []), new AssignedNode("n2", [0], [])],
        };

        Should.Throw<ArgumentException>(() => SlurmSubmission.Create(job, new SlurmBackendOptions(), null)).Message.ShouldContain("same GPU count");
    }

    [Theory]
    [InlineData("n1,n2")]
    [InlineData("n[1-2]")]
    [InlineData("")]
    public void Create_BadNodeName_Throws(string node)
    {
        var job = Jobs.Make(1, [node], 1);
        Should.Throw<ArgumentException>(() => SlurmSubmission.Create(job, new SlurmBackendOptions(), null));
    }

    [Fact]
    public void Create_BadEnvironmentName_Throws()
    {
        var job = Jobs.Make(1, ["n1"], 1, env: new Dictionary<string, string> { ["A B"] = "x" });
        Should.Throw<ArgumentException>(() => SlurmSubmission.Create(job, new SlurmBackendOptions(), null));
    }
}
