using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Tests.Support;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>Node drain and failure, advance reservations for a project and for maintenance.</summary>
public sealed class NodesAndReservationsTests
{
    private static CheckedEngine Engine(int nodes = 2, SchedulerOptions? options = null) =>
        new(TestFleets.Flat(nodes, 8), TenancyBuilder.Simple("a", "b", "f"), options ?? new SchedulerOptions { Ordering = OrderingPolicy.Fifo });

    [Fact]
    public void NodeDown_RequeuesRequeueableJobs_AndFailsTheOthers()
    {
        var e = Engine();
        e.Submit(Job(1).Gpus(8).Hours(5));
        e.Submit(Job(2).Gpus(8).Hours(5).NotRequeueable());
        e.Schedule();
        var n1 = e.NodesOf(1).Single();
        var n2 = e.NodesOf(2).Single();

        var ends = e.SetNodeState(n1, NodeState.Down);
        var end = ends.ShouldHaveSingleItem();
        end.Requeued.ShouldBeTrue();
        end.Outcome.ShouldBe(JobOutcome.NodeFailure);
        e.View(1).State.ShouldBe(JobState.Pending);

        ends = e.SetNodeState(n2, NodeState.Down);
        ends.ShouldHaveSingleItem().State.ShouldBe(JobState.Failed);
        e.Engine.GetJob(2).ShouldBeNull();
        e.Ended[2].State.ShouldBe(JobState.Failed);

        e.Schedule();
        e.IsRunning(1).ShouldBeFalse("every node is down");
        e.Reason(1).ShouldBe(PendingReason.NodesUnavailable);

        e.SetNodeState(n1, NodeState.Up);
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue();
        e.NodesOf(1).ShouldBe([n1]);
    }

    [Fact]
    public void NodeDown_TakesTheWholeGangDown()
    {
        var e = Engine(3);
        e.Submit(Job(1).Gpus(16).Hours(5));
        e.Schedule();
        var nodes = e.NodesOf(1);

        e.SetNodeState(nodes[0], NodeState.Down).ShouldHaveSingleItem().JobId.ShouldBe(1);
        e.Engine.GetStats().FreeGpus.ShouldBe(16, "the gang's other node is released with it");
    }

    [Fact]
    public void DrainedNode_KeepsItsJobs_ButTakesNoNewOnes()
    {
        var e = Engine(2);
        e.Submit(Job(1).Gpus(4).Hours(5));
        e.Schedule();
        var n1 = e.NodesOf(1).Single();
        e.SetNodeState(n1, NodeState.Draining).ShouldBeEmpty();
        e.IsRunning(1).ShouldBeTrue();

        e.Submit(Job(2).Gpus(4));
        e.Submit(Job(3).Gpus(4));
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue();
        e.NodesOf(2).ShouldNotContain(n1);
        e.IsRunning(3).ShouldBeTrue();
        e.NodesOf(3).ShouldNotContain(n1);

        e.Submit(Job(4).Gpus(1));
        e.Schedule();
        e.IsRunning(4).ShouldBeFalse("the only free GPUs are on the drained node");
    }

    [Fact]
    public void AllNodesDrained_ReasonIsNodesUnavailable()
    {
        var e = Engine(2);
        e.SetNodeState("n01", NodeState.Draining);
        e.SetNodeState("n02", NodeState.Down);
        e.Submit(Job(1).Gpus(1));
        e.Schedule();

        e.Reason(1).ShouldBe(PendingReason.NodesUnavailable);
    }

    [Fact]
    public void ProjectReservation_BeforeTheWindow_OthersOnlyIfTheyEndInTime_InTheWindow_OwnerOnly()
    {
        var e = Engine(2);
        var t0 = e.Now;
        e.AddReservation(new AdvanceReservation("flagship", ["n01"], t0.AddHours(2), t0.AddHours(6), "f"));

        e.Submit(Job(1).Project("a").Gpus(8).Hours(1));
        e.Submit(Job(2).Project("a").Gpus(8).Hours(3));
        e.Submit(Job(3).Project("b").Gpus(8).Hours(3));
        e.Schedule();
        e.NodesOf(1).ShouldBe(["n01"], "it ends before the window opens");
        e.NodesOf(2).ShouldBe(["n02"]);
        e.IsRunning(3).ShouldBeFalse("it would run into the window");

        e.Advance(TimeSpan.FromHours(2));
        e.Submit(Job(4).Project("f").Gpus(8).Hours(2));
        e.Submit(Job(5).Project("b").Gpus(1).Minutes(10));
        e.Schedule();
        e.NodesOf(4).ShouldBe(["n01"]);
        e.IsRunning(5).ShouldBeFalse();
        e.IsRunning(3).ShouldBeFalse();

        // The window closes: the nodes return to everyone.
        e.Advance(TimeSpan.FromHours(4));
        e.Schedule();
        e.Engine.Reservations.ShouldBeEmpty();
        e.IsRunning(3).ShouldBeTrue();
        e.IsRunning(5).ShouldBeTrue();
    }

