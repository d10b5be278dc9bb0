using GpuCommons.Core;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling;

/// <summary>Outcome of a submission: accepted, or rejected with the field and the reason.</summary>
public sealed record SubmitResult(bool Accepted, SpecException? Error)
{
    /// <summary>The job was accepted.</summary>
    public static readonly SubmitResult Ok = new(true, null);

    /// <summary>The job was rejected: <paramref name="field"/> names what is wrong, <paramref name="message"/> says why.</summary>
    public static SubmitResult Reject(string field, string message) => new(false, new SpecException(field, message));
}

/// <summary>The engine decided to start a job here; the backend must now run it.</summary>
public sealed record JobStart(long JobId, Placement Placement, string AllocationId, DateTimeOffset Time);

/// <summary>The engine asks the backend to stop a job to make room; after <see cref="Grace"/> it must be killed.</summary>
public sealed record JobPreemption(long JobId, long ForJobId, TimeSpan Grace, DateTimeOffset Time);

/// <summary>What one call of <see cref="SchedulerEngine.Schedule"/> decided.</summary>
public sealed class ScheduleResult
{
    /// <summary>Jobs the engine started in this pass, with where they run; the backend must now run them.</summary>
    public List<JobStart> Started { get; } = [];
    /// <summary>Running jobs the engine asks the backend to stop in this pass, each to make room for the job it names.</summary>
    public List<JobPreemption> Preempted { get; } = [];
    /// <summary>Jobs looked at in this pass.</summary>
    public int Considered { get; internal set; }
    /// <summary>True for a full pass (fair share, order and reservations recomputed), false for an incremental one.</summary>
    public bool Full { get; internal set; }

    /// <summary>Time each phase of the pass took (measured with the engine's <see cref="TimeProvider"/>).</summary>
    public CycleTimings Timings { get; internal set; }
}

/// <summary>
/// Time spent per phase of one pass: time-driven changes (reservation windows, expired claims), ordering (fair share and
/// the sort; full cycles only), and the walk of the queue (admit, place, commit, reserve, preempt, reasons).
/// </summary>
public readonly record struct CycleTimings(TimeSpan TimeEvents, TimeSpan Order, TimeSpan Walk);

/// <summary>How a running job ended, as reported by the backend.</summary>
public enum JobOutcome
{
    /// <summary>Ended by itself with success.</summary>
    Finished,
    /// <summary>Ended in failure, as the backend reported it (a nonzero exit code, for example).</summary>
    Failed,
    /// <summary>Stopped because it was cancelled.</summary>
    Cancelled,
    /// <summary>Stopped by preemption; goes back to the queue with its original submit time.</summary>
    Preempted,
    /// <summary>Killed at its walltime limit (a failure).</summary>
    Walltime,
    /// <summary>Its node failed; requeued when requeueable.</summary>
    NodeFailure,
}

/// <summary>One charge: allocated GPUs × actual runtime, against one allocation.</summary>
public sealed record Charge(string AllocationId, string Project, string Partition, double GpuHours, decimal Amount);

/// <summary>What happened to a job that stopped running or was cancelled while pending.</summary>
public sealed record JobEnd(long JobId, JobState State, bool Requeued, DateTimeOffset? Start, DateTimeOffset End, Placement? Placement, Charge? Charge, JobOutcome Outcome);

/// <summary>A read-only view of a job known to the engine (pending or running).</summary>
public sealed record JobView(
    long JobId,
    JobState State,
    PendingReason Reason,
    DateTimeOffset? EstimatedStart,
    Placement? Placement,
    DateTimeOffset? Start,
    double Priority,
    bool Preempting,
    int Attempts);
