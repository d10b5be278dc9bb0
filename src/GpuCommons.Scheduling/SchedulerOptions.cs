using System.ComponentModel.DataAnnotations;

namespace GpuCommons.Scheduling;

/// <summary>How pending jobs are ordered.</summary>
public enum OrderingPolicy
{
    /// <summary>Slurm-style multifactor priority: fair share, age, priority class, size (the default).</summary>
    Multifactor,
    /// <summary>First come, first served by submit time.</summary>
    Fifo,
    /// <summary>
    /// Tiresias-style discretized least attained service: jobs sit in priority queues by the GPU-hours they have received
    /// (<see cref="SchedulerOptions.LasThresholdsGpuHours"/>), first come first served within a queue; with
    /// <see cref="SchedulerOptions.Preemption"/> on, a blocked job preempts running jobs of a lower queue (of other
    /// projects, and of its class or below).
    /// </summary>
    LeastAttainedService,
    /// <summary>Clairvoyant shortest remaining time first; uses <c>JobSpec.DurationHint</c> (a reference for simulations).</summary>
    ShortestRemainingFirst,
}

/// <summary>Whether and how later jobs may start ahead of a blocked higher-priority job.</summary>
public enum BackfillMode
{
    /// <summary>Strict order: a blocked job blocks every later job on its partition.</summary>
    None,
    /// <summary>EASY: the top blocked job gets a reservation; later jobs start only if they do not delay it.</summary>
    Easy,
    /// <summary>Conservative: the first <see cref="SchedulerOptions.ConservativeDepth"/> blocked jobs each get a reservation.</summary>
    Conservative,
}

/// <summary>Scheduling policy and weights. Every default is documented on its property.</summary>
public sealed class SchedulerOptions
{
    /// <value>Default <see cref="OrderingPolicy.Multifactor"/>.</value>
    public OrderingPolicy Ordering { get; set; } = OrderingPolicy.Multifactor;

    /// <value>Default <see cref="BackfillMode.Easy"/>.</value>
    public BackfillMode Backfill { get; set; } = BackfillMode.Easy;

    /// <summary>Blocked jobs that get a reservation under conservative backfill.</summary>
    /// <value>Default 32.</value>
    [Range(1, 10_000)]
    public int ConservativeDepth { get; set; } = 32;

    /// <summary>
    /// Pending jobs, in priority order, that an incremental pass (after a job ends) looks at before it stops; the next
    /// full cycle looks at the rest. Like Slurm's <c>default_queue_depth</c> for event-driven scheduling.
    /// </summary>
    /// <value>Default 2,000.</value>
    [Range(1, 10_000_000)]
    public int IncrementalDepth { get; set; } = 2_000;

    /// <summary>Whether jobs within guarantee may reclaim GPUs from borrowing or preemptible jobs.</summary>
    /// <value>Default true.</value>
    public bool Preemption { get; set; } = true;

    /// <summary>Blocked jobs per full cycle that may try preemption.</summary>
    /// <value>Default 16.</value>
    [Range(0, 10_000)]
    public int MaxPreemptorsPerCycle { get; set; } = 16;

