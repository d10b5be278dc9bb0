using System.CommandLine;
using GpuCommons.Cli;

var root = new RootCommand("gpuc — GpuCommons: a fair, full and accounted national GPU center");
foreach (var command in CommandCatalog.All())
{
    root.Subcommands.Add(command);
}

return await CliRunner.RunAsync(root, args);
