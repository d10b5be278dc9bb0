using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Who last decided why each pending job waits: every reason and estimate the engine writes goes through
/// <see cref="Write"/>, which stamps the job with the count of decisions so far (<see cref="JobRecord.ReasonSeq"/>).
/// A full pass whose rest is decided lazily (see <c>SchedulerEngine.LeaveRestLazy</c>) records that count, its time and
/// the GPUs set aside per partition then: a pending job stamped before it takes its reason from that rest, not from its
/// own stored one. Also keeps the jobs whose stored reason is <see cref="PendingReason.WaitingForPreemption"/>, which a
/// full sort puts first.
/// </summary>
internal sealed class ReasonBook
{
    private long _seq;

    /// <summary>The count of decisions when the last lazily decided rest began (0: none yet).</summary>
    public long LazySeq { get; private set; }

    /// <summary>The time of the last lazily decided rest.</summary>
    public long LazyNow { get; private set; }

    /// <summary>Per partition, the GPUs (thousandths) set aside in its non-general pools at the last lazily decided rest.</summary>
    public long[] LazyFree { get; private set; } = [];

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
        if (LazyFree.Length != partitions)
        {
            LazyFree = new long[partitions];
        }

        return LazyFree;
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
