using CsCheck;
using GpuCommons.Core;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Tests.Properties;
using GpuCommons.Scheduling.Tests.Support;
using Xunit.Abstractions;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>
/// Preemption is planned (a what-if that finds the victims) apart from its commit: planning must leave no trace in
/// anything a decision reads (GPU use, pools, quota sums, grants, jobs), as Kueue's preemption test asserts that its
/// snapshot was not modified.
/// </summary>
public sealed class PreemptionWhatIfTests(ITestOutputHelper output)
{
    private static QuotaSpec Q(double nominal, double? borrow = null) => new("p", nominal, borrow);

    [Fact]
    public void PlanForAPreemptibleVictim_NamesIt_AndLeavesNoTrace_ThenTheCycleStopsExactlyIt()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a", "b"));
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10).Preemptible());
        e.Schedule();
        e.Submit(Job(2).Project("b").Gpus(8).Hours(1));

        var before = e.Engine.StateFingerprintForTests();
        var plan = e.Engine.PlanPreemptionForTests(2);
        e.Engine.StateFingerprintForTests().ShouldBe(before);
        plan.ShouldBe([1L]);

        var r = e.Schedule();
        r.Preempted.Select(p => p.JobId).ShouldBe(plan);
        e.Engine.StateFingerprintForTests().ShouldNotBe(before, "the commit, unlike the plan, changes the state");
    }

    [Fact]
    public void PlanToReclaimBorrowedQuota_NamesTheBorrower_AndLeavesTheQuotaSumsAsTheyWere()
    {
        var tenancy = Tenants()
            .Org("oa", quotas: [Q(8)]).Org("ob", quotas: [Q(8)])
            .Project("a", "oa", quotas: [Q(8)])
            .Project("b", "ob", quotas: [Q(8)])
            .Obj();
        var e = new CheckedEngine(TestFleets.Flat(2, 8), tenancy, new SchedulerOptions { Ordering = OrderingPolicy.Fifo });
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Schedule();
        e.Advance(TimeSpan.FromMinutes(30));
        e.Submit(Job(2).Project("a").Gpus(4).Hours(10));
        e.Schedule();
        e.IsRunning(2).ShouldBeTrue("a borrows b's idle quota");
        e.Advance(TimeSpan.FromMinutes(30));
        e.Submit(Job(3).Project("b").Gpus(8).Hours(1));

        var before = e.Engine.StateFingerprintForTests();
        var plan = e.Engine.PlanPreemptionForTests(3);
        e.Engine.StateFingerprintForTests().ShouldBe(before);
        plan.ShouldBe([2L]);

        e.Schedule().Preempted.Select(p => p.JobId).ShouldBe(plan);
    }

    [Fact]
    public void NothingToPreempt_PlanIsNull_AndLeavesNoTrace()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a", "b"));
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10));
        e.Schedule();
        e.Submit(Job(2).Project("b").Gpus(8).Hours(1));

        var before = e.Engine.StateFingerprintForTests();
        e.Engine.PlanPreemptionForTests(2).ShouldBeNull("a normal job is no victim of another normal job within no guarantee");
        e.Engine.StateFingerprintForTests().ShouldBe(before);
    }

    /// <summary>In random worlds (every policy, preemption on), planning a preemption for any pending job changes nothing.</summary>
    [Fact]
    public void Property_PlanningAPreemption_LeavesNoTrace()
    {
        var gen = from w in RandomWorld.World(20, 120)
                  from cut in Gen.Int[1, 120]
                  select (World: w with { Options = w.Options with { Preemption = true } }, Cut: Math.Min(cut, w.Ops.Length));
        var planned = 0;
        Deterministic.Sample(gen, c =>
        {
            var e = RandomWorld.PlayPrefix(c.World, c.Cut);
            foreach (var id in e.PendingIds.ToList())
            {
                var before = e.Engine.StateFingerprintForTests();
                if (e.Engine.PlanPreemptionForTests(id) is { Count: > 0 })
                {
                    planned++;
                }

                var after = e.Engine.StateFingerprintForTests();
                if (after != before)
                {
                    throw new InvalidOperationException($"planning a preemption for job {id} changed the engine's state:\n{FirstDifference(before, after)}");
                }
            }
        }, iter: 200, stream: 90, print: c => $"cut {c.Cut}\n{c.World}", writeLine: output.WriteLine);

        output.WriteLine($"{planned} plans that named victims");
        planned.ShouldBeGreaterThan(20, "the worlds must reach preemptions for this to test anything");
    }

    private static string FirstDifference(string a, string b)
    {
        var la = a.Split('\n');
        var lb = b.Split('\n');
        for (var i = 0; i < Math.Min(la.Length, lb.Length); i++)
        {
            if (la[i] != lb[i])
            {
                return $"before: {la[i]}\nafter:  {lb[i]}";
            }
        }

        return "(line counts differ)";
    }
}
