using GpuCommons.Core.Tenancy;
using GpuCommons.Simulation.Traces;

namespace GpuCommons.Simulation.Workloads;

/// <summary>
/// What a simulation replays: the tenants (as a <see cref="TenancySpec"/>), each tenant's class for the metrics,
/// and the jobs in submit order. <see cref="Jobs"/> may be a stream (a synthetic workload is never held in memory).
/// </summary>
public sealed class Workload
{
    public required string Name { get; init; }
    public required TenancySpec Tenancy { get; init; }
    /// <summary>Jobs sorted by submit time; the project of a job is its <see cref="TraceJob.Tenant"/>.</summary>
    public required IEnumerable<TraceJob> Jobs { get; init; }
    /// <summary>Class of each project (flagship, university, …, or "trace" when no mapping was asked for).</summary>
    public required IReadOnlyDictionary<string, string> ClassOfProject { get; init; }
    /// <summary>Number of jobs, when known before the run.</summary>
    public int? Count { get; init; }
    /// <summary>
    /// Whether any job may be preemptible-class. With no preemptible job and no quota in the tenancy no running job can
    /// ever be a victim, and the simulator turns the engine's preemption search off (same decisions, much faster).
    /// </summary>
    public bool MayHavePreemptibleJobs { get; init; } = true;
    /// <summary>Time from the first to the last submit, when known before the run.</summary>
    public double? SpanSeconds { get; init; }
}
