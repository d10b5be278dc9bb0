using GpuCommons.Backends.Slurm.Parsing;
using Microsoft.Extensions.Time.Testing;
using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

public class ReconcilerTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 27, 18, 30, 0, TimeSpan.Zero);
    private static readonly SlurmReconcilerOptions Options = new();

    private static SlurmJobRow Row(long id, string name, SlurmJobState state, string nodes = "n1", DateTimeOffset? end = null, string? reason = null) =>
        new(id, name, state, reason, HostList.Expand(nodes), Now.AddMinutes(-20), state == SlurmJobState.Pending ? null : Now.AddMinutes(-19), end);

    private static ExpectedJob Expect(long id, ExpectedJobState state, long? slurmId, string nodes = "n1", int minutesAgo = 10, int attempt = 0) =>
        new(id, attempt, state, slurmId, Now.AddMinutes(-minutesAgo), HostList.Expand(nodes));

    private static List<SlurmDiscrepancy> Diff(IReadOnlyCollection<ExpectedJob> expected, IReadOnlyList<SlurmJobRow> queue,
        IReadOnlyList<SlurmJobRow>? acct = null, IReadOnlyList<SlurmParseError>? errors = null) =>
        SlurmReconciler.Diff("gpuc-", expected, new SlurmSnapshot(Now, queue, acct ?? [], [], errors ?? []), Options, Now);

    [Fact]
    public void Diff_Agreement_NoDiscrepancy()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, 100), Expect(2, ExpectedJobState.Submitted, 101, minutesAgo: 1)],
            [Row(100, "gpuc-1", SlurmJobState.Running), Row(101, "gpuc-2", SlurmJobState.Pending), Row(5, "someone else", SlurmJobState.Running)]);

        d.ShouldBeEmpty();
    }

    [Fact]
    public void Diff_MissingEverywhere_IsLost()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, 100), Expect(2, ExpectedJobState.Submitted, null)], []);

        d.Select(x => (x.Kind, x.JobId)).ShouldBe([(DiscrepancyKind.LostInSlurm, 1L), (DiscrepancyKind.LostInSlurm, 2L)]);
        d[1].Detail.ShouldContain("never saved");
    }

    [Fact]
    public void Diff_MissingButJustSubmitted_IsNotLostYet()
    {
        Diff([Expect(1, ExpectedJobState.Submitted, 100, minutesAgo: 0)], []).ShouldBeEmpty();
    }

    [Fact]
    public void Diff_MalformedOutput_NeverDeclaresLost()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, 100)], [], errors: [new SlurmParseError("squeue", 1, "x", "bad")]);

        d.ShouldHaveSingleItem().Kind.ShouldBe(DiscrepancyKind.MalformedOutput);
    }

    [Fact]
    public void Diff_ControllerForgotButAccountingSaysRunning_IsLost()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, 100)], [], [Row(100, "gpuc-1", SlurmJobState.Running)]);

        d.ShouldHaveSingleItem().Kind.ShouldBe(DiscrepancyKind.LostInSlurm);
    }

    [Fact]
    public void Diff_EndedLongAgoInAccounting_IsEndedInSlurm()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, 100)], [], [Row(100, "gpuc-1", SlurmJobState.Completed, end: Now.AddMinutes(-10))]);

        d.ShouldHaveSingleItem().Kind.ShouldBe(DiscrepancyKind.EndedInSlurm);
    }

    [Fact]
    public void Diff_UnknownAndDuplicate()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, 100)],
            [Row(100, "gpuc-1", SlurmJobState.Running), Row(102, "gpuc-1", SlurmJobState.Pending), Row(200, "gpuc-77", SlurmJobState.Running),
             Row(201, "gpuc-78", SlurmJobState.Completed, end: Now)]);

        d.Select(x => x.Kind).OrderBy(k => k).ShouldBe([DiscrepancyKind.UnknownInSlurm, DiscrepancyKind.DuplicateInSlurm]);
        d.Single(x => x.Kind == DiscrepancyKind.UnknownInSlurm).SlurmJobId.ShouldBe(200);
    }

    [Fact]
    public void Diff_PendingPastTimeout_IsNotStartedInTime()
    {
        var d = Diff([Expect(1, ExpectedJobState.Submitted, 100, minutesAgo: 6)], [Row(100, "gpuc-1", SlurmJobState.Pending, "", reason: "ReqNodeNotAvail")]);

        var x = d.ShouldHaveSingleItem();
        x.Kind.ShouldBe(DiscrepancyKind.NotStartedInTime);
        x.Detail.ShouldContain("ReqNodeNotAvail");
    }

    [Fact]
    public void Diff_RunningElsewhere_IsWrongNodes()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, 100, "n1,n2")], [Row(100, "gpuc-1", SlurmJobState.Running, "n[2-3]")]);

        d.ShouldHaveSingleItem().Kind.ShouldBe(DiscrepancyKind.WrongNodes);
    }

    [Fact]
    public void Diff_RequeuedAttempt_MatchesByAttemptName()
    {
        var d = Diff([Expect(1, ExpectedJobState.Running, null, attempt: 1)],
            [Row(100, "gpuc-1", SlurmJobState.NodeFail, end: Now.AddMinutes(-30)), Row(101, "gpuc-1-r1", SlurmJobState.Running)]);

        d.ShouldBeEmpty();
    }

    [Fact]
    public async Task ReconcileAsync_ControllerDown_ReportsUnreachableAndBacksOff()
    {
        var time = new FakeTimeProvider(Now);
        var slurm = new FakeSlurm { Down = true };
        await using var backend = new SlurmBackend(null, slurm, time);
        var reconciler = new SlurmReconciler(backend, null, time);

        var r1 = await reconciler.ReconcileAsync([Expect(1, ExpectedJobState.Running, 100)], default);
        var calls = slurm.Calls.Count;
        var r2 = await reconciler.ReconcileAsync([Expect(1, ExpectedJobState.Running, 100)], default);

        r1.SlurmReachable.ShouldBeFalse();
        r1.Discrepancies.ShouldHaveSingleItem().Kind.ShouldBe(DiscrepancyKind.ControllerUnreachable);
        r2.Discrepancies.ShouldHaveSingleItem().Kind.ShouldBe(DiscrepancyKind.ControllerUnreachable);
        slurm.Calls.Count.ShouldBe(calls);

        slurm.Down = false;
        slurm.Squeue = "100|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:01|N/A|gpuc-1\n";
        time.Advance(TimeSpan.FromMinutes(1));
        var r3 = await reconciler.ReconcileAsync([Expect(1, ExpectedJobState.Running, 100)], default);
        r3.SlurmReachable.ShouldBeTrue();
        r3.Discrepancies.ShouldBeEmpty();
        reconciler.Recent.Count.ShouldBe(2);
    }

    [Fact]
    public async Task ReconcileAsync_MissingFromQueue_AsksAccountingBeforeDeclaringLost()
    {
        var time = new FakeTimeProvider(Now);
        var slurm = new FakeSlurm { Sacct = "100|COMPLETED|0:0|2026-11-27T18:00:00|2026-11-27T18:00:01|2026-11-27T18:29:00|60|n1|gres/gpu=1|gpuc-1\n" };
        await using var backend = new SlurmBackend(null, slurm, time);
        var reconciler = new SlurmReconciler(backend, null, time);

        var r = await reconciler.ReconcileAsync([Expect(1, ExpectedJobState.Running, 100), Expect(2, ExpectedJobState.Running, 101)], default);

        r.Discrepancies.ShouldHaveSingleItem().JobId.ShouldBe(2); // job 1 ended a minute ago (in grace); job 2 is nowhere
        slurm.Calls.Single(c => c.Tool == "sacct").Args.ShouldContain("--jobs=100,101");
    }
}
