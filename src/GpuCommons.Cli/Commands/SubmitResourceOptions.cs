using System.CommandLine;
using GpuCommons.Contracts;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc submit</c>'s resource options: <c>--cpus-per-gpu N</c>, <c>--mem-per-gpu SIZE</c>, <c>--gpu-model M[,M…]</c>,
/// <c>--constraint F[&amp;F…]</c>, and their per-node forms <c>--cpus-per-node</c>, <c>--mem</c>. They set the API's
/// <c>cpusPerGpu</c>, <c>memPerGpu</c>, <c>gpuModels</c>, <c>constraint</c>, <c>cpusPerNode</c> and <c>memPerNode</c>; the
/// server checks them and names the field at fault.
/// </summary>
internal sealed class SubmitResourceOptions
{
    private readonly Option<int?> _cpusPerGpu = new("--cpus-per-gpu") { Description = "CPU cores per GPU (default: the partition's share)" };
    private readonly Option<int?> _cpusPerNode = new("--cpus-per-node") { Description = "CPU cores on each node (instead of --cpus-per-gpu)" };
    private readonly Option<string?> _memPerGpu = new("--mem-per-gpu") { Description = "Memory per GPU: 16G, 500M, 2T (default: the partition's share)" };
    private readonly Option<string?> _memPerNode = new("--mem") { Description = "Memory on each node (instead of --mem-per-gpu)" };
    private readonly Option<string?> _gpuModel = new("--gpu-model") { Description = "GPU model, or several separated by commas (any of them)" };
    private readonly Option<string?> _constraint = new("--constraint", "-C") { Description = "Node features the job needs, joined by &" };

    public static SubmitResourceOptions AddTo(Command command)
    {
        var o = new SubmitResourceOptions();
        foreach (var option in new Option[] { o._cpusPerGpu, o._cpusPerNode, o._memPerGpu, o._memPerNode, o._gpuModel, o._constraint })
        {
            command.Options.Add(option);
        }

        return o;
    }

    /// <summary>Sets the fields given on the command line (they override the job file's).</summary>
    public void Apply(ParseResult parse, SubmitJobRequest body)
    {
        body.CpusPerGpu = parse.GetValue(_cpusPerGpu) ?? body.CpusPerGpu;
        body.CpusPerNode = parse.GetValue(_cpusPerNode) ?? body.CpusPerNode;
        body.MemPerGpu = parse.GetValue(_memPerGpu) ?? body.MemPerGpu;
        body.MemPerNode = parse.GetValue(_memPerNode) ?? body.MemPerNode;
        if (parse.GetValue(_gpuModel) is { } models)
        {
            body.GpuModels = models.Split(',').Select(m => m.Trim()).ToList();
        }

        body.Constraint = parse.GetValue(_constraint) ?? body.Constraint;
    }
}
