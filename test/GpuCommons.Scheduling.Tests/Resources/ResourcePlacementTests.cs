using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Tests.Support;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Resources;

/// <summary>
/// The engine checks every resource (docs/scheduling.md, "Resources"): cores and memory on every node, GPU models and
/// features, for shares, whole GPUs and gangs, in placement, in backfill reservations and across restarts.
/// </summary>
public sealed class ResourcePlacementTests
{
    /// <summary>Nodes n01.. of 8 GPUs with the given cores and memory (GiB); odd nodes are model "B" with feature "ib" when <paramref name="mixed"/>.</summary>
    private static Fleet Fleet(int nodes, int cpus, int memGiB, bool mixed = false, int? defCpusPerGpu = null)
    {
        var b = new FleetBuilder("r").AddPartition("p", "A", 1000);
        for (var i = 1; i <= nodes; i++)
        {
            var odd = mixed && i % 2 == 1;
            b.AddNode("p", $"n{i:D2}", 8, null, NodeState.Up, NodeResources.Create(cpus, memGiB * 1024L, odd ? ["ib"] : [], "node"), odd ? "B" : null);
        }

        if (defCpusPerGpu is not null)
        {
            b.SetPartitionDefaults("p", defCpusPerGpu, null);
        }

        return b.Build();
    }

    private static CheckedEngine Engine(Fleet fleet, SchedulerOptions? options = null) =>
        new(fleet, TenancyBuilder.Simple("proj"), options ?? new SchedulerOptions(), TenancyBuilder.Epoch);

    private static JobSpec Job(CheckedEngine e, long id, double gpus, int? cpusPerNode = null, long? memMiBPerNode = null, int? cpusPerGpu = null, double hours = 1) => new()
    {
        Id = id,
        Project = "proj",
        Gpus = gpus,
        CpusPerNode = cpusPerNode,
        CpusPerGpu = cpusPerGpu,
        MemoryMiBPerNode = memMiBPerNode,
        Walltime = TimeSpan.FromHours(hours),
        SubmitTime = e.Now,
    };

