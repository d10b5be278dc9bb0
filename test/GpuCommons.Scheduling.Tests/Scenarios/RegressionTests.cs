using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Tests.Support;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>Engine bugs the property tests found, each pinned by the smallest scenario that shows it.</summary>
public sealed class RegressionTests
{
    /// <summary>
    /// On a partition of mostly 2-GPU nodes, a 2 × 2 gang was admitted for 4 GPUs (two typical nodes) but placed on two
    /// 8-GPU nodes, holding 16: its grant and quota were charged for four times what admission checked.
    /// </summary>
    [Fact]
    public void Gang_PlacedOnLargerNodes_IsAdmittedForWhatItReallyHolds()
    {
        var tenancy = Tenants().Org("org")
            .Project("filler")
            .Project("g", unlimited: false)
            .Allocation("g-1", "g", gpuHours: 10)
            .Obj();
        var e = new CheckedEngine(TestFleets.Sizes(2, 2, 2, 8, 8), tenancy);
        for (var i = 1; i <= 3; i++)
        {
            e.Submit(Job(i).Project("filler").Gpus(2).Hours(5));
        }

        e.Schedule();
        e.Engine.GetStats().FreeGpus.ShouldBe(16, "the fillers take the three 2-GPU nodes");

        e.Submit(Job(4).Project("g").Gpus(4).Nodes(2).Hours(1));
        e.Schedule();

        e.IsRunning(4).ShouldBeFalse("two 8-GPU nodes for an hour is 16 GPU-hours, more than the 10 granted");
        e.Reason(4).ShouldBe(PendingReason.GrantExhausted);
        e.Engine.GetAllocationUsage("g-1").ShouldBe((10, 0, 0));
    }

    [Fact]
    public void Gang_PlacedOnLargerNodes_StaysWithinItsQuota()
    {
        var tenancy = Tenants().Org("org")
            .Project("filler")
            .Project("g", quotas: [new QuotaSpec("p", 4, BorrowingLimitGpus: 0)])
            .Obj();
        var e = new CheckedEngine(TestFleets.Sizes(2, 2, 2, 8, 8), tenancy);
        for (var i = 1; i <= 3; i++)
        {
            e.Submit(Job(i).Project("filler").Gpus(2).Hours(5));
        }

        e.Schedule();
        e.Submit(Job(4).Project("g").Gpus(4).Nodes(2).Hours(1));
        e.Schedule();

        e.IsRunning(4).ShouldBeFalse("two whole 8-GPU nodes are 16 GPUs against a quota of 4");
        e.Reason(4).ShouldBe(PendingReason.ProjectQuota);

        // On the 2-GPU nodes the same gang holds 4 GPUs and fits the quota.
        e.Complete(1);
        e.Complete(2);
        e.Schedule();
        e.IsRunning(4).ShouldBeTrue();
        e.View(4).Placement!.HeldGpuMilli.ShouldBe(4000);
    }

    /// <summary>
    /// With no quotas, the cohort's only limit is the hardware; a job waiting for busy GPUs was refused as "cohort quota",
    /// so it never got a backfill reservation (big jobs starved behind a stream of small ones) and never blocked strict order.
    /// </summary>
    [Fact]
    public void JobWaitingForBusyGpus_IsWaitingForResources_NotRefusedByQuota()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a", "b"));
        e.Submit(Job(1).Project("a").Gpus(4).Hours(2));
        e.Schedule();
        e.Submit(Job(2).Project("b").Gpus(8).Hours(1));
        e.Schedule();

        e.Reason(2).ShouldBe(PendingReason.Reserved);
        e.View(2).EstimatedStart.ShouldNotBeNull();

        // Small jobs keep coming; none may push the big job's start past its estimate.
        var due = e.View(2).EstimatedStart!.Value;
        for (var i = 3; e.Now + TimeSpan.FromMinutes(10) < due; i++)
        {
            e.Submit(Job(i).Project("a").Gpus(2).Minutes(50));
            e.Schedule(full: i % 2 == 0);
            e.Advance(TimeSpan.FromMinutes(10));
        }

        e.Starts.Count.ShouldBeGreaterThan(3, "short jobs backfill meanwhile");

