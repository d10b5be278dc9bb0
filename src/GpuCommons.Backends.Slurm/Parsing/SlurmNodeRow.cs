namespace GpuCommons.Backends.Slurm.Parsing;

/// <summary>One node as <c>sinfo -N</c> reports it, once per partition it belongs to.</summary>
public sealed record SlurmNodeRow(
    string Name,
    string Partition,
    bool DefaultPartition,
    string State,
    int Cpus,
    long MemoryMiB,
    int Gpus,
    string? GpuType,
    string? Reason)
{
    /// <summary>The node's available features (<c>sinfo %f</c>); empty for <c>(null)</c>.</summary>
    public IReadOnlyList<string> Features { get; init; } = [];
}
