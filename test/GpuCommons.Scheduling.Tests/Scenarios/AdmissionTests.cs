using GpuCommons.Core;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Tests.Support;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>Quota (nominal, borrowing, lending, reclaim), priority classes, grants and charges.</summary>
public sealed class AdmissionTests
{
    private static QuotaSpec Q(double nominal, double? borrow = null, double? lend = null) => new("p", nominal, borrow, lend);

    /// <summary>16 GPUs (two 8-GPU nodes); organisations oa and ob with 8 GPUs nominal each, projects a and b inside them.</summary>
    private static CheckedEngine TwoTenants(double? borrowA = null, double? lendB = null, SchedulerOptions? options = null)
    {
        var tenancy = Tenants()
            .Org("oa", quotas: [Q(8)]).Org("ob", quotas: [Q(8, lend: lendB)])
            .Project("a", "oa", quotas: [Q(8, borrowA)])
            .Project("b", "ob", quotas: [Q(8, lend: lendB)])
            .Obj();
        return new CheckedEngine(TestFleets.Flat(2, 8), tenancy, options ?? new SchedulerOptions { Ordering = OrderingPolicy.Fifo });
    }

    [Fact]
    public void Borrowing_IdleQuotaOfAnotherTenant_IsUsed()
    {
        var e = TwoTenants();
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Submit(Job(2).Project("a").Gpus(6).Hours(10));
        e.Schedule();

        e.IsRunning(1).ShouldBeTrue();
        e.IsRunning(2).ShouldBeTrue("b's 8 GPUs are idle and a may borrow them");
    }

    [Fact]
    public void Borrowing_BeyondTheLendingLimit_IsRefused()
    {
        var e = TwoTenants(lendB: 2);
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Submit(Job(2).Project("a").Gpus(2).Hours(10));
        e.Submit(Job(3).Project("a").Gpus(1).Hours(10));
        e.Schedule();

        e.IsRunning(2).ShouldBeTrue("b lends up to 2 GPUs");
        e.IsRunning(3).ShouldBeFalse();
        e.Reason(3).ShouldBe(PendingReason.CohortQuota);
    }

