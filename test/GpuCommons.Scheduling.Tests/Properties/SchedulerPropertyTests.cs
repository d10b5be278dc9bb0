using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Tests.Support;
using Xunit.Abstractions;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// Random fleets (partitions, topology domains, nodes of 1, 2, 4 and 8 GPUs), tenants with quotas and grants, job streams
/// (whole, shares, gangs, priority classes, checkpointable) and events (time, completions, drains, failures,
/// reservations). After every call the <see cref="CheckedEngine"/> checks the engine's invariants and the rules of
/// DESIGN.md; it throws at the first broken one. Seeds are fixed; iteration counts keep each property under ~10 s.
/// </summary>
public sealed class SchedulerPropertyTests(ITestOutputHelper output)
{
    private static readonly string? TraceFile = Environment.GetEnvironmentVariable("GPUC_TRACE");

    /// <summary>Plays a world; with GPUC_TRACE=path, the trace of the last failing world is written there.</summary>
    internal static CheckedEngine? Play(WorldShape w)
    {
        if (TraceFile is null)
        {
            return RandomWorld.Play(w);
        }

        var trace = new System.Text.StringBuilder();
        try
        {
            return RandomWorld.Play(w, line => trace.AppendLine(line));
        }
        catch (Exception e)
        {
            trace.AppendLine(e.Message).AppendLine(w.ToString());
            File.WriteAllText(TraceFile, trace.ToString());
            throw;
        }
    }

    [Fact]
    public void RandomWorlds_EveryDecision_KeepsEveryInvariant()
    {
        Deterministic.Sample(RandomWorld.World(20, 200), w => Play(w), iter: 2000, stream: 1, print: w => w.ToString(), writeLine: output.WriteLine);
    }

    [Fact]
    public void RandomWorlds_LongBusyStreams_KeepEveryInvariant()
    {
        Deterministic.Sample(RandomWorld.World(300, 600), w => Play(w), iter: 70, stream: 2, print: w => w.ToString(), writeLine: output.WriteLine);
    }

    [Fact]
    public void SmallFleet_RandomStreams_KeepEveryInvariant()
    {
        var small = BuiltInFleets.Get("small");
        Deterministic.Sample(RandomWorld.WorldOn(small, 50, 300), w => Play(w), iter: 300, stream: 3, print: w => w.ToString(), writeLine: output.WriteLine);
    }

    /// <summary>Guards the generator: the worlds must actually reach gangs, shares, holds, preemption and reservations.</summary>
    [Fact]
    public void RandomWorlds_ReachEveryInterestingPath()
    {
        int gangs = 0, shares = 0, preemptions = 0, requeued = 0, nodeFailures = 0, reservations = 0, starts = 0, behind = 0, reserved = 0;
        Deterministic.Sample(RandomWorld.World(100, 200), w =>
        {
            var e = Play(w)!;
            starts += e.Starts.Count;
            gangs += e.Starts.Count(s => s.Placement.Nodes.Count > 1);
            shares += e.Starts.Count(s => s.Placement.Slots[0].IsShare);
            preemptions += e.PreemptionCount;
            requeued += e.RequeueCount;
            nodeFailures += e.Ended.Values.Count(x => x.Outcome == JobOutcome.NodeFailure);
            reservations += e.ReservationCount;
            behind += e.ReasonsSeen.GetValueOrDefault(PendingReason.BehindReservation);
            reserved += e.ReasonsSeen.GetValueOrDefault(PendingReason.Reserved);
        }, iter: 200, stream: 4);

        output.WriteLine($"starts {starts}, gangs {gangs}, shares {shares}, preemptions {preemptions}, requeued {requeued}, node failures {nodeFailures}, reservations {reservations}, behind-reservation {behind}, reserved {reserved}");
        gangs.ShouldBeGreaterThan(50);
        shares.ShouldBeGreaterThan(50);
        preemptions.ShouldBeGreaterThan(10);
        requeued.ShouldBeGreaterThan(10);
        nodeFailures.ShouldBeGreaterThan(5);
        reservations.ShouldBeGreaterThan(20);
        behind.ShouldBeGreaterThan(10);
        reserved.ShouldBeGreaterThan(10);
    }
}