    /// <summary>Grace period a checkpointable victim gets between the signal and the kill.</summary>
    /// <value>Default 5 minutes.</value>
    public TimeSpan PreemptionGrace { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Under <see cref="OrderingPolicy.LeastAttainedService"/>: the attained service, in GPU-hours (GPUs × hours run),
    /// at which a job moves down one priority queue. A blocked job may preempt only running jobs of a strictly lower
    /// queue, so two jobs of one queue never preempt each other and a job is preempted at most once per queue it
    /// enters while the preemptor is below it: the discretization is what keeps LAS from thrashing.
    /// </summary>
    /// <value>Default 1, 10, 100 GPU-hours: four queues.</value>
    public IReadOnlyList<double> LasThresholdsGpuHours { get; set; } = [1, 10, 100];

    /// <summary>Half-life of the decay of past usage in fair share (Slurm's PriorityDecayHalfLife).</summary>
    /// <value>Default 7 days.</value>
    public TimeSpan FairShareHalfLife { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Age at which the age factor reaches 1 (Slurm's PriorityMaxAge).</summary>
    /// <value>Default 7 days.</value>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Under <see cref="OrderingPolicy.Multifactor"/>: how often priorities are worked out (Slurm's PriorityCalcPeriod).
    /// The fair-share factors are worked out at the first pass of each period that sorts, and a job's age is its age at
    /// the period's start (periods start at whole multiples of it since 0001-01-01 UTC). Within a period a job's priority
    /// does not change, so every pass of the period, full or incremental, walks the same order (see docs/scheduling.md,
    /// "Incremental passes decide less, never something else").
    /// </summary>
    /// <value>Default 5 minutes.</value>
    public TimeSpan PriorityPeriod { get; set; } = TimeSpan.FromMinutes(5);

    /// <value>Default 10,000: fair share dominates, so small tenants are not starved by big ones.</value>
    [Range(0, 1e9)]
    public double WeightFairShare { get; set; } = 10_000;

    /// <value>Default 2,000.</value>
    [Range(0, 1e9)]
    public double WeightAge { get; set; } = 2_000;

    /// <value>Default 5,000 (preemptible 0, normal 0.5, high 1).</value>
    [Range(0, 1e9)]
    public double WeightPriorityClass { get; set; } = 5_000;

    /// <summary>Favours large jobs a little (log of GPUs), so gangs are not overtaken forever.</summary>
    /// <value>Default 1,000.</value>
    [Range(0, 1e9)]
    public double WeightSize { get; set; } = 1_000;

    /// <summary>Whether a job needs an active allocation with enough GPU-hours. The simulator may turn this off.</summary>
    /// <value>Default true.</value>
    public bool RequireAllocation { get; set; } = true;

    /// <summary>Longest walltime accepted; null means no limit.</summary>
    /// <value>Default 30 days.</value>
    public TimeSpan? MaxWalltime { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// Fragmentation-aware placement (FGD, ATC'23) where cores or memory are tracked: a share of a GPU, or whole GPUs with
    /// more cores or memory than the partition's default per GPU, goes where it raises the expected fragmentation of
    /// the cluster least (GPUs stranded by too few free GPUs, cores or memory for the recent workload's shapes count as
    /// lost). Whole-GPU jobs within the default, and every job on a fleet that does not track cores or memory, are
    /// placed by best fit either way. False: best fit everywhere (still checking every resource).
    /// </summary>
    /// <value>Default true.</value>
    public bool FragmentationAware { get; set; } = true;

    /// <summary>Candidate placements scored by fragmentation-aware placement (the best of today's best-fit order).</summary>
    /// <value>Default 64.</value>
    [Range(1, 100_000)]
    public int FragmentationCandidates { get; set; } = 64;

    /// <summary>
    /// Whether a full pass orders only the head of the queue and walks the rest unsorted once the walk has reached a
    /// state in which no later job can change anything (no partition has room for any job, every partition has its
    /// reservations, no preemption is left): the rest are then decided the same in any order (see docs/scheduling.md,
    /// "The queue knows what would unblock a job"). False: the whole queue is sorted every full pass, as before. The
    /// decisions are the same either way (a property checks it); the switch is kept for that property.
    /// </summary>
    internal bool LazyOrder { get; set; } = true;

    /// <summary>
    /// With <see cref="LazyOrder"/>: how many jobs at the head of the queue a full pass sorts before it looks whether the
    /// rest need an order (and how many more an incremental pass sorts when it needs them). 512 measured fastest on the
    /// national plan of the sizes tried, from 128 to 2,048 (docs/scheduling.md).
    /// </summary>
    internal int SortedHead { get; set; } = 512;

    /// <summary>
    /// Whether FIFO's and multifactor's sort keys come from the pending queue's columns, without touching each job (a
    /// pending job's priority is then worked out when read). False: every key reads its job and is written to it, as
    /// before. The decisions and priorities are the same either way (a property checks it); the switch is kept for that
    /// property.
    /// </summary>
    internal bool ColumnarKeys { get; set; } = true;

    /// <summary>
    /// Whether a full pass, once no preemption is left and a job is blocked, decides a job whose step would change
    /// nothing from its decision class (admission worked out once per class and state, room from the pools' most room)
    /// instead of nominating it on every partition. False: every job is nominated, as before. The decisions and reasons
    /// are the same either way (a property checks it); the switch is kept for that property.
    /// </summary>
    internal bool ClassDecisions { get; set; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option out of range.</summary>
    public void Validate()
    {
        var ctx = new ValidationContext(this);
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(this, ctx, results, validateAllProperties: true))
        {
            throw new ArgumentException(results[0].ErrorMessage, results[0].MemberNames.FirstOrDefault());
        }

        if (FairShareHalfLife <= TimeSpan.Zero)
        {
            throw new ArgumentException("must be positive", nameof(FairShareHalfLife));
        }

        if (MaxAge <= TimeSpan.Zero)
        {
            throw new ArgumentException("must be positive", nameof(MaxAge));
        }

        if (PriorityPeriod <= TimeSpan.Zero || PriorityPeriod > TimeSpan.FromDays(1))
        {
            throw new ArgumentException("must be positive and at most a day", nameof(PriorityPeriod));
        }

        for (var i = 0; i < LasThresholdsGpuHours.Count; i++)
        {
            if (!(LasThresholdsGpuHours[i] > 0) || !double.IsFinite(LasThresholdsGpuHours[i]) || (i > 0 && LasThresholdsGpuHours[i] <= LasThresholdsGpuHours[i - 1]))
            {
                throw new ArgumentException("must be positive, finite and increasing", nameof(LasThresholdsGpuHours));
            }
        }

        if (PreemptionGrace < TimeSpan.Zero)
        {
            throw new ArgumentException("must not be negative", nameof(PreemptionGrace));
        }
    }
}
