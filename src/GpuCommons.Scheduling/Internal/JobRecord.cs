using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>The engine's mutable record of a pending or running job.</summary>
/// <remarks>
/// It does not keep the job's spec: a queue of a million jobs would keep a million specs (192 bytes each, and their
/// strings). It copies the few fields of the spec that are the job's own, and shares the request (GPUs, nodes, cores,
/// memory, models, features) with every job that asks for the same (<see cref="Request"/>).
/// </remarks>
internal sealed class JobRecord(JobSpec spec, JobSpec request, int project, int user, int partitionFilter)
{
    /// <summary>
    /// What the job asks for, as a spec shared by every job with the same request: read only its request (GPUs, nodes,
    /// GPUs per node, cores, memory, GPU models, features). Its own fields are blank (id 0, no walltime, no submit
    /// time); this record holds the job's.
    /// </summary>
    public JobSpec Request { get; } = request;

    public long Id { get; } = spec.Id;
    public double Gpus => Request.Gpus;
    public PriorityClass PriorityClass { get; } = spec.Priority;
    public long SubmitTicks { get; } = spec.SubmitTime.UtcTicks;
    public long WalltimeTicks { get; } = spec.Walltime.Ticks;
    public TimeSpan? DurationHint { get; } = spec.DurationHint;
    public bool Checkpointable { get; } = spec.Checkpointable;
    public bool Requeueable { get; } = spec.Requeueable;

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
