using CsCheck;
using GpuCommons.Scheduling.Tests.Support;
using Shouldly;
using Xunit;
using Xunit.Abstractions;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// The lazy order decides exactly as the whole sort: a full pass that sorts only the head of the queue and, once nothing
/// left can change the state, decides the rest unsorted (<c>SchedulerOptions.LazyOrder</c>) leaves the engine in the same
/// state after every event as one that sorts and walks the whole queue. The same random world is played on both, with a
/// head of 1 to 4 jobs so that small worlds reach the unsorted rest; after each event the whole state is compared: GPUs,
/// pools and reservations, quota and grants, and every job's state, reason, estimated start and held pool. Both ways of
/// deciding the rest unsorted are reached: settled by the partitions (<c>RestIsSettled</c>) and checked job by job
/// (<c>TryDecideCheckedRest</c>).
/// </summary>
public sealed class LazyOrderAgreesProperty(ITestOutputHelper output)
{
    // Busy worlds: a completion or a cancellation is a submission instead half of the time, so that the fleet fills and
    // passes reach the settled rest often.
    private static readonly Gen<(WorldShape World, int Head, int Preemptors)> Cases =
        from w in RandomWorld.World(120, 400)
        from head in Gen.Int[1, 4]
        from preemptors in Gen.Int[0, 4]
        select (w with { Ops = [.. w.Ops.Select(op => op.Kind is OpKind.Complete or OpKind.Cancel && op.D % 2 == 0 ? op with { Kind = OpKind.Submit } : op)] }, head, preemptors);

    [Fact]
    public void LazyOrder_DecidesAsTheWholeSort_AfterEveryEvent()
    {
        var settled = 0;
        var checkedRests = 0;
        var byClass = 0L;
        var continued = 0;
        var segments = 0L;
        var byClassIncremental = 0L;
        var cases = 0;
        Deterministic.Sample(Cases, c =>
        {
            // Fewer preemptors per pass (the same on both) let more passes reach the settled rest.
            // The plain engine sorts the whole queue every full pass, and its keys read and write each job: it decides and
            // writes every job's reason, estimate and priority in every full pass, each by nominating it.
            var plain = Fingerprints(c.World, o => { o.LazyOrder = false; o.ColumnarKeys = false; o.ClassDecisions = false; o.MaxPreemptorsPerCycle = c.Preemptors; }, out _);
            var lazy = Fingerprints(c.World, o => { o.LazyOrder = true; o.SortedHead = c.Head; o.MaxPreemptorsPerCycle = c.Preemptors; }, out var engine);
            for (var i = 0; i < plain.Count; i++)
            {
                if (plain[i] != lazy[i])
                {
                    throw new InvalidOperationException($"after event {i} ({c.World.Ops[i]}) the lazy order left another state:\n--- whole sort\n{plain[i]}\n--- lazy\n{lazy[i]}");
                }
            }

            settled += engine.Engine.SettledRests;
            checkedRests += engine.Engine.CheckedRests;
            byClass += engine.Engine.ClassDecided;
            continued += engine.Engine.ContinuedRests;
            segments += engine.Engine.RestSegments;
            byClassIncremental += engine.Engine.ClassDecidedIncremental;
            cases++;
        }, iter: 300, stream: 61, print: c => $"head {c.Head} preemptors {c.Preemptors}\n{c.World}", writeLine: output.WriteLine);

        output.WriteLine($"{cases} worlds; {settled} full passes decided the rest of the queue unsorted, {checkedRests} full passes looked for the candidates of their rest, {continued} cut it into segments ({segments} segments after the first); {byClass} jobs decided from their class in full passes' walks, {byClassIncremental} in incremental passes");

        // The property must reach the unsorted rest often, both ways, or it checks nothing.
        settled.ShouldBeGreaterThan(200);
        checkedRests.ShouldBeGreaterThan(50);
        continued.ShouldBeGreaterThan(20);
        segments.ShouldBeGreaterThan(40);
        byClass.ShouldBeGreaterThan(1000);
        byClassIncremental.ShouldBeGreaterThan(1000);
    }

    /// <summary>
    /// The head of the queue is sorted and blocked, but a job behind it may still preempt: the rest is not settled, so it
    /// is sorted and walked, and that job preempts as it does under the whole sort.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void AJobBehindTheHead_ThatCanStillPreempt_Preempts(bool lazy)
    {
        var e = new CheckedEngine(TestFleets.Flat(2, 8), TenancyBuilder.Simple("a", "b"), new SchedulerOptions
        {
            Ordering = OrderingPolicy.LeastAttainedService,
            LazyOrder = lazy,
            SortedHead = 1,
        });
        e.Submit(Job(1).Project("a").Gpus(8).Hours(10).Preemptible());
        e.Submit(Job(2).Project("a").Gpus(8).Hours(2));
        e.Schedule();
        e.Advance(TimeSpan.FromMinutes(1));

        // The head is preemptible and within no guarantee: it gets the reservation (on job 2's node, which ends first) but
        // may not preempt. Job 4 then preempts job 1.
        e.Submit(Job(3).Project("b").Gpus(8).Hours(1).Preemptible());
        e.Advance(TimeSpan.FromMinutes(1));
        e.Submit(Job(4).Project("b").Gpus(8).Hours(1));
        e.Submit(Job(5).Project("b").Gpus(8).Hours(1));
        var r = e.Schedule();
        output.WriteLine(string.Join(", ", new long[] { 1, 2, 3, 4, 5 }.Select(id => $"{id} {e.Engine.GetJob(id)?.State} {e.Engine.GetJob(id)?.Reason}")));
        r.Preempted.Select(p => (p.JobId, p.ForJobId)).ShouldBe([(1L, 4L)]);
        e.Engine.SettledRests.ShouldBe(0, "a preemption was left to make when the walk reached the end of the sorted head");
    }

    private static List<string> Fingerprints(WorldShape world, Action<SchedulerOptions> tune, out CheckedEngine engine)
    {
        var prints = new List<string>();
        engine = RandomWorld.PlayPrefix(world, world.Ops.Length, tune: tune, afterOp: (e, op) =>
            prints.Add($"{e.Engine.StateFingerprintForTests()}\nstarts {string.Join(',', e.Starts.Select(s => $"{s.JobId}@{s.Placement.Partition}:{string.Join('/', s.Placement.Slots)}"))}"));
        return prints;
    }
}
