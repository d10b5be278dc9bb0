using GpuCommons.Core.Fleet;
using GpuCommons.Simulation;
using GpuCommons.Simulation.Planning;
using Shouldly;
using Xunit;

namespace GpuCommons.Simulation.Tests;

/// <summary>A round's capacity awards on the planner's fleet timelines: what the shared queue keeps, and which months are over-promised.</summary>
public sealed class DedicatedAwardsTests
{
    [Fact]
    public void Awards_OnTheDeliveryTimeline_AreOverPromisedOnlyBeforeTheB200sArrive()
    {
        var plan = new CapacityPlanner { Fleet = FleetSpecLoader.Load("national"), Months = 4, ArrivalMonth = 1 };
        var json = """
            [{"kind":"capacity","partition":"b200-a","gpus":1024,"start":"2026-03-01T00:00:00Z","end":"2026-09-01T00:00:00Z"},
             {"kind":"capacity","partition":"h200-a","gpus":512,"start":"2026-03-01T00:00:00Z","end":"2026-05-01T00:00:00Z"},
             {"kind":"gpu_hours","partition":"h200-a","gpus":0,"start":"2026-03-01T00:00:00Z","end":"2026-05-01T00:00:00Z"}]
            """;
        var awards = DedicatedAwards.Read(json, "awards");
        awards.Count.ShouldBe(2);
        var start = GpuCommons.Core.Rounds.Months.Of(2026, 3);
        var onTime = DedicatedAwards.Check(plan.Fleet, plan.Scenario("on-time"), plan.Months, plan.MonthSeconds, start, awards);
        var b200 = onTime.Rows.Where(r => r.Partition == "b200-a").ToDictionary(r => r.Month - start);
        b200[0].Over.ShouldBeTrue("the B200s arrive in month 1");
        b200[1].Capacity.ShouldBe(4080);
        b200[1].SharedQueue.ShouldBe(4080 - 1024);
        var h200 = onTime.Rows.Where(r => r.Partition == "h200-a").ToDictionary(r => r.Month - start);
        h200[1].SharedQueue.ShouldBe(2040 - 512);
        h200[2].SharedQueue.ShouldBe(2040, "the H200 award ended");
        var never = DedicatedAwards.Check(plan.Fleet, plan.Scenario("no-arrival"), plan.Months, plan.MonthSeconds, start, awards);
        never.Violations.Count.ShouldBe(4);
        DedicatedAwards.Check(plan.Fleet, plan.Scenario("full"), plan.Months, plan.MonthSeconds, start, awards).Feasible.ShouldBeTrue();
    }

    /// <summary>
    /// In a simulation, an award holds its nodes from its start month to its end: the shared queue runs on the rest, jobs
    /// on the award's nodes are reclaimed at its start, and the nodes come back when it ends.
    /// </summary>
    [Fact]
    public void Simulation_AwardHoldsItsNodesFromStartToEnd_TheSharedQueueRunsOnTheRest()
    {
        var fleet = TestData.Nodes(("n1", 8), ("n2", 8), ("n3", 8), ("n4", 8));
        var partition = fleet.Partitions[0].Name;
        var month = new SimulationOptions().MonthSeconds;
        var awards = new List<(string, int, DateTimeOffset, DateTimeOffset)>
        {
            (partition, 16, new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero)),
            // Overlaps the first: never on the same nodes; more than is left, so its months are over-promised.
            (partition, 24, new DateTimeOffset(2026, 2, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero)),
        };
        var start = GpuCommons.Core.Rounds.Months.Of(2026, 1);
        var d = DedicatedAwards.Dedicate(fleet, awards, start, month);
        d.Awards.ShouldBe(2);
        var rows = d.Rows.ToDictionary(r => r.Month - start);
        rows.Keys.Order().ShouldBe([1, 2]);
        rows[1].Added.ShouldBe(40);
        rows[1].Over.ShouldBeTrue();
        rows[2].SharedQueue.ShouldBe(8);
        d.Feasible.ShouldBeFalse();
        var downs = d.Events.Where(e => e.State == NodeState.Down).ToList();
        downs.SelectMany(e => e.Nodes).Distinct().Count().ShouldBe(downs.Sum(e => e.Nodes.Count), "no node is held by two overlapping awards");
        downs.Sum(e => e.Nodes.Count).ShouldBe(4, "the second award gets what is left");

        // One award of two nodes in month 1; 8-GPU jobs keep all four nodes busy the whole time.
        var one = DedicatedAwards.Dedicate(fleet, awards.Take(1), start, month);
        var held = one.Events[0].Nodes.ToHashSet();
        held.Count.ShouldBe(2);
        var jobs = Enumerable.Range(1, 100).Select(i => TestData.Job(i, 0, 8, 4 * 86400, walltime: 4 * 86400)).ToList();
        var sw = new StringWriter { NewLine = "\n" };
        Simulator.Run(fleet, TestData.Trace(jobs), new SimulationOptions { Scheduler = Policies.Create("fifo-easy"), CycleIntervalSeconds = 0, ScheduleOut = sw, Timeline = one.Events });
        var segments = ScheduleChecker.Parse(sw.ToString()).Where(r => r.Start is not null).ToList();
        foreach (var r in segments.Where(r => r.Slots.Any(x => held.Contains(x.Node))))
        {
            var overlaps = r.Start < 2 * month && (r.End ?? double.MaxValue) > month;
            overlaps.ShouldBeFalse($"job {r.Job} ran on an award's node from {r.Start} to {r.End}");
        }

        segments.Count(r => r.Slots.Any(x => held.Contains(x.Node)) && r.Start >= 2 * month).ShouldBeGreaterThan(0, "the nodes return to the shared queue when the award ends");
        segments.Count(r => r.Start >= month && r.Start < 2 * month).ShouldBeGreaterThan(0, "the shared queue runs on the rest meanwhile");
    }
}
