using CsCheck;
using Xunit.Abstractions;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// Random fleets, tenants, job streams and events; after every call the <see cref="Support.CheckedEngine"/> checks the
/// engine's invariants and the rules of DESIGN.md. Iteration counts keep each property under about 10 s on two cores.
/// </summary>
public sealed class SchedulerPropertyTests(ITestOutputHelper output)
{
    private static readonly string? TraceFile = Environment.GetEnvironmentVariable("GPUC_TRACE");

    /// <summary>Plays a world; with GPUC_TRACE=path, the trace of the last failing world is written there.</summary>
    internal static void Play(WorldShape w)
    {
        if (TraceFile is null)
        {
            RandomWorld.Play(w);
            return;
        }

        var trace = new System.Text.StringBuilder();
        try
        {
            RandomWorld.Play(w, line => trace.AppendLine(line));
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
        RandomWorld.World(20, 120).Sample(Play, iter: 300, threads: 1, print: w => w.ToString(), writeLine: output.WriteLine);
    }
}
