using System.CommandLine;
using GpuCommons.Cli.Commands;

namespace GpuCommons.Cli;

/// <summary>Every top-level command of gpuc; each area adds its commands in its own file.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return BenchCommands.Create();
        yield return ServeCommands.Create();
        foreach (var c in ClientCommands.Create())
        {
            yield return c;
        }
        yield return ClientCommands.Session();
        foreach (var c in SimulationCommands.Create())
        {
            yield return c;
        }
        yield return LocalCommands.Create();
    }
}