    [Fact]
    public void MaintenanceWindow_NoJobRunsIntoIt()
    {
        var e = Engine(1);
        var t0 = e.Now;
        e.AddReservation(new AdvanceReservation("maint", ["n01"], t0.AddHours(1), t0.AddHours(3), null));

        e.Submit(Job(1).Project("a").Gpus(4).Minutes(50));
        e.Submit(Job(2).Project("f").Gpus(4).Hours(2));
        e.Schedule();
        e.IsRunning(1).ShouldBeTrue();
        e.IsRunning(2).ShouldBeFalse("no project owns a maintenance window");

        e.Advance(TimeSpan.FromHours(1));
        e.Submit(Job(3).Project("a").Gpus(1).Minutes(1));
        e.Schedule();
        e.IsRunning(3).ShouldBeFalse();

        e.Advance(TimeSpan.FromHours(2));
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue();
    }

    [Fact]
    public void Reservation_InvalidRequests_AreRejectedNamingTheField()
    {
        var e = Engine(2);
        var t0 = e.Now;
        e.AddReservation(new AdvanceReservation("r1", ["n01"], t0, t0.AddHours(1), "f"));

        Should.Throw<Core.SpecException>(() => e.Engine.AddReservation(new AdvanceReservation("r1", ["n02"], t0, t0.AddHours(1), "f"))).Field.ShouldBe("name");
        Should.Throw<Core.SpecException>(() => e.Engine.AddReservation(new AdvanceReservation("r2", ["n01"], t0, t0.AddHours(1), "f"))).Field.ShouldBe("nodes");
        Should.Throw<Core.SpecException>(() => e.Engine.AddReservation(new AdvanceReservation("r3", ["n09"], t0, t0.AddHours(1), "f"))).Field.ShouldBe("nodes");
        Should.Throw<Core.SpecException>(() => e.Engine.AddReservation(new AdvanceReservation("r4", ["n02"], t0, t0, "f"))).Field.ShouldBe("end");
        Should.Throw<Core.SpecException>(() => e.Engine.AddReservation(new AdvanceReservation("r5", ["n02"], t0, t0.AddHours(1), "nobody"))).Field.ShouldBe("project");
        e.Verify("rejected reservations");
    }

    /// <summary>Regression: a maintenance window added on a node already held for a blocked job let that job start inside the window.</summary>
    [Fact]
    public void Reservation_OnANodeHeldForABlockedJob_KeepsTheHolderOut()
    {
        var e = Engine(1);
        var t0 = e.Now;
        e.Submit(Job(1).Gpus(4).Hours(2));
        e.Schedule();
        e.Submit(Job(2).Gpus(8).Hours(1));
        e.Schedule();
        e.Reason(2).ShouldBe(PendingReason.Reserved);

        e.AddReservation(new AdvanceReservation("maint", ["n01"], t0.AddHours(1), t0.AddHours(5), null));
        e.Advance(TimeSpan.FromHours(2));
        e.Schedule(full: false);

        e.IsRunning(2).ShouldBeFalse("node n01 is in maintenance until t0+5h");
    }

    /// <summary>Regression: a hold the owner's blocked job made on its reserved nodes let other projects backfill into the reservation.</summary>
    [Fact]
    public void HoldOnTheOwnersReservedNodes_IsNotOpenToOtherProjects()
    {
        var e = Engine(1);
        var t0 = e.Now;
        e.AddReservation(new AdvanceReservation("flagship", ["n01"], t0, t0.AddHours(10), "f"));
        e.Submit(Job(1).Project("f").Gpus(4).Hours(2));
        e.Submit(Job(2).Project("f").Gpus(8).Hours(2));
        e.Submit(Job(3).Project("a").Gpus(2).Hours(1));
        e.Schedule();

        e.IsRunning(1).ShouldBeTrue();
        e.Reason(2).ShouldBe(PendingReason.Reserved);
        e.IsRunning(3).ShouldBeFalse("n01 belongs to project f until t0+10h");
    }
}
