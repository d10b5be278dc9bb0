namespace GpuCommons.Backends.Slurm.Parsing;

/// <summary>
/// One job as Slurm reports it (from <c>squeue</c>, <c>sacct</c> or <c>scontrol show job</c>).
/// Times are UTC (the CLI is run with <c>TZ=UTC</c>); null where Slurm printed <c>N/A</c>, <c>Unknown</c> or <c>None</c>.
/// </summary>
public sealed record SlurmJobRow(
    long SlurmJobId,
    string Name,
    SlurmJobState State,
    string? Reason,
    IReadOnlyList<string> Nodes,
    DateTimeOffset? Submit,
    DateTimeOffset? Start,
    DateTimeOffset? End,
    int? ExitCode = null,
    int? Signal = null,
    long? ElapsedSeconds = null,
    int? Gpus = null,
    string Source = "squeue");
