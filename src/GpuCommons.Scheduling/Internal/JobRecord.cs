using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>The engine's mutable record of a pending or running job.</summary>
internal sealed class JobRecord(JobSpec spec, int project, int user, int partitionFilter)
{
    public JobSpec Spec { get; } = spec;

    // Read from the (immutable) spec: a full pass reads what its keys need from the pending queue's columns, not from
    // the jobs, so copies here would only cost memory (40 bytes a job: 40 MB on a queue of a million).
    public long Id => Spec.Id;
    public double Gpus => Spec.Gpus;
    public PriorityClass PriorityClass => Spec.Priority;
    public long SubmitTicks => Spec.SubmitTime.UtcTicks;
    public long WalltimeTicks => Spec.Walltime.Ticks;

    public int Project { get; } = project;
    public int User { get; } = user;
    /// <summary>-1: any partition.</summary>
    public int PartitionFilter { get; } = partitionFilter;

    /// <summary>
    /// The request resolved per partition (index = partition); valid where <see cref="ShapeMask"/> has the bit. Shared,
    /// read-only: jobs with the same request hold the same array.
    /// </summary>
    public Shape[] Shapes = [];
    public ulong ShapeMask;
    /// <summary>The job's <see cref="DecisionClasses"/> class (project, shapes and mask), set with them.</summary>
    public int DecisionClass = -1;

    public JobState State;
    /// <summary>
    /// Why the job waits and when it may start, as last written (see <see cref="ReasonSeq"/>). The engine reads them
    /// through <c>ReasonOf</c> and <c>EstimateOf</c>: a job left to a lazily decided rest has newer ones.
    /// </summary>
    public PendingReason StoredReason = PendingReason.New;
    public long StoredEstimate = -1;
    /// <summary>When <see cref="StoredReason"/> was written, on the engine's count of decisions.</summary>
    public long ReasonSeq;
    public int PendingSlot = -1;
    /// <summary>The job's entry in the pending queue's submit-order columns (-1: none; see <c>PendingQueue</c>).</summary>
    public int SubmitIndex = -1;
    /// <summary>When the job last joined the pending queue, on the queue's count (see <c>PendingQueue.LastSortSeq</c>).</summary>
    public long QueuedSeq;
    /// <summary>The priority a full sort gave the job (+∞ until one did), where the sort wrote it; the engine reads it through <c>PriorityOf</c>.</summary>
    public double Priority;
    /// <summary>The multifactor size term (log of the GPUs over log of the fleet's), computed once; NaN until then.</summary>
    public double SizeTerm = double.NaN;
    public int Attempts;
    public double AttainedGpuSeconds;

    // Running state.
    public Placement? Placement;
    public int Partition = -1;
    public int Allocation = -1;
    public long StartTicks;
    public long EndByTicks;
    public bool Exclusive;
    /// <summary>Cores and memory held on each node of <see cref="Placement"/> (same order), given back exactly when the job stops.</summary>
    public ResourceDemand[]? Taken;
    public bool Preempting;
    public long PreemptKillTicks;
    /// <summary>Reservation pool held by this pending job (-1: none).</summary>
    public int HeldPool = -1;
    /// <summary>Partition of this job's last backfill reservation: kept across passes so others' reservations stay valid.</summary>
    public int HoldPartition = -1;
}
