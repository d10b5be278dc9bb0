using CsCheck;
using GpuCommons.Core.Fleet;
using GpuCommons.Scheduling.Tests.Properties;
using GpuCommons.Scheduling.Tests.Support;
using Xunit.Abstractions;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>
/// Backfill's shadow computation (<c>ShadowPlanner</c>) is a what-if apart from the hold it leads to: it finds when and
/// where a blocked job would start by releasing running jobs in end order into its own scratch, and must leave no trace
/// in anything a decision reads, however many times it runs.
/// </summary>
public sealed class ShadowWhatIfTests(ITestOutputHelper output)
{
    [Fact]
    public void ASingleNodeJob_StartsWhenEnoughOfItsNodeIsFree_NotWhenTheNodeIsEmpty_AndTheWhatIfLeavesNoTrace()
    {
        var e = new CheckedEngine(TestFleets.Flat(1, 8), TenancyBuilder.Simple("a"));
        var t0 = e.Now;
        e.Submit(Job(1).Project("a").Gpus(6).Hours(1));
        e.Submit(Job(2).Project("a").Gpus(2).Hours(3));
        e.Schedule();
        e.Submit(Job(3).Project("a").Gpus(4).Hours(1));

        var before = e.Engine.StateFingerprintForTests();
        var shadow = e.Engine.ShadowForTests(3);
        e.Engine.StateFingerprintForTests().ShouldBe(before);
        shadow.ShouldNotBeNull();
        var again = e.Engine.ShadowForTests(3);
        again.ShouldNotBeNull();
        $"{again.Value.Time:O} {again.Value.Partition} {string.Join(',', again.Value.Nodes)}".ShouldBe($"{shadow.Value.Time:O} {shadow.Value.Partition} {string.Join(',', shadow.Value.Nodes)}",
            "a second what-if, after the first reset its scratch, finds the same");
        shadow.Value.Time.ShouldBe(t0 + TimeSpan.FromHours(1), "job 1's end frees 6 GPUs, enough for 4; job 2 holds its 2 until 3 h");
        shadow.Value.Nodes.ShouldBe([0]);

        e.Schedule();
        e.View(3).EstimatedStart.ShouldBe(shadow.Value.Time, "the hold the cycle makes is the what-if's answer");
    }

    [Fact]
    public void AGang_StartsWhenItsLastNodeIsWhollyFree_OnTheNodesTheWhatIfNames()
    {
        var e = new CheckedEngine(TestFleets.Flat(3, 8), TenancyBuilder.Simple("a"));
        var t0 = e.Now;
        e.Submit(Job(1).Project("a").Gpus(8).Hours(1));
        e.Submit(Job(2).Project("a").Gpus(8).Hours(2));
        e.Submit(Job(3).Project("a").Gpus(4).Hours(4));
        e.Schedule();
        e.Submit(Job(4).Project("a").Gpus(16).Nodes(2).Hours(1));

        var before = e.Engine.StateFingerprintForTests();
        var shadow = e.Engine.ShadowForTests(4);
        e.Engine.StateFingerprintForTests().ShouldBe(before);

        shadow.ShouldNotBeNull();
        shadow.Value.Time.ShouldBe(t0 + TimeSpan.FromHours(2), "the second whole node is free when job 2 ends; job 3 keeps the third busy for 4 h");
        var running = new[] { 1L, 2L }.SelectMany(id => e.View(id).Placement!.Nodes).Order().ToArray();
        shadow.Value.Nodes.Order().ToArray().ShouldBe(running, "the nodes of jobs 1 and 2, not job 3's");
    }

    [Fact]
    public void NoRunningJobsEndCouldFreeEnough_TheWhatIfFindsNothing_AndLeavesNoTrace()
    {
        var e = new CheckedEngine(TestFleets.Flat(2, 8), TenancyBuilder.Simple("a"));
        e.SetNodeState(e.Engine.Fleet.Nodes[1].Name, NodeState.Down);
        e.Submit(Job(1).Project("a").Gpus(8).Hours(1));
        e.Schedule();
        e.Submit(Job(2).Project("a").Gpus(16).Nodes(2).Hours(1));
        e.PendingIds.ShouldBe([2L]);

        var before = e.Engine.StateFingerprintForTests();
        e.Engine.ShadowForTests(2).ShouldBeNull("with its second node down, no end frees two nodes for the gang");
        e.Engine.StateFingerprintForTests().ShouldBe(before);
    }

    /// <summary>In random worlds (every policy, reservations, shares, gangs), the shadow of any pending job changes nothing.</summary>
    [Fact]
    public void Property_TheShadowWhatIf_LeavesNoTrace()
    {
        var gen = from w in RandomWorld.World(20, 120)
                  from cut in Gen.Int[1, 120]
                  select (World: w, Cut: Math.Min(cut, w.Ops.Length));
        var found = 0;
        Deterministic.Sample(gen, c =>
        {
            var e = RandomWorld.PlayPrefix(c.World, c.Cut);
            foreach (var id in e.PendingIds.ToList())
            {
                var before = e.Engine.StateFingerprintForTests();
                if (e.Engine.ShadowForTests(id) is not null)
                {
                    found++;
                }

                var after = e.Engine.StateFingerprintForTests();
                if (after != before)
                {
                    throw new InvalidOperationException($"the shadow of job {id} changed the engine's state:\n{before}\n---\n{after}");
                }
            }
        }, iter: 200, stream: 91, print: c => $"cut {c.Cut}\n{c.World}", writeLine: output.WriteLine);

        output.WriteLine($"{found} shadows found a start");
        found.ShouldBeGreaterThan(20, "the worlds must reach blocked jobs for this to test anything");
    }
}
