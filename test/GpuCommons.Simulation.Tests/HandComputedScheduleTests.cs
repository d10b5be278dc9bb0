using GpuCommons.Simulation.Traces;
using Shouldly;
using Xunit;

namespace GpuCommons.Simulation.Tests;

/// <summary>
/// One node of 4 GPUs, five jobs of one user; walltimes are exact. Each policy's schedule was worked out by hand:
/// J1 2 GPUs 100 s at 0; J2 4 GPUs 50 s at 10; J3 1 GPU 30 s at 20; J4 2 GPUs 200 s at 30; J5 4 GPUs 10 s at 40.
/// </summary>
public class HandComputedScheduleTests
{
    private static readonly List<TraceJob> Jobs =
    [
        TestData.Job(1, 0, 2, 100),
        TestData.Job(2, 10, 4, 50),
        TestData.Job(3, 20, 1, 30),
        TestData.Job(4, 30, 2, 200),
        TestData.Job(5, 40, 4, 10),
    ];

    public static TheoryData<string, string> Cases => new()
    {
        // FIFO, no backfill: J2 blocks everything behind it until J1 ends; J5 waits for both J3 and J4.
        { "fifo", "1:0-100 2:100-150 3:150-180 4:150-350 5:350-360" },
        // EASY: J2 is reserved for t=100; J3 (ends at 50) backfills; J4 (ends at 250) may not.
        { "fifo-easy", "1:0-100 2:100-150 3:20-50 4:150-350 5:350-360" },
        // Multifactor: one user, so fair share ties; the size factor puts J5 (4 GPUs) before J4 (2 GPUs) at t=100.
        { "multifactor", "1:0-100 2:100-150 3:20-50 4:160-360 5:150-160" },
        // LAS: no job reaches the first queue threshold (1 GPU-hour; J4's 400 GPU-s is the most), so one queue: FIFO with
        // EASY, and no preemption.
        { "las", "1:0-100 2:100-150 3:20-50 4:150-350 5:350-360" },
        // SRTF: J3 (30 s) before J2 (50 s) at t=20; at t=40 J5 (10 s) takes the reservation ahead of J2.
        { "srtf", "1:0-100 2:110-160 3:20-50 4:160-360 5:100-110" },
    };

