using CsCheck;
using Xunit.Abstractions;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// Random fleets, tenants, job streams and events; after every call the <see cref="Support.CheckedEngine"/> checks the
/// engine's invariants and the rules of DESIGN.md. Iteration counts keep each property under about 10 s on two cores.
/// </summary>
public sealed class SchedulerPropertyTests(ITestOutputHelper output)
{
    [Fact]
    public void RandomWorlds_EveryDecision_KeepsEveryInvariant()
    {
        RandomWorld.World(20, 120).Sample(w => { RandomWorld.Play(w); }, iter: 300, threads: 1, print: w => w.ToString(), writeLine: output.WriteLine);
    }
}