    [Fact]
    public void Borrowing_BeyondTheBorrowingLimit_IsRefused()
    {
        var e = TwoTenants(borrowA: 1);
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Submit(Job(2).Project("a").Gpus(2).Hours(10));
        e.Submit(Job(3).Project("a").Gpus(1).Hours(10));
        e.Schedule();

        e.IsRunning(2).ShouldBeFalse();
        e.Reason(2).ShouldBe(PendingReason.ProjectQuota);
        e.IsRunning(3).ShouldBeTrue("one GPU is within the borrowing limit");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Reclaim_JobWithinGuarantee_PreemptsTheBorrower_WhichRequeuesWithItsSubmitTime(bool checkpointable)
    {
        var e = TwoTenants();
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Schedule();
        e.Advance(TimeSpan.FromMinutes(30));
        var borrower = Job(2).Project("a").Gpus(4).Hours(10);
        e.Submit(checkpointable ? borrower.Checkpointable() : borrower);
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue();
        e.Advance(TimeSpan.FromMinutes(30));

        e.Submit(Job(3).Project("b").Gpus(8).Hours(1));
        var r = e.Schedule();

        // The borrower (least work lost) is asked to stop; checkpointable jobs get the grace period.
        var p = r.Preempted.ShouldHaveSingleItem();
        p.JobId.ShouldBe(2);
        p.ForJobId.ShouldBe(3);
        p.Grace.ShouldBe(checkpointable ? e.Engine.Options.PreemptionGrace : TimeSpan.Zero);
        e.View(2).Preempting.ShouldBeTrue();
        e.Reason(3).ShouldBe(PendingReason.WaitingForPreemption);
        e.IsRunning(1).ShouldBeTrue("job 1 is within a's guarantee");

        // A later job of a, submitted before the victim requeues, must queue behind it.
        e.Submit(Job(4).Project("a").Gpus(8).Hours(1));
        e.Advance(p.Grace);
        if (e.IsRunning(2))
        {
            e.Complete(2, JobOutcome.Preempted);
        }

        e.Ended.ContainsKey(2).ShouldBeFalse();
        e.View(2).State.ShouldBe(JobState.Pending);
        e.View(2).Attempts.ShouldBe(1);
        e.Specs[2].SubmitTime.ShouldBeLessThan(e.Specs[4].SubmitTime);

        e.Schedule();
        e.IsRunning(3).ShouldBeTrue();

        e.Complete(3);
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue("the requeued job kept its place ahead of job 4");
        e.IsRunning(4).ShouldBeFalse();
    }

    [Fact]
    public void PreemptibleClass_IsPreemptedByANormalJob()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a", "b"));
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10).Preemptible());
        e.Schedule();
        e.Submit(Job(2).Project("b").Gpus(8).Hours(1));
        var r = e.Schedule();

        r.Preempted.ShouldHaveSingleItem().JobId.ShouldBe(1);
        e.Reason(2).ShouldBe(PendingReason.WaitingForPreemption);

        e.Complete(1, JobOutcome.Preempted);
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue();
        e.View(1).State.ShouldBe(JobState.Pending);
    }

    [Fact]
    public void NormalJob_IsNotPreemptedByAnotherNormalJob_WithoutAGuarantee()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a", "b"));
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Schedule();
        e.Submit(Job(2).Project("b").Gpus(8).Hours(1).High());
        var r = e.Schedule();

        r.Preempted.ShouldBeEmpty();
        e.Reason(2).ShouldBe(PendingReason.Reserved);
    }

    [Fact]
    public void Grant_TooFewHoursLeft_GrantExhausted()
    {
        var tenancy = Tenants().Org("org").Project("a", unlimited: false).Allocation("a-1", "a", gpuHours: 10).Obj();
        var e = new CheckedEngine(TestFleets.Flat(2, 8), tenancy);
        e.Submit(Job(1).Gpus(4).Hours(2));
        e.Submit(Job(2).Gpus(2).Hours(2));
        e.Schedule();

        e.IsRunning(1).ShouldBeTrue();
        e.IsRunning(2).ShouldBeFalse("8 committed + 4 asked > 10 granted");
        e.Reason(2).ShouldBe(PendingReason.GrantExhausted);
        e.Engine.GetAllocationUsage("a-1").ShouldBe((10, 0, 8));
    }

    /// <summary>
    /// A start spends its project's GPU-hours on every partition the allocation pays for: in the same pass, a later job
    /// of the project waiting for another partition is refused by the grant, though an earlier job of the same shape and
    /// partition, decided before that start, was not.
    /// </summary>
    [Fact]
    public void Grant_SpentByAStartOnAnotherPartition_RefusesTheProjectsLaterJobsInTheSamePass()
    {
        var fleet = new Core.Fleet.FleetBuilder("test").AddPartition("p0", "H100", 1000).AddPartition("p1", "H100", 1000)
            .AddNode("p0", "a1", 8).AddNode("p1", "b1", 8).Build();
        var tenancy = Tenants().Org("org").Project("x").Project("a", unlimited: false).Allocation("a-1", "a", gpuHours: 10).Obj();
        var e = new CheckedEngine(fleet, tenancy, new SchedulerOptions { Ordering = OrderingPolicy.Fifo, Preemption = false });
        e.Submit(Job(1).Project("x").Partition("p1").Gpus(8).Hours(10));
        e.Submit(Job(2).Project("x").Partition("p0").Gpus(4).Hours(10));
        e.Schedule();
        e.Advance(TimeSpan.FromMinutes(1));

        // Job 3 waits for p1 (it gets the reservation); job 4 waits behind it; job 5 starts on p0 and commits 8 of the 10
        // GPU-hours; job 6 (the shape and partition of job 4) would need 3 more.
        e.Submit(Job(3).Project("x").Partition("p1").Gpus(8).Hours(10));
        e.Submit(Job(4).Project("a").Partition("p1").Gpus(1).Hours(1));
        e.Submit(Job(5).Project("a").Partition("p0").Gpus(4).Hours(2));
        e.Submit(Job(6).Project("a").Partition("p1").Gpus(1).Hours(3));
        e.Schedule();

        e.IsRunning(5).ShouldBeTrue();
        e.Reason(3).ShouldBe(PendingReason.Reserved);
        e.Reason(4).ShouldNotBe(PendingReason.GrantExhausted);
        e.Reason(6).ShouldBe(PendingReason.GrantExhausted, "job 5's start left 2 of the 10 GPU-hours");
        e.Engine.ClassDecided.ShouldBeGreaterThanOrEqualTo(2, "jobs 4 and 6 are decided from their class");
    }

    [Theory]
    [InlineData("none")]
    [InlineData("other partition")]
    [InlineData("expired")]
    [InlineData("not yet started")]
    public void Grant_NoActiveAllocationForThePartition_NoAllocation(string which)
    {
        var fleet = Core.Fleet.BuiltInFleets.Get("small");
        var epoch = TenancyBuilder.Epoch;
        var b = Tenants().Org("org").Project("a", unlimited: false);
        _ = which switch
        {
            "other partition" => b.Allocation("a-l40s", "a", 100, partition: "l40s"),
            "expired" => b.Allocation("a-old", "a", 100, start: epoch.AddDays(-30), end: epoch.AddDays(-1)),
            "not yet started" => b.Allocation("a-new", "a", 100, start: epoch.AddDays(1), end: epoch.AddDays(30)),
            _ => b,
        };
        var e = new CheckedEngine(fleet, b.Obj());
        e.Submit(Job(1).Gpus(8).Partition("h100"));
        e.Schedule();

        e.IsRunning(1).ShouldBeFalse();
        e.Reason(1).ShouldBe(PendingReason.NoAllocation);
    }

    [Fact]
    public void Charge_IsGpusTimesRuntimeTimesRate_AndMovesFromCommittedToSpent()
    {
        var tenancy = Tenants().Org("org").Project("a", unlimited: false).Allocation("a-1", "a", gpuHours: 100, spent: 5).Obj();
        var e = new CheckedEngine(TestFleets.Flat(2, 8, rate: 2500), tenancy);
        e.Submit(Job(1).Gpus(4).Hours(2));
        var start = e.Schedule().Started.ShouldHaveSingleItem();
        start.AllocationId.ShouldBe("a-1");
        e.Engine.GetAllocationUsage("a-1").ShouldBe((100, 5, 8));

        e.Advance(TimeSpan.FromMinutes(90));
        var end = e.Complete(1);

        end.Charge.ShouldNotBeNull();
        end.Charge.AllocationId.ShouldBe("a-1");
        end.Charge.Project.ShouldBe("a");
        end.Charge.Partition.ShouldBe("p");
        end.Charge.GpuHours.ShouldBe(6, 1e-9);
        end.Charge.Amount.ShouldBe(15_000m);
        e.Engine.GetAllocationUsage("a-1").ShouldBe((100, 11, 0));
    }

    [Theory]
    [InlineData(0.5, null, 1.0)]
    [InlineData(12, null, 32.0)]
    [InlineData(3, null, 6.0)]
    public void Charge_CountsWholeNodesForGangsAndTheShareForFractions(double gpus, int? nodes, double expectedGpuHours)
    {
        var e = new CheckedEngine(TestFleets.Flat(2, 8), TenancyBuilder.Simple("a"));
        var job = Job(1).Gpus(gpus).Hours(4);
        if (nodes is { } n)
        {
            job.Nodes(n);
        }

        e.Submit(job);
        e.Schedule();
        e.Advance(TimeSpan.FromHours(2));
        e.Complete(1).Charge!.GpuHours.ShouldBe(expectedGpuHours, 1e-9);
    }

    [Fact]
    public void StartFailed_RollsTheDecisionBack()
    {
        var tenancy = Tenants().Org("org").Project("a", unlimited: false).Allocation("a-1", "a", gpuHours: 100).Obj();
        var e = new CheckedEngine(TestFleets.Flat(1, 8), tenancy);
        e.Submit(Job(1).Gpus(8).Hours(2));
        e.Schedule();
        e.StartFailed(1);

        e.View(1).State.ShouldBe(JobState.Pending);
        e.Engine.GetAllocationUsage("a-1").ShouldBe((100, 0, 0));
        e.Engine.GetStats().FreeGpus.ShouldBe(8);
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue();
    }

    [Fact]
    public void FairShare_LightUser_GoesAheadOfAHeavyOne()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("heavy", "light"));
        e.Engine.AddUsageHistory("heavy", "alice", 8 * 3600 * 24 * 3);
        e.Submit(Job(1).Project("heavy").User("alice").Gpus(8).SubmittedAt(e.Now - TimeSpan.FromMinutes(10)));
        e.Submit(Job(2).Project("light").User("bob").Gpus(8));
        e.Schedule();

        e.IsRunning(2).ShouldBeTrue();
        e.IsRunning(1).ShouldBeFalse();
        e.View(1).Priority.ShouldBeLessThan(e.Engine.GetJob(2)!.Priority);
    }

    [Fact]
    public void FairShare_UsageFromRunningJobs_TurnsTheOrder()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a", "b"));
        e.Submit(Job(1).Project("a").Gpus(8).Hours(24));
        e.Schedule();
        e.Advance(TimeSpan.FromHours(24));
        e.Schedule();

        // a has just used the whole fleet for a day; b has used nothing: b's later job goes first.
        e.Submit(Job(2).Project("a").Gpus(8));
        e.Advance(TimeSpan.FromMinutes(1));
        e.Submit(Job(3).Project("b").Gpus(8));
        e.Schedule();
        e.IsRunning(3).ShouldBeTrue();
        e.IsRunning(2).ShouldBeFalse();
    }

    /// <summary>
    /// One 8-GPU node, projects a and b, an hour-long priority period: a minute into a period, a's 10-hour job (1) fills
    /// the node, so the jobs queued next wait.
    /// </summary>
    private static CheckedEngine FullInAnHourLongPeriod(SchedulerOptions options)
    {
        options.PriorityPeriod = TimeSpan.FromHours(1);
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a", "b"), options);
        e.Advance(TimeSpan.FromTicks(options.PriorityPeriod.Ticks - (e.Now.UtcTicks % options.PriorityPeriod.Ticks)) + TimeSpan.FromMinutes(1));
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue();
        return e;
    }

    /// <summary>
    /// Priorities are worked out once per priority period (Slurm's PriorityCalcPeriod): within a period, a's growing
    /// usage does not move its job's priority, and two jobs alike but for their submit time (both within the period) have
    /// the same one; the next period's first pass works them out again.
    /// </summary>
    [Fact]
    public void Multifactor_Priorities_HoldForAPriorityPeriod()
    {
        var e = FullInAnHourLongPeriod(new SchedulerOptions());

        e.Submit(Job(2).Project("a").Gpus(8));
        e.Submit(Job(3).Project("b").Gpus(8));
        e.Schedule();
        var (p2, p3) = (e.View(2).Priority, e.View(3).Priority);

        e.Advance(TimeSpan.FromMinutes(30));
        e.Submit(Job(4).Project("a").Gpus(8));
        e.Schedule();
        e.Advance(TimeSpan.FromMinutes(28));
        e.Schedule();
        e.View(2).Priority.ShouldBe(p2, "a has run 8 GPUs for 58 minutes, within the period");
        e.View(3).Priority.ShouldBe(p3);
        e.View(4).Priority.ShouldBe(p2, "queued 30 minutes later in the same period: the same age, the same priority");

        e.Advance(TimeSpan.FromMinutes(2));
        e.Schedule();
        e.View(2).Priority.ShouldBeLessThan(p2 - 1, "the next period counts a's hour of usage");
        e.View(3).Priority.ShouldBeGreaterThan(p3, "b's job is an hour older");
        e.View(4).Priority.ShouldBeLessThan(e.View(2).Priority, "at the next period's start, job 2 is 30 minutes older");
    }

    /// <summary>
    /// A job queued into the sorted head of the lazy order pushes the head's last entry out; that entry may move to the
    /// unsorted tail only where no job of the tail has its key (the tail breaks ties by place, not by submit time). Here
    /// jobs 2, 3 and 4 tie: job 2 must stay ahead of 3 and 4.
    /// </summary>
    [Fact]
    public void Multifactor_AJobQueuedIntoTheHead_KeepsEqualKeysInSubmitOrder()
    {
        var e = FullInAnHourLongPeriod(new SchedulerOptions { SortedHead = 1, Preemption = false });
        e.Submit(Job(2).Project("a").Gpus(8));
        e.Submit(Job(3).Project("a").Gpus(8));
        e.Submit(Job(4).Project("a").Gpus(8));
        e.Schedule();

        e.Submit(Job(5).Project("a").Gpus(8).High());
        e.Engine.OrderForTests().ShouldBe([5, 2, 3, 4]);
        e.Schedule();
        e.Engine.OrderForTests().ShouldBe([5, 2, 3, 4], "a full cycle's sort agrees");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-60)]
    [InlineData(2 * 86_400)]
    public void PriorityPeriod_OutOfRange_IsRefusedByName(int seconds)
    {
        var ex = Should.Throw<ArgumentException>(() => new SchedulerOptions { PriorityPeriod = TimeSpan.FromSeconds(seconds) }.Validate());
        ex.ParamName.ShouldBe(nameof(SchedulerOptions.PriorityPeriod));
    }

    [Fact]
    public void QuotaLowered_RunningJobsStay_NothingMoreIsAdmitted_UntilUsageFallsBelow()
    {
        var e = TwoTenants();
        e.Submit(Job(1).Project("a").Gpus(6).Hours(10));
        e.Submit(Job(2).Project("a").Gpus(2).Hours(10));
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue();
        e.IsRunning(2).ShouldBeTrue();

        // a's guarantee goes from 8 to 4 GPUs with no borrowing: 8 already run.
        e.SetProjectQuotas("a", Q(4, 0));
        e.Submit(Job(3).Project("a").Gpus(1).Hours(1));
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue("lowering a quota does not stop what runs");
        e.IsRunning(2).ShouldBeTrue();
        e.IsRunning(3).ShouldBeFalse();
        e.Reason(3).ShouldBe(PendingReason.ProjectQuota);
        e.Engine.VerifyInvariants().ShouldBeNull();

        e.Complete(1);
        e.Schedule();
        e.IsRunning(3).ShouldBeTrue("2 + 1 GPUs are within the new 4");
        e.Engine.VerifyInvariants().ShouldBeNull();
    }

    [Fact]
    public void QuotaRaised_JobWaitingOnQuota_Starts()
    {
        var e = TwoTenants(borrowA: 0);
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Submit(Job(2).Project("a").Gpus(4).Hours(10));
        e.Schedule();
        e.Reason(2).ShouldBe(PendingReason.ProjectQuota);

        e.SetProjectQuotas("a", Q(8, 4));
        e.Schedule(full: false);
        e.IsRunning(2).ShouldBeTrue("a may now borrow 4 of b's idle GPUs");
    }

    [Fact]
    public void OrganisationQuota_Set_GuaranteeReclaimsFromBorrower()
    {
        // Neither organisation has a guarantee at first: a borrows the whole partition.
        var tenancy = Tenants().Org("oa").Org("ob").Project("a", "oa").Project("b", "ob").Obj();
        var e = new CheckedEngine(TestFleets.Flat(2, 8), tenancy, new SchedulerOptions { Ordering = OrderingPolicy.Fifo });
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Submit(Job(2).Project("a").Gpus(8).Hours(10));
        e.Schedule();
        e.Submit(Job(3).Project("b").Gpus(8).Hours(1));
        e.Schedule();
        e.IsRunning(3).ShouldBeFalse("b has no guarantee to reclaim");

        e.SetOrganisationQuotas("ob", Q(8));
        e.SetProjectQuotas("b", Q(8));
        e.Schedule();
        e.Preempting.Count.ShouldBe(1, "b's new guarantee reclaims one of a's borrowed jobs");
    }

    [Fact]
    public void QuotaChange_BadInput_NamesTheField()
    {
        var e = TwoTenants();
        Should.Throw<SpecException>(() => e.Engine.SetProjectQuotas("nope", [Q(1)])).Field.ShouldBe("project");
        Should.Throw<SpecException>(() => e.Engine.SetOrganisationQuotas("nope", [Q(1)])).Field.ShouldBe("organisation");
        Should.Throw<SpecException>(() => e.Engine.SetProjectQuotas("a", [Q(-1)])).Field.ShouldBe("quotas[0].nominalGpus");
        Should.Throw<SpecException>(() => e.Engine.SetProjectQuotas("a", [Q(1), Q(2)])).Field.ShouldBe("quotas[1].partition");
        Should.Throw<SpecException>(() => e.Engine.SetProjectQuotas("a", [new QuotaSpec("zz", 1)])).Field.ShouldBe("partition");
    }
}