    /// <summary>
    /// FIFO is FIFO whatever the cycle interval: between full cycles the 1-GPU job that arrives at 20 s used to start on
    /// the 2 free GPUs, ahead of the blocked 4-GPU head (incremental passes tried arrivals alone). It waits for it.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(60)]
    [InlineData(300)]
    public void Fifo_AnyCycleInterval_NoJobStartsAheadOfTheBlockedHead(double cycle)
    {
        var fleet = TestData.Nodes(("n1", 4));
        List<TraceJob> jobs = [TestData.Job(1, 0, 2, 100), TestData.Job(2, 10, 4, 50), TestData.Job(3, 20, 1, 30)];
        var (csv, _) = TestData.Run(fleet, TestData.Trace(jobs), "fifo", cycle: cycle);
        var rows = ScheduleChecker.Parse(csv);
        string.Join(" ", rows.OrderBy(r => r.Job, StringComparer.Ordinal).Select(r => $"{r.Job}:{r.Start}-{r.End}")).ShouldBe("1:0-100 2:100-150 3:150-180");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Policy_TinyWorkload_MatchesHandSchedule(string policy, string expected)
    {
        var fleet = TestData.Nodes(("n1", 4));
        var (csv, result) = TestData.Run(fleet, TestData.Trace(Jobs), policy, cycle: 0);
        var rows = ScheduleChecker.Parse(csv);
        var actual = string.Join(" ", rows.OrderBy(r => r.Job, StringComparer.Ordinal).Select(r => $"{r.Job}:{r.Start}-{r.End}"));
        actual.ShouldBe(expected);
        rows.ShouldAllBe(r => r.State == "finished" && r.Partition == "default");
        ScheduleChecker.Check(csv, Jobs).ShouldBeEmpty();
        result.All.Finished.ShouldBe(5);
    }

    /// <summary>
    /// LAS with one threshold of 0.1 GPU-hour (360 GPU-s), two queues, on the 4-GPU node; no job checkpoints, so the grace
    /// is 0. Project "big": J1 4 GPUs 300 s at 0; project "small": J2 2 GPUs 100 s at 50, J3 1 GPU 20 s at 120.
    /// t=50: J1 has 200 GPU-s, the same queue as J2: no preemption (the threshold); J2 is reserved for t=300.
    /// t=120: J1 has 480 GPU-s, the lower queue: J2 preempts it and J1 is stopped at once. J2 starts on its claim, J3 (first
    /// queue, ahead of J1 in the lower one despite its later submit) takes 1 of the 2 GPUs left: 120–140. J1 starts over
    /// when J2 ends: 220–520, and nothing preempts it again (nobody else is left).
    /// </summary>
    [Fact]
    public void Las_TinyWorkload_PreemptsJobsOfALowerQueue()
    {
        List<TraceJob> jobs = [TestData.Job(1, 0, 4, 300, "big"), TestData.Job(2, 50, 2, 100, "small"), TestData.Job(3, 120, 1, 20, "small")];
        var (csv, r) = TestData.Run(TestData.Nodes(("n1", 4)), TestData.Trace(jobs), "las", cycle: 0, tune: o => o.LasThresholdsGpuHours = [0.1]);
        var rows = ScheduleChecker.Parse(csv);
        var actual = string.Join(" ", rows.OrderBy(x => x.Job, StringComparer.Ordinal).ThenBy(x => x.Start).Select(x => $"{x.Job}:{x.Start}-{x.End}:{x.State}"));
        actual.ShouldBe("1:0-120:preempted 1:220-520:finished 2:120-220:finished 3:120-140:finished");
        ScheduleChecker.Check(csv, jobs).ShouldBeEmpty();
        r.All.Preemptions.ShouldBe(1);
        r.All.LostGpuHours.ShouldBe(4 * 120 / 3600.0, 1e-9);
    }

    [Fact]
    public void Las_SameProject_DoesNotPreempt()
    {
        // All three jobs of one project: a project's jobs never preempt each other, so J2 and J3 wait for J1 (reserved
        // for t=300) and then go in queue order: J2 300–400 with J3 300–320.
        List<TraceJob> jobs = [TestData.Job(1, 0, 4, 300), TestData.Job(2, 50, 2, 100), TestData.Job(3, 120, 1, 20)];
        var (csv, r) = TestData.Run(TestData.Nodes(("n1", 4)), TestData.Trace(jobs), "las", cycle: 0, tune: o => o.LasThresholdsGpuHours = [0.1]);
        var rows = ScheduleChecker.Parse(csv);
        string.Join(" ", rows.OrderBy(x => x.Job, StringComparer.Ordinal).Select(x => $"{x.Job}:{x.Start}-{x.End}")).ShouldBe("1:0-300 2:300-400 3:300-320");
        r.All.Preemptions.ShouldBe(0);
    }

    [Fact]
    public void Las_NoPreemption_KeepsQueueOrderWithoutStoppingAnyone()
    {
        // The same workload with preemption off: J2 waits for J1 (reserved for t=300); J3 (first queue) backfills into
        // nothing (all 4 GPUs are J1's) and goes after J2 in FIFO order within its queue: J2 300–400 with J3 300–320.
        List<TraceJob> jobs = [TestData.Job(1, 0, 4, 300, "big"), TestData.Job(2, 50, 2, 100, "small"), TestData.Job(3, 120, 1, 20, "small")];
        var (csv, r) = TestData.Run(TestData.Nodes(("n1", 4)), TestData.Trace(jobs), "las", cycle: 0, tune: o =>
        {
            o.LasThresholdsGpuHours = [0.1];
            o.Preemption = false;
        });
        var rows = ScheduleChecker.Parse(csv);
        var actual = string.Join(" ", rows.OrderBy(x => x.Job, StringComparer.Ordinal).Select(x => $"{x.Job}:{x.Start}-{x.End}"));
        actual.ShouldBe("1:0-300 2:300-400 3:300-320");
        r.All.Preemptions.ShouldBe(0);
    }

    [Fact]
    public void Fifo_TinyWorkload_FiguresAndBounds()
    {
        var (_, r) = TestData.Run(TestData.Nodes(("n1", 4)), TestData.Trace(Jobs), "fifo", cycle: 0);

        // JCTs 100, 140, 160, 320, 320 → 208; waits 0, 90, 130, 120, 310 → 130.
        r.All.Jct.Mean.ShouldBe(208, 1e-9);
        r.All.Wait.Mean.ShouldBe(130, 1e-9);
        r.All.Wait.Max.ShouldBe(310);
        r.MakespanSeconds.ShouldBe(360);

        // Lower bounds: mean run time 78 s; pooled SRPT on 4 GPUs (works 200, 200, 30, 400, 40 GPU-s) has flows
        // 67.5, 107.5, 7.5, 187.5, 10 (mean 76), so 78. Makespan: J4 cannot end before 30 + 200.
        r.AvgJctLowerBound.ShouldBe(78, 1e-6);
        r.MakespanLowerBound.ShouldBe(230, 1e-6);
        r.OfferedLoad.ShouldBe(870.0 / (4 * 40), 1e-9);
    }

    [Fact]
    public void FractionalShares_PackOneGpu()
    {
        List<TraceJob> jobs = [TestData.Job(1, 0, 0.5, 100), TestData.Job(2, 0, 0.25, 100), TestData.Job(3, 0, 0.25, 50), TestData.Job(4, 10, 0.5, 10)];
        var (csv, _) = TestData.Run(TestData.Nodes(("n1", 1)), TestData.Trace(jobs), "fifo-easy", cycle: 0);
        var rows = ScheduleChecker.Parse(csv).OrderBy(r => r.Job).ToList();
        rows.Select(r => $"{r.Job}:{r.Start}-{r.End}").ShouldBe(["1:0-100", "2:0-100", "3:0-50", "4:100-110"]);
        rows[0].Slots.ShouldBe([("n1", 0, 0.5)]);
        csv.ShouldContain(",n1:0:0.25\n");
        ScheduleChecker.Check(csv, jobs).ShouldBeEmpty();
    }
}
