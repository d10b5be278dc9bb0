using GpuCommons.Backends.Slurm.Parsing;

namespace GpuCommons.Backends.Slurm;

/// <summary>What Slurm said at one moment: the controller's jobs, accounting rows for jobs it no longer holds, nodes, and unreadable lines.</summary>
public sealed record SlurmSnapshot(
    DateTimeOffset Time,
    IReadOnlyList<SlurmJobRow> Queue,
    IReadOnlyList<SlurmJobRow> Accounting,
    IReadOnlyList<SlurmNodeRow> Nodes,
    IReadOnlyList<SlurmParseError> Errors)
{
    public bool Clean => Errors.Count == 0;
}