    [Fact]
    public void JobsWithTheSameRequest_ShareIt_AndKeepTheirOwnWalltimeClassAndTimes()
    {
        // The engine keeps one spec per distinct request (GPUs, nodes, cores, memory, models, features), not one per job.
        var e = Engine(Fleet(4, 64, 1024, mixed: true));
        e.Submit(Job(e, 1, 1) with { GpuModels = ["B"], Features = ["ib"] }).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 2, 1, hours: 5) with { GpuModels = new List<string> { "B" }, Features = ["ib"], Priority = PriorityClass.High, User = "other", Checkpointable = true }).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 3, 1) with { GpuModels = ["B"] }).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 4, 1) with { GpuModels = ["B"], Features = ["ib"], CpusPerGpu = 2 }).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 5, 2) with { GpuModels = ["B"], Features = ["ib"] }).Accepted.ShouldBeTrue();

        var shared = e.Engine.RequestForTests(1);
        e.Engine.RequestForTests(2).ShouldBeSameAs(shared);
        foreach (var other in new long[] { 3, 4, 5 })
        {
            e.Engine.RequestForTests(other).ShouldNotBeSameAs(shared);
        }

        // The shared spec carries no job's own fields; the engine reports each job's own.
        shared.Id.ShouldBe(0);
        shared.Walltime.ShouldBe(TimeSpan.Zero);
        e.Schedule();
        var one = e.Engine.GetJob(1)!;
        var two = e.Engine.GetJob(2)!;
        two.State.ShouldBe(JobState.Running);
        (e.Engine.EndByForTests(2) - two.Start!.Value).ShouldBe(TimeSpan.FromHours(5));
        (e.Engine.EndByForTests(1) - one.Start!.Value).ShouldBe(TimeSpan.FromHours(1));
        two.Priority.ShouldBeGreaterThan(one.Priority); // its own class, High
    }

    [Fact]
    public void HalfGpuJobsOf32Cores_NeverOversubscribeA64CoreNode()
    {
        // The case: eight 0.5-GPU jobs that each need 32 cores, on one node with 64.
        var e = Engine(Fleet(1, 64, 1024));
        for (var id = 1; id <= 8; id++)
        {
            e.Submit(Job(e, id, 0.5, cpusPerNode: 32)).Accepted.ShouldBeTrue();
        }

        e.Schedule().Started.Count.ShouldBe(2);
        e.RunningIds.Count().ShouldBe(2);

        // One ends: exactly one more fits.
        e.Complete(e.RunningIds.First());
        e.Schedule().Started.Count.ShouldBe(1);
    }

    [Fact]
    public void AShare_GoesToTheNodeWithCoresLeft_NotTheBestFitGpu()
    {
        var e = Engine(Fleet(2, 16, 1024));
        e.Submit(Job(e, 1, 0.5, cpusPerNode: 14)).Accepted.ShouldBeTrue();
        e.Schedule();
        var first = e.NodesOf(1)[0];

        // Best fit by GPU alone would put it on the half-used GPU of the first node, which has 2 cores left.
        e.Submit(Job(e, 2, 0.5, cpusPerNode: 4)).Accepted.ShouldBeTrue();
        e.Schedule();
        e.NodesOf(2)[0].ShouldNotBe(first);
    }

    [Fact]
    public void MemoryBinds_LikeCores()
    {
        var e = Engine(Fleet(1, 128, 100));
        e.Submit(Job(e, 1, 1, memMiBPerNode: 60 * 1024)).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 2, 1, memMiBPerNode: 60 * 1024)).Accepted.ShouldBeTrue();
        e.Schedule().Started.Count.ShouldBe(1);
        e.Reason(2).ShouldBe(PendingReason.Reserved);
    }

    [Fact]
    public void GpuModelAndFeatures_PickOnlyEligibleNodes()
    {
        var e = Engine(Fleet(4, 64, 512, mixed: true));
        e.Submit(Job(e, 1, 1) with { GpuModels = ["B"] }).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 2, 1) with { Features = ["ib"] }).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 3, 8) with { GpuModels = ["a"] }).Accepted.ShouldBeTrue();
        e.Schedule().Started.Count.ShouldBe(3);
        e.NodesOf(1)[0].ShouldBeOneOf("n01", "n03");
        e.NodesOf(2)[0].ShouldBeOneOf("n01", "n03");
        e.NodesOf(3)[0].ShouldBeOneOf("n02", "n04");
    }

    [Fact]
    public void Gangs_TakeOnlyNodesOfTheirModel()
    {
        var e = Engine(Fleet(4, 64, 512, mixed: true));
        e.Submit(Job(e, 1, 16) with { GpuModels = ["B"] }).Accepted.ShouldBeTrue();
        e.Schedule().Started.Count.ShouldBe(1);
        e.NodesOf(1).Order().ShouldBe(["n01", "n03"]);

        // Two more B nodes are not there: the next B gang waits, an A gang starts.
        e.Submit(Job(e, 2, 16) with { GpuModels = ["B"] }).Accepted.ShouldBeTrue();
        e.Submit(Job(e, 3, 16) with { GpuModels = ["A"] }).Accepted.ShouldBeTrue();
        e.Schedule();
        e.IsRunning(2).ShouldBeFalse();
        e.NodesOf(3).Order().ShouldBe(["n02", "n04"]);
    }

    [Fact]
    public void AJobNoNodeCouldEverHold_IsRefusedNamingTheField()
    {
        var e = Engine(Fleet(2, 64, 512, mixed: true));
        var cores = e.Submit(Job(e, 1, 1, cpusPerGpu: 100));
        cores.Accepted.ShouldBeFalse();
        cores.Error!.Field.ShouldBe("cpusPerGpu");

        var model = e.Submit(Job(e, 2, 1) with { GpuModels = ["H200"] });
        model.Accepted.ShouldBeFalse();
        model.Error!.Field.ShouldBe("gpuModels");

        var feature = e.Submit(Job(e, 3, 1) with { Features = ["nvme"] });
        feature.Accepted.ShouldBeFalse();
        feature.Error!.Field.ShouldBe("features");
    }

    [Fact]
    public void BackfillReservation_CountsCores()
    {
        // Cores run out before GPUs: the blocked job's reservation is when the job holding the cores ends, and a short
        // job that would take the cores it waits for does not start ahead of it.
        var e = Engine(Fleet(1, 32, 1024));
        e.Submit(Job(e, 1, 1, cpusPerNode: 30, hours: 2)).Accepted.ShouldBeTrue();
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue();
        e.Submit(Job(e, 2, 1, cpusPerNode: 16, hours: 1)).Accepted.ShouldBeTrue();
        e.Schedule();
        e.IsRunning(2).ShouldBeFalse();
        e.Reason(2).ShouldBe(PendingReason.Reserved);
        e.View(2).EstimatedStart.ShouldBe(TenancyBuilder.Epoch.AddHours(2));

        e.Complete(1);
        e.Schedule().Started.Select(s => s.JobId).ShouldBe([2L]);
    }

    [Fact]
    public void RestoreRunning_RefusesAPlacementBeyondTheNodesCores()
    {
        var e = Engine(Fleet(1, 16, 1024));
        var slots = new[] { new GpuSlot(0, 0, 1000) };
        e.Engine.RestoreRunning(Job(e, 1, 1, cpusPerNode: 10), slots, e.Now, null).Accepted.ShouldBeTrue();
        var second = e.Engine.RestoreRunning(Job(e, 2, 1, cpusPerNode: 10), [new GpuSlot(0, 1, 1000)], e.Now, null);
        second.Accepted.ShouldBeFalse();
        second.Error!.Field.ShouldBe("placement");
        e.Engine.VerifyInvariants().ShouldBeNull();
    }

    [Fact]
    public void WholeGpuJobsWithinTheDefault_PlaceAsOnAFleetWithoutCores()
    {
        // GPU-only whole-GPU jobs: the derived default (8 cores per GPU here) never binds; best fit as before.
        var tracked = Engine(Fleet(3, 64, 1024));
        var untracked = new CheckedEngine(TestFleets.Flat(3, 8), TenancyBuilder.Simple("proj"), new SchedulerOptions(), TenancyBuilder.Epoch);
        double[] sizes = [3, 1, 4, 1, 5, 2, 6, 2];
        for (var i = 0; i < sizes.Length; i++)
        {
            tracked.Submit(Job(tracked, i + 1, sizes[i]));
            untracked.Submit(Job(untracked, i + 1, sizes[i]));
        }

        tracked.Schedule();
        untracked.Schedule();
        tracked.Starts.Select(s => s.Placement.Format(tracked.Fleet)).ShouldBe(untracked.Starts.Select(s => s.Placement.Format(untracked.Fleet)));
    }

    [Fact]
    public void FragmentationAware_PutsACoreHungryShareWhereCoresAreToSpare()
    {
        // Two nodes: n01 has few cores per GPU, n02 many. A share that needs many cores goes where it strands no GPU.
        var b = new FleetBuilder("r").AddPartition("p", "A", 1000);
        b.AddNode("p", "n01", 8, null, NodeState.Up, NodeResources.Create(32, 512 * 1024L, null, "n01"), null);
        b.AddNode("p", "n02", 8, null, NodeState.Up, NodeResources.Create(256, 512 * 1024L, null, "n02"), null);
        var e = Engine(b.Build());
        long id = 0;

        // A workload of small shares of 4 cores, then one share of 24 cores.
        for (var i = 0; i < 4; i++)
        {
            e.Submit(Job(e, ++id, 0.25, cpusPerNode: 4));
        }

        e.Schedule();
        e.Submit(Job(e, ++id, 0.25, cpusPerNode: 24));
        e.Schedule();
        e.NodesOf(id)[0].ShouldBe("n02");

        var best = Engine(b.Build(), new SchedulerOptions { FragmentationAware = false });
        for (var i = 1; i <= 5; i++)
        {
            best.Submit(Job(best, i, 0.25, cpusPerNode: i == 5 ? 24 : 4));
            best.Schedule();
        }

        best.RunningIds.Count().ShouldBe(5);
    }

    [Fact]
    public void FragmentationAware_AWholeGpuJobThatStatesItsCores_IsPlacedByFragmentation_AGpuOnlyOneByBestFit()
    {
        // n01 has 40 cores for 8 GPUs (the partition's default: 5 per GPU), n02 256. A GPU-only job takes a GPU of n01
        // by best fit, and a job of 32 cores goes to n02. A job that states 5 cores, the default, fits both; on n01 it
        // would leave 30 cores, too few for another 32-core job, so it goes to n02. The same job asking for GPUs only
        // (it gets the same 5 cores) is placed as on a fleet without cores: best fit, n01, listed first among the nodes
        // with 7 GPUs free.
        string Place(int? cpus)
        {
            var b = new FleetBuilder("r").AddPartition("p", "A", 1000);
            b.AddNode("p", "n01", 8, null, NodeState.Up, NodeResources.Create(40, 512 * 1024L, null, "n01"), null);
            b.AddNode("p", "n02", 8, null, NodeState.Up, NodeResources.Create(256, 512 * 1024L, null, "n02"), null);
            var e = Engine(b.Build());
            e.Fleet.Partitions[0].DefCpusPerGpu.ShouldBe(5);
            e.Submit(Job(e, 1, 1));
            e.Schedule();
            e.NodesOf(1)[0].ShouldBe("n01");
            e.Submit(Job(e, 2, 1, cpusPerNode: 32));
            e.Schedule();
            e.NodesOf(2)[0].ShouldBe("n02");
            e.Submit(Job(e, 3, 1, cpusPerNode: cpus));
            e.Schedule();
            return e.NodesOf(3)[0];
        }

        Place(cpus: 5).ShouldBe("n02");
        Place(cpus: null).ShouldBe("n01");
    }

    [Fact]
    public void FragmentationAware_ScoresAFreeNodeOfEachSize()
    {
        // Two free nodes of 8 GPUs: n01 with 32 cores, n02 with 256. Best fit takes the first free node; a 24-core
        // job there would leave 8 cores, too few for another like it, so fragmentation-aware placement takes n02.
        string Place(bool fragmentationAware)
        {
            var b = new FleetBuilder("r").AddPartition("p", "A", 1000);
            b.AddNode("p", "n01", 8, null, NodeState.Up, NodeResources.Create(32, 512 * 1024L, null, "n01"), null);
            b.AddNode("p", "n02", 8, null, NodeState.Up, NodeResources.Create(256, 512 * 1024L, null, "n02"), null);
            var e = Engine(b.Build(), new SchedulerOptions { FragmentationAware = fragmentationAware });
            e.Submit(Job(e, 1, 1, cpusPerNode: 24));
            e.Schedule();
            return e.NodesOf(1)[0];
        }

        Place(fragmentationAware: true).ShouldBe("n02");
        Place(fragmentationAware: false).ShouldBe("n01");
    }
}
