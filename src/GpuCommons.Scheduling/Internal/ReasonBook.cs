using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Who last decided why each pending job waits: every reason and estimate the engine writes goes through
/// <see cref="Write"/>, which stamps the job with the count of decisions so far (<see cref="JobRecord.ReasonSeq"/>).
/// A full pass whose rest is decided lazily (see <c>SchedulerEngine.LeaveRestLazy</c>) records that count, its time and
/// the GPUs set aside per partition then: a pending job stamped before it takes its reason from that rest, not from its
/// own stored one. A rest whose steps change the state (a candidate of it starts or gets a reservation) is cut into
/// segments there: the jobs after such a step in the order are decided on the state it left, kept as the segment's
/// (<see cref="BeginSegment"/>); a job finds its segment by its place in the order (<see cref="SegmentOf"/>). Also keeps the jobs whose stored reason is <see cref="PendingReason.WaitingForPreemption"/>, which a
/// full sort puts first.
/// </summary>
internal sealed class ReasonBook
{
    private long _seq;

    /// <summary>The count of decisions when the last lazily decided rest began (0: none yet).</summary>
    public long LazySeq { get; private set; }

    /// <summary>The time of the last lazily decided rest.</summary>
    public long LazyNow { get; private set; }

    /// <summary>Per segment of the last lazily decided rest, and per partition, the GPUs (thousandths) set aside in its non-general pools then.</summary>
    private readonly List<long[]> _free = [];

    /// <summary>Where each segment after the first begins: the place in the order (see <see cref="SegmentOf"/>) of the step that began it.</summary>
    private readonly List<(ulong Key, long Submit, long Id)> _bounds = [];

    /// <summary>Segments of the last lazily decided rest (at least one).</summary>
    public int Segments => _bounds.Count + 1;

    /// <summary>The set-aside GPUs per partition kept with a segment of the last lazily decided rest.</summary>
    public long[] LazyFree(int segment) => _free[segment];

    /// <summary>Jobs whose stored reason is <see cref="PendingReason.WaitingForPreemption"/>.</summary>
    public HashSet<JobRecord> WaitingForPreemption { get; } = [];

    /// <summary>Whether a job's reason and estimate are those of the last lazily decided rest, not its stored ones.</summary>
    public bool IsLazy(JobRecord job) => job.ReasonSeq < LazySeq && job.State == JobState.Pending;

    /// <summary>Writes a job's reason and estimate.</summary>
    public void Write(JobRecord job, PendingReason reason, long estimate)
    {
        if (reason == PendingReason.WaitingForPreemption)
        {
            WaitingForPreemption.Add(job);
        }
        else if (job.StoredReason == PendingReason.WaitingForPreemption)
        {
            WaitingForPreemption.Remove(job);
        }

        job.StoredReason = reason;
        job.StoredEstimate = estimate;
        job.ReasonSeq = ++_seq;
    }

    /// <summary>
    /// Begins a lazily decided rest at <paramref name="now"/>: every pending job stamped before it belongs to it until
    /// written again (mark the pass's head with <see cref="MarkDecided"/>). Returns the set-aside GPUs per partition to fill.
    /// </summary>
    public long[] BeginLazyRest(long now, int partitions)
    {
        LazySeq = ++_seq;
        LazyNow = now;
        _bounds.Clear();
        return FreeOf(0, partitions);
    }

    /// <summary>
    /// Begins a new segment of the rest after a step that changed the state, at <paramref name="place"/> in the order
    /// (the stepped job's: sort key as <c>PendingQueue.Descending</c> maps it, submit time, id; steps come in order).
    /// Returns its set-aside GPUs per partition to fill.
    /// </summary>
    public long[] BeginSegment((ulong Key, long Submit, long Id) place, int partitions)
    {
        if (_bounds.Count > 0 && place.CompareTo(_bounds[^1]) <= 0)
        {
            throw new InvalidOperationException($"job {place.Id}: a segment of the rest begins before the last one");
        }

        _bounds.Add(place);
        return FreeOf(_bounds.Count, partitions);
    }

    /// <summary>The segment of a lazily decided job at <paramref name="place"/> in the order: how many segments began before it.</summary>
    public int SegmentOf((ulong Key, long Submit, long Id) place)
    {
        int lo = 0, hi = _bounds.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_bounds[mid].CompareTo(place) < 0)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    private long[] FreeOf(int segment, int partitions)
    {
        if (_free.Count == segment)
        {
            _free.Add(new long[partitions]);
        }
        else if (_free[segment].Length != partitions)
        {
            _free[segment] = new long[partitions];
        }

        return _free[segment];
    }

    /// <summary>A job decided by the pass that left its rest lazy (its head): its stored reason stands.</summary>
    public void MarkDecided(JobRecord job) => job.ReasonSeq = LazySeq;

    /// <summary>A job left the queue (only a job whose stored reason says so is in the set: no hashing for the others).</summary>
    public void Forget(JobRecord job)
    {
        if (job.StoredReason == PendingReason.WaitingForPreemption)
        {
            WaitingForPreemption.Remove(job);
        }
    }
}
