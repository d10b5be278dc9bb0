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
        // LAS without preemption: nobody has attained service while pending, so FIFO order with EASY.
        { "las", "1:0-100 2:100-150 3:20-50 4:150-350 5:350-360" },
        // SRTF: J3 (30 s) before J2 (50 s) at t=20; at t=40 J5 (10 s) takes the reservation ahead of J2.
        { "srtf", "1:0-100 2:110-160 3:20-50 4:160-360 5:100-110" },
    };

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