        e.Advance(due - e.Now);
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue();
        e.View(2).Start.ShouldBe(due);
    }

    /// <summary>A job submitted with a submit time still in the future must not start before it.</summary>
    [Fact]
    public void Job_WithAFutureSubmitTime_DoesNotStartBeforeIt()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a"));
        var at = e.Now + TimeSpan.FromHours(1);
        e.Submit(Job(1).Gpus(1).SubmittedAt(at));
        e.Schedule();
        e.IsRunning(1).ShouldBeFalse();
        e.Engine.NextWakeup().ShouldBe(at);

        e.Advance(TimeSpan.FromHours(1));
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue();
        e.View(1).Start.ShouldBe(at);
    }

    /// <summary>
    /// Mixed node sizes: the backfill shadow counted free 1-GPU nodes towards a gang of 8-GPU nodes, so the reservation
    /// promised a start at the first node's release and held too few nodes; the job then started later than promised.
    /// </summary>
    [Fact]
    public void GangReservation_OnMixedNodes_CountsOnlyNodesBigEnough()
    {
        var e = new CheckedEngine(TestFleets.Sizes(8, 8, 1, 1), TenancyBuilder.Simple("a"), new SchedulerOptions { Ordering = OrderingPolicy.Fifo });
        var t0 = e.Now;
        e.Submit(Job(1).Gpus(8).Hours(2));
        e.Submit(Job(2).Gpus(8).Hours(4));
        e.Schedule();
        e.Submit(Job(3).Gpus(16).Nodes(2).Hours(1));
        e.Schedule();

        e.Reason(3).ShouldBe(PendingReason.Reserved);
        e.View(3).EstimatedStart.ShouldBe(t0 + TimeSpan.FromHours(4));

        e.Advance(TimeSpan.FromHours(4));
        e.Schedule();
        e.View(3).Start.ShouldBe(t0 + TimeSpan.FromHours(4));
    }

    /// <summary>
    /// Mixed node sizes: a 2 × 2 gang was skipped by the pool's free-capacity filter, which assumed the typical 8-GPU node,
    /// although a free 4-GPU and a free 2-GPU node could hold it.
    /// </summary>
    [Fact]
    public void SmallGang_OnMixedNodes_StartsOnTheSmallNodesThatFit()
    {
        var e = new CheckedEngine(TestFleets.Sizes(8, 4, 2), TenancyBuilder.Simple("a"));
        e.Submit(Job(1).Gpus(8).Hours(2));
        e.Schedule();
        e.Submit(Job(2).Gpus(4).Nodes(2).Hours(1));
        e.Schedule();

        e.IsRunning(2).ShouldBeTrue();
        e.NodesOf(2).Order().ShouldBe(["n02", "n03"]);
        e.View(2).Placement!.HeldGpuMilli.ShouldBe(6000);
    }

    /// <summary>
    /// Fair share: a job that started after the last full pass and ended before the next one had the time between that
    /// pass and its start subtracted from its user's usage and never added back: usage went negative, the fair-share
    /// factor above 1 (up to infinity), and the heavy user jumped the queue.
    /// </summary>
    [Fact]
    public void FairShare_JobBetweenTwoFullPasses_CountsAsUsage()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("x", "y"));
        e.Schedule();
        e.Advance(TimeSpan.FromHours(10));
        e.Submit(Job(1).Project("x").Gpus(8).Hours(2));
        e.Schedule(full: false);
        e.IsRunning(1).ShouldBeTrue();
        e.Advance(TimeSpan.FromHours(1));
        e.Complete(1);

        e.Submit(Job(2).Project("x").Gpus(8));
        e.Submit(Job(3).Project("y").Gpus(8));
        e.Schedule();

        e.IsRunning(3).ShouldBeTrue("y has used nothing, x has used 8 GPU-hours");
        e.IsRunning(2).ShouldBeFalse();
        double.IsFinite(e.View(2).Priority).ShouldBeTrue();
        e.View(2).Priority.ShouldBeLessThan(e.View(3).Priority);
    }

    /// <summary>
    /// Quota reclaim: while the first victim was still in its grace period, every further full pass preempted another
    /// job for the same preemptor (the victims already stopping were not counted), down to jobs within their guarantee.
    /// </summary>
    [Fact]
    public void QuotaReclaim_DoesNotPreemptMoreWhileTheVictimsAreStopping()
    {
        var q = (double nominal, double? lend) => new QuotaSpec("p", nominal, LendingLimitGpus: lend);
        var tenancy = Tenants()
            .Org("oa", quotas: [q(8, null)]).Org("ob", quotas: [q(8, null)]).Org("oc", quotas: [q(8, 0)])
            .Project("a", "oa", quotas: [q(8, null)])
            .Project("b", "ob", quotas: [q(8, null)])
            .Project("c", "oc", quotas: [q(8, 0)])
            .Obj();
        var e = new CheckedEngine(TestFleets.Flat(3, 8), tenancy, new SchedulerOptions { Ordering = OrderingPolicy.Fifo });
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Submit(Job(2).Project("a").Gpus(6).Hours(10).Checkpointable());
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue("a borrows b's idle quota");
        e.Advance(TimeSpan.FromMinutes(30));

        e.Submit(Job(3).Project("b").Gpus(8).Hours(1));
        e.Schedule().Preempted.ShouldHaveSingleItem().JobId.ShouldBe(2);
        e.Reason(3).ShouldBe(PendingReason.WaitingForPreemption);

        // Within the 5-minute grace, more full passes: job 1 is within a's guarantee and must be left alone.
        for (var i = 0; i < 3; i++)
        {
            e.Advance(TimeSpan.FromMinutes(1));
            e.Schedule().Preempted.ShouldBeEmpty();
        }

        e.View(1).Preempting.ShouldBeFalse();
        e.Reason(3).ShouldBe(PendingReason.WaitingForPreemption);

        e.Advance(TimeSpan.FromMinutes(2));
        e.Schedule();
        e.IsRunning(3).ShouldBeTrue();
        e.IsRunning(1).ShouldBeTrue();
    }
}
