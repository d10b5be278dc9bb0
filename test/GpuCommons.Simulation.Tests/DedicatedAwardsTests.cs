using GpuCommons.Core.Fleet;
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
}
