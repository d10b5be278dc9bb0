using GpuCommons.Core.Jobs;

namespace GpuCommons.Simulation.Traces;

/// <summary>
/// One job of a workload, as read from a trace or synthesised: when it arrives, how long it runs, what it asks for.
/// Times are seconds from the start of the workload.
/// </summary>
public sealed record TraceJob
{
    /// <summary>Unique id used by the engine (the row number for traces without ids).</summary>
    public required long Id { get; init; }
    /// <summary>The id as the trace wrote it; written to the output CSVs.</summary>
    public required string Label { get; init; }
    public required double SubmitSeconds { get; init; }
    /// <summary>Run time the job needs when it is never interrupted.</summary>
    public required double DurationSeconds { get; init; }
    /// <summary>Whole GPUs, or a share of one GPU (0 &lt; g &lt; 1).</summary>
    public required double Gpus { get; init; }
    public int? Nodes { get; init; }
    /// <summary>Walltime limit the user gave; null: not given by the trace.</summary>
    public double? WalltimeSeconds { get; init; }
    /// <summary>Virtual cluster, user group or project: becomes the job's project.</summary>
    public required string Tenant { get; init; }
    public string User { get; init; } = "";
    public PriorityClass Priority { get; init; } = PriorityClass.Normal;
    public string? Partition { get; init; }
    public bool Checkpointable { get; init; }
    /// <summary>CPU cores on each node of the job; null: the partition's default per GPU.</summary>
    public int? Cpus { get; init; }
    /// <summary>Memory on each node of the job in MiB; null: the partition's default per GPU.</summary>
    public long? MemoryMiB { get; init; }
    /// <summary>GPU models the job may run on (any of them); null: any.</summary>
    public IReadOnlyList<string>? GpuModels { get; init; }

    /// <summary>GPU-seconds the job needs: GPUs × duration.</summary>
    public double WorkGpuSeconds => Gpus * DurationSeconds;
}
