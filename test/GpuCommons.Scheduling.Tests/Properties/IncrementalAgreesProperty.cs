using CsCheck;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Tests.Support;
using Xunit.Abstractions;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// An incremental pass may decide less than a full cycle would at the same instant, never something else: every job it
/// starts, a full cycle from the same state starts too. The same world is played twice up to a random event; then one
/// copy runs an incremental pass and the other a full cycle.
/// </summary>
/// <remarks>
/// Holds for every policy: FIFO with and without backfill, multifactor with EASY and conservative backfill, least
/// attained service and shortest remaining time (an incremental pass never backfills: a partition closes behind a
/// waiting job; a job queued since goes to its sorted place, or the pass sorts again; multifactor's priorities hold for
/// a priority period, and the first pass of a period sorts). See docs/scheduling.md, "Incremental passes".
/// </remarks>
public sealed class IncrementalAgreesProperty(ITestOutputHelper output)
{
    private static readonly string[] Names = ["fifo", "fifo-easy", "multifactor", "multifactor-conservative", "las", "srtf"];

    public static TheoryData<string> PolicyNames => ["fifo", "fifo-easy", "multifactor", "multifactor-conservative", "las", "srtf"];

    private static OptionShape Shape(string policy) => policy switch
    {
        "fifo" => new OptionShape(BackfillMode.None, OrderingPolicy.Fifo, true, 1, 2),
        "fifo-easy" => new OptionShape(BackfillMode.Easy, OrderingPolicy.Fifo, true, 1, 2),
        "multifactor" => new OptionShape(BackfillMode.Easy, OrderingPolicy.Multifactor, true, 1, 2),
        "multifactor-conservative" => new OptionShape(BackfillMode.Conservative, OrderingPolicy.Multifactor, true, 3, 2),
        "las" => new OptionShape(BackfillMode.Easy, OrderingPolicy.LeastAttainedService, true, 1, 2),
        _ => new OptionShape(BackfillMode.Easy, OrderingPolicy.ShortestRemainingFirst, true, 1, 2),
    };

    // A sorted head of 1 to 4 jobs in half the worlds, so that small worlds reach the unsorted tail of the lazy order
    // (where a job queued between full passes may join it).
    private static readonly Gen<(WorldShape World, int Cut, int Head)> Cases =
        from w in RandomWorld.World(20, 160)
        from cut in Gen.Int[1, 160]
        from head in Gen.Int[1, 8]
        select (w, Math.Min(cut, w.Ops.Length), head <= 4 ? head : 2048);

    [Theory]
    [MemberData(nameof(PolicyNames))]
    public void IncrementalPass_StartsOnlyWhatAFullCycleWould(string policy)
    {
        var stream = (uint)(40 + Array.IndexOf(Names, policy));
        var checkedPasses = 0;
        Deterministic.Sample(Cases, c =>
        {
            var world = c.World with { Options = Shape(policy) };
            if (Check(world, c.Cut, c.Head))
            {
                checkedPasses++;
            }
        }, iter: 400, stream: stream, print: c => $"cut {c.Cut} head {c.Head}\n{c.World with { Options = Shape(policy) }}", writeLine: output.WriteLine);

        output.WriteLine($"{checkedPasses} incremental passes that started something, compared");
        checkedPasses.ShouldBeGreaterThan(40);
    }

    /// <summary>Plays the world to the cut on two copies; returns whether the incremental pass started anything.</summary>
    internal static bool Check(WorldShape world, int cut, int head = 2048)
    {
        var log = new List<string>();
        var incremental = RandomWorld.PlayPrefix(world, cut, log.Add, o => o.SortedHead = head);
        var full = RandomWorld.PlayPrefix(world, cut, tune: o => o.SortedHead = head);
        var orderBefore = string.Join(",", incremental.Engine.OrderForTests());
        var a = incremental.Schedule(full: false);
        var b = full.Schedule(full: true);
        var byFull = b.Started.Select(s => s.JobId).ToHashSet();
        var extra = a.Started.Select(s => s.JobId).Where(id => !byFull.Contains(id)).ToList();
        if (extra.Count > 0)
        {
            var jobs = string.Join("\n", full.Specs.Values.Where(j => full.Engine.GetJob(j.Id) is not null).OrderBy(j => j.SubmitTime).ThenBy(j => j.Id).Select(j =>
                $"  {j.Id}: submit {j.SubmitTime:HH:mm} {j.Gpus} GPUs nodes {j.Nodes} {j.Project} {j.Partition} {j.Priority}; full: {full.Engine.GetJob(j.Id)!.State} {full.Engine.GetJob(j.Id)!.Reason}; incremental: {incremental.Engine.GetJob(j.Id)!.State} {incremental.Engine.GetJob(j.Id)!.Reason}"));
            throw new InvalidOperationException($"the incremental pass started {string.Join(", ", extra)}, which a full cycle at {incremental.Now:HH:mm} does not (it starts {string.Join(", ", byFull)}); order walked: {orderBefore}\n{jobs}\n{string.Join("\n", log.TakeLast(40))}");
        }

        return a.Started.Count > 0;
    }
}
