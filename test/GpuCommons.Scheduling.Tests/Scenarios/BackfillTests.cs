using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Tests.Support;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>EASY and conservative backfill, and strict order without backfill.</summary>
public sealed class BackfillTests
{
    private static CheckedEngine Engine(int nodes, BackfillMode mode = BackfillMode.Easy) =>
        new(TestFleets.Flat(nodes, 8), TenancyBuilder.Simple("a", "b"), new SchedulerOptions { Backfill = mode, Ordering = OrderingPolicy.Fifo });

    [Fact]
    public void Easy_TopBlockedJob_GetsAReservationAtTheEarliestEnd()
    {
        var e = Engine(1);
        e.Submit(Job(1).Gpus(4).Hours(2));
        e.Schedule();
        e.Submit(Job(2).Gpus(8).Hours(1));
        e.Schedule();

        e.Reason(2).ShouldBe(PendingReason.Reserved);
        e.View(2).EstimatedStart.ShouldBe(e.Now + TimeSpan.FromHours(2));
    }

    [Fact]
    public void Easy_ShortJob_Backfills_LongJob_DoesNotDelayTheReservation()
    {
        var e = Engine(1);
        e.Submit(Job(1).Gpus(4).Hours(2));
        e.Schedule();
        var t0 = e.Now;
        e.Submit(Job(2).Gpus(8).Hours(1));
        e.Submit(Job(3).Gpus(2).Hours(1));
        e.Submit(Job(4).Gpus(2).Hours(3));
        e.Schedule();

        e.Reason(2).ShouldBe(PendingReason.Reserved);
        e.IsRunning(3).ShouldBeTrue("it ends before the reserved job is due");
        e.IsRunning(4).ShouldBeFalse("it would run past the reserved job's start");
        e.Reason(4).ShouldBe(PendingReason.BehindReservation);

        // Nothing else arrives: the reserved job starts at its estimate.
        e.Advance(TimeSpan.FromHours(2));
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue();
        e.View(2).Start.ShouldBe(t0 + TimeSpan.FromHours(2));
    }

    [Fact]
    public void Easy_IncrementalPass_KeepsTheReservation_AndLeavesBackfillToTheFullCycle()
    {
        var e = Engine(1);
        e.Submit(Job(1).Gpus(4).Hours(2));
        e.Schedule();
        e.Submit(Job(2).Gpus(8).Hours(1));
        e.Schedule();
        e.Submit(Job(3).Gpus(2).Hours(3));
        e.Submit(Job(4).Gpus(2).Minutes(30));
        e.Schedule(full: false);

        // Job 4 would fit before job 2's reservation, but an incremental pass does not start a job behind a waiting one:
        // it starts only what a full cycle at that instant would start, and leaves the backfill to the full cycle.
        e.IsRunning(3).ShouldBeFalse();
        e.IsRunning(4).ShouldBeFalse();
        e.Reason(4).ShouldBe(PendingReason.Priority);
        e.Reason(2).ShouldBe(PendingReason.Reserved);

        e.Schedule();
        e.IsRunning(3).ShouldBeFalse();
        e.IsRunning(4).ShouldBeTrue();
        e.Reason(2).ShouldBe(PendingReason.Reserved);
    }

    [Theory]
    [InlineData(BackfillMode.Easy)]
    [InlineData(BackfillMode.Conservative)]
    public void Conservative_ReservesForEveryBlockedJob_Easy_OnlyForTheFirst(BackfillMode mode)
    {
        var e = Engine(2, mode);
        e.Submit(Job(1).Gpus(6).Hours(2));
        e.Submit(Job(2).Gpus(6).Hours(3));
        e.Schedule();
        e.NodesOf(1).ShouldNotBe(e.NodesOf(2));
        var t0 = e.Now;
        e.Submit(Job(3).Gpus(8).Hours(1));
        e.Submit(Job(4).Gpus(8).Hours(1));
        e.Submit(Job(5).Gpus(2).Hours(4));
        e.Schedule();

        e.Reason(3).ShouldBe(PendingReason.Reserved);
        e.View(3).EstimatedStart.ShouldBe(t0 + TimeSpan.FromHours(2));
        if (mode == BackfillMode.Conservative)
        {
            e.Reason(4).ShouldBe(PendingReason.Reserved);
            e.View(4).EstimatedStart.ShouldBe(t0 + TimeSpan.FromHours(3));
            e.IsRunning(5).ShouldBeFalse("under conservative backfill it would delay job 4");
            e.Reason(5).ShouldBe(PendingReason.BehindReservation);
        }
        else
        {
            e.View(4).EstimatedStart.ShouldBeNull();
            e.IsRunning(5).ShouldBeTrue("EASY protects only the first blocked job");
        }
    }

    [Fact]
    public void NoBackfill_BlockedJob_BlocksEveryLaterJob()
    {
        var e = Engine(1, BackfillMode.None);
        e.Submit(Job(1).Gpus(4).Hours(2));
        e.Schedule();
        e.Submit(Job(2).Gpus(8).Hours(1));
        e.Submit(Job(3).Gpus(1).Minutes(10));
        e.Schedule();

        e.IsRunning(3).ShouldBeFalse("strict order: nothing passes the blocked job");
        e.Reason(2).ShouldBe(PendingReason.Resources);
        e.Reason(3).ShouldBe(PendingReason.Priority);

        e.Advance(TimeSpan.FromHours(2));
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue();
        e.IsRunning(3).ShouldBeFalse();
    }

    [Fact]
    public void Fifo_OlderJobFirst_RegardlessOfSize()
    {
        var e = Engine(1, BackfillMode.None);
        e.Submit(Job(1).Gpus(8).Hours(1).SubmittedAt(e.Now - TimeSpan.FromMinutes(5)));
        e.Submit(Job(2).Gpus(1).Hours(1).SubmittedAt(e.Now - TimeSpan.FromMinutes(10)));
        e.Schedule();

        e.IsRunning(2).ShouldBeTrue();
        e.IsRunning(1).ShouldBeFalse();
    }

    [Fact]
    public void Easy_GangReservation_IsNotDelayedByBackfilledGangs()
    {
        var e = new CheckedEngine(TestFleets.Blocks(2, 2), TenancyBuilder.Simple("a"), new SchedulerOptions { Ordering = OrderingPolicy.Fifo });
        e.Submit(Job(1).Gpus(16).Hours(4));
        e.Submit(Job(2).Gpus(8).Hours(2));
        e.Schedule();
        var t0 = e.Now;
        e.Submit(Job(3).Gpus(32).Hours(1));
        e.Submit(Job(4).Gpus(8).Hours(1));
        e.Submit(Job(5).Gpus(8).Hours(5));
        e.Schedule();

        e.View(3).EstimatedStart.ShouldBe(t0 + TimeSpan.FromHours(4));
        e.IsRunning(4).ShouldBeTrue();
        e.IsRunning(5).ShouldBeFalse();

        e.Advance(TimeSpan.FromHours(4));
        e.Schedule();
        e.View(3).Start.ShouldBe(t0 + TimeSpan.FromHours(4));
    }
}
