using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Tests.Support;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Resources;

/// <summary>
/// A job whose GPUs would fit now, but not on a node with its cores, memory, GPU model or features free, says which
/// (<see cref="PendingReason.Cpus"/>, <see cref="PendingReason.Memory"/>, <see cref="PendingReason.GpuModel"/>,
/// <see cref="PendingReason.Features"/>); a job short of GPUs still says <see cref="PendingReason.Resources"/>.
/// </summary>
public sealed class ResourceReasonTests
{
    /// <summary>Nodes n01.. of 8 GPUs with the given cores and memory (GiB); odd nodes are model "B" with feature "ib", even ones model "A".</summary>
    private static Fleet Fleet(int nodes, int cpus, int memGiB)
    {
        var b = new FleetBuilder("r").AddPartition("p", "A", 1000);
        for (var i = 1; i <= nodes; i++)
        {
            var odd = i % 2 == 1;
            b.AddNode("p", $"n{i:D2}", 8, null, NodeState.Up, NodeResources.Create(cpus, memGiB * 1024L, odd ? ["ib"] : [], "node"), odd ? "B" : null);
        }

        return b.Build();
    }

    private static CheckedEngine Engine(Fleet fleet, BackfillMode backfill = BackfillMode.None) =>
        new(fleet, TenancyBuilder.Simple("proj"), new SchedulerOptions { Backfill = backfill }, TenancyBuilder.Epoch);

    private static JobSpec Job(CheckedEngine e, long id, double gpus, int? cpus = null, long? memGiB = null) => new()
    {
        Id = id,
        Project = "proj",
        Gpus = gpus,
        CpusPerNode = cpus,
        MemoryMiBPerNode = memGiB * 1024,
        Walltime = TimeSpan.FromHours(1),
        SubmitTime = e.Now,
    };

    [Fact]
    public void CoresTaken_GpusFree_SaysCpus()
    {
        var e = Engine(Fleet(1, 64, 1024));
        e.Submit(Job(e, 1, 1, cpus: 60));
        e.Schedule().Started.Count.ShouldBe(1);
        e.Submit(Job(e, 2, 1, cpus: 8));
        e.Schedule().Started.ShouldBeEmpty();
        e.Reason(2).ShouldBe(PendingReason.Cpus);
        PendingReasons.Code(e.Reason(2)).ShouldBe("cpus");
    }

    [Fact]
    public void WithEasyBackfill_TheFirstBlockedJobHoldsTheReservation_TheNextSaysCpus()
    {
        var e = Engine(Fleet(1, 64, 1024), BackfillMode.Easy);
        e.Submit(Job(e, 1, 1, cpus: 60));
        e.Schedule().Started.Count.ShouldBe(1);
        e.Submit(Job(e, 2, 1, cpus: 8));
        e.Submit(Job(e, 3, 1, cpus: 8));
        e.Schedule().Started.ShouldBeEmpty();
        e.Reason(2).ShouldBe(PendingReason.Reserved);
        e.Reason(3).ShouldBe(PendingReason.Cpus);

        // One that fits the 4 cores left, and ends before the reservation, starts.
        e.Submit(Job(e, 4, 1, cpus: 4) with { Walltime = TimeSpan.FromMinutes(30) });
        e.Schedule().Started.Select(s => s.JobId).ShouldBe([4L]);
    }

    [Fact]
    public void ShortOfGpus_SaysResources_EvenWhenCoresAreShortToo()
    {
        var e = Engine(Fleet(1, 64, 1024));
        e.Submit(Job(e, 1, 7, cpus: 60));
        e.Schedule().Started.Count.ShouldBe(1);
        e.Submit(Job(e, 2, 2, cpus: 8));
        e.Schedule().Started.ShouldBeEmpty();
        e.Reason(2).ShouldBe(PendingReason.Resources);
    }

    [Fact]
    public void MemoryTaken_GpusAndCoresFree_SaysMemory()
    {
        var e = Engine(Fleet(1, 64, 64));
        e.Submit(Job(e, 1, 1, cpus: 4, memGiB: 60));
        e.Schedule().Started.Count.ShouldBe(1);
        e.Submit(Job(e, 2, 1, cpus: 4, memGiB: 8));
        e.Schedule().Started.ShouldBeEmpty();
        e.Reason(2).ShouldBe(PendingReason.Memory);
        PendingReasons.Describe(e.Reason(2)).ShouldContain("memory");
    }

    [Fact]
    public void CoresAndMemoryBothTaken_SaysCpus_TheFirstCheckThatFails()
    {
        var e = Engine(Fleet(1, 64, 64));
        e.Submit(Job(e, 1, 1, cpus: 60, memGiB: 60));
        e.Schedule().Started.Count.ShouldBe(1);
        e.Submit(Job(e, 2, 1, cpus: 8, memGiB: 8));
        e.Schedule();
        e.Reason(2).ShouldBe(PendingReason.Cpus);
    }

    [Fact]
    public void ItsModelTaken_OtherModelsFree_SaysGpuModel()
    {
        // n01 is model B, n02 model A; n02 is full.
        var e = Engine(Fleet(2, 64, 1024));
        e.Submit(Job(e, 1, 8) with { GpuModels = ["A"] });
        e.Schedule().Started.Count.ShouldBe(1);
        e.NodesOf(1).ShouldBe(["n02"]);
        e.Submit(Job(e, 2, 1) with { GpuModels = ["A"] });
        e.Schedule().Started.ShouldBeEmpty();
        e.Reason(2).ShouldBe(PendingReason.GpuModel);
        PendingReasons.Code(e.Reason(2)).ShouldBe("gpu_model");
    }

    [Fact]
    public void NodesWithItsFeaturesTaken_OthersFree_SaysFeatures()
    {
        // n01 has "ib" and is full; n02 has 8 GPUs free, without "ib".
        var e = Engine(Fleet(2, 64, 1024));
        e.Submit(Job(e, 1, 8) with { Features = ["ib"] });
        e.Schedule().Started.Count.ShouldBe(1);
        e.NodesOf(1).ShouldBe(["n01"]);
        e.Submit(Job(e, 2, 1) with { Features = ["ib"] });
        e.Schedule().Started.ShouldBeEmpty();
        e.Reason(2).ShouldBe(PendingReason.Features);
        PendingReasons.Code(e.Reason(2)).ShouldBe("features");
    }

    [Fact]
    public void GpuOnlyJobs_OnAFleetWithoutCores_StillSayResources()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("proj"), new SchedulerOptions { Backfill = BackfillMode.None }, TenancyBuilder.Epoch);
        e.Submit(Job(e, 1, 6));
        e.Submit(Job(e, 2, 4));
        e.Schedule().Started.Count.ShouldBe(1);
        e.Reason(2).ShouldBe(PendingReason.Resources);
    }
}
