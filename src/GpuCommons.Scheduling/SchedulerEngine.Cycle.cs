using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// The scheduling cycle.
public sealed partial class SchedulerEngine
{
    private int _holdCount;

    private struct OrderEntry
    {
        public double Key;
        public long Submit;
        public long Id;
        public JobRecord Job;
    }

    private readonly struct OrderComparer : IComparer<OrderEntry>
    {
        public int Compare(OrderEntry a, OrderEntry b)
        {
            var c = b.Key.CompareTo(a.Key);
            if (c != 0)
            {
                return c;
            }

            c = a.Submit.CompareTo(b.Submit);
            return c != 0 ? c : a.Id.CompareTo(b.Id);
        }
    }

    /// <summary>
    /// Decides what starts now. A full pass (<paramref name="full"/>) recomputes fair share and priorities, re-sorts the
    /// queue, redoes the backfill reservations and may preempt. An incremental pass keeps the order and reservations of the
    /// last full pass: after arrivals it tries only the new jobs; after capacity was freed it walks the queue in order and
    /// stops as soon as no free capacity is left.
    /// </summary>
    public ScheduleResult Schedule(bool full = true)
    {
        var now = _time.GetUtcNow().UtcTicks;
        var result = new ScheduleResult { Full = full };

        // Phase 1: time-driven changes (reservation windows, expired claims).
        UpdateAdvanceWindows(now);
        ExpireHolds(now, full);

        // Phase 2: order.
        if (full)
        {
            _cycles++;
            UpdateFairShare(now);
            Order(now);
        }

        // Phase 3: walk the queue in order: admit, place, reserve, backfill, preempt.
        if (full || _capacityDirty)
        {
            Walk(_order, now, full, result);
            if (full || _order.Count > 2 * _pending.Count + 1024)
            {
                CompactOrder();
            }
        }
        else if (_arrivals.Count > 0)
        {
            Walk(_arrivals, now, false, result);
        }

        _arrivals.Clear();
        _capacityDirty = false;
        return result;
    }

    private void CompactOrder()
    {
        // After a full pass _order has no duplicates; later requeues append, so an incremental compaction dedupes.
        HashSet<long>? seen = _order.Count > 2 * _pending.Count + 1024 ? [] : null;
        var w = 0;
        for (var i = 0; i < _order.Count; i++)
        {
            var j = _order[i];
            if (j.State == JobState.Pending && (seen is null || seen.Add(j.Id)))
            {
                _order[w++] = j;
            }
        }

        _order.RemoveRange(w, _order.Count - w);
    }

    private void UpdateFairShare(long now)
    {
        if (Options.Ordering != OrderingPolicy.Multifactor)
        {
            return;
        }

        if (_lastFairShareTicks != long.MinValue && now > _lastFairShareTicks)
        {
            _fairShare.Advance(TimeSpan.FromTicks(now - _lastFairShareTicks).TotalSeconds, Options.FairShareHalfLife.TotalSeconds);
        }

        _lastFairShareTicks = now;
        _fairShare.Recompute();
    }

    private void Order(long now)
    {
        var count = _pending.Count;
        if (_sortBuffer.Length < count)
        {
            _sortBuffer = new OrderEntry[Math.Max(count, _sortBuffer.Length * 2)];
        }

        var maxAge = (double)Options.MaxAge.Ticks;
        var logTotal = Math.Log2(1 + Fleet.TotalGpus);
        for (var i = 0; i < count; i++)
        {
            var j = _pending[i];
            double key;
            switch (Options.Ordering)
            {
                case OrderingPolicy.Fifo:
                    key = 0;
                    break;
                case OrderingPolicy.LeastAttainedService:
                    key = -j.AttainedGpuSeconds;
                    break;
                case OrderingPolicy.ShortestRemainingFirst:
                {
                    var total = (j.Spec.DurationHint ?? j.Spec.Walltime).TotalSeconds;
                    key = -Math.Max(0, total - (j.AttainedGpuSeconds / Math.Max(j.Spec.Gpus, 1e-3)));
                    break;
                }

                default:
                {
                    var age = Math.Clamp((now - j.SubmitTicks) / maxAge, 0, 1);
                    var cls = (int)j.Spec.Priority / 2.0;
                    var size = Math.Log2(1 + j.Spec.Gpus) / logTotal;
                    key = (Options.WeightFairShare * _fairShare.Factor(j.User)) + (Options.WeightAge * age) + (Options.WeightPriorityClass * cls) + (Options.WeightSize * size);
                    break;
                }
            }

            j.Priority = key;

            // A job that made others stop for it goes first: otherwise a requeued victim that keeps its (earlier) place
            // takes the GPUs or quota back, and the preemption repeats.
            var sortKey = j.Reason == PendingReason.WaitingForPreemption ? double.PositiveInfinity : key;
            _sortBuffer[i] = new OrderEntry { Key = sortKey, Submit = j.SubmitTicks, Id = j.Id, Job = j };
        }

        var span = _sortBuffer.AsSpan(0, count);
        span.Sort(default(OrderComparer));
        _order.Clear();
        for (var i = 0; i < count; i++)
        {
            _order.Add(span[i].Job);
            span[i].Job = null!;
        }
    }

    private void Walk(List<JobRecord> jobs, long now, bool full, ScheduleResult result)
    {
        var depth = Options.Backfill switch
        {
            BackfillMode.Easy => 1,
            BackfillMode.Conservative => Options.ConservativeDepth,
            _ => 0,
        };
        var blocked = 0UL;
        var preemptors = 0;
        var allBlocked = Fleet.Partitions.Count >= 64 ? ulong.MaxValue : (1UL << Fleet.Partitions.Count) - 1;
        for (var i = 0; i < jobs.Count; i++)
        {
            var job = jobs[i];
            if (job.State != JobState.Pending)
            {
                continue;
            }

            if (!full && _freeMilliTotal == 0)
            {
                break;
            }

            if (job.SubmitTicks > now)
            {
                // Submitted with a time still to come (a replayed trace, a clock ahead of ours): not eligible before it.
                job.Reason = PendingReason.New;
                job.EstimatedStartTicks = -1;
                continue;
            }

            result.Considered++;
            var mask = job.PartitionFilter >= 0 ? 1UL << job.PartitionFilter : allBlocked;
            if (Options.Backfill == BackfillMode.None && (blocked & mask) == mask)
            {
                job.Reason = PendingReason.Priority;
                continue;
            }

            var end = now + job.WalltimeTicks;
            var admissionReason = PendingReason.NoAllocation;
            var admissible = 0UL;
            var started = false;
            var unavailable = true;
            for (var p = 0; p < Fleet.Partitions.Count; p++)
            {
                if (job.PartitionFilter >= 0 && p != job.PartitionFilter)
                {
                    continue;
                }

                if ((blocked & (1UL << p)) != 0 && Options.Backfill == BackfillMode.None)
                {
                    continue;
                }

                if (!Shape.TryResolve(job.Spec, Fleet.Partitions[p], _nodesAtLeast[p], out var shape, out _))
                {
                    continue;
                }

                var allocation = Admit(job, p, shape.HeldMilli, now, out var reason);
                if (reason is { } r)
                {
                    admissionReason = Worse(admissionReason, r);
                    continue;
                }

                admissible |= 1UL << p;
                if (_upNodes[p] > 0)
                {
                    unavailable = false;
                }

                if (TryPlace(job, p, shape, end, out var plan))
                {
                    // A gang holds whole nodes, which may be larger than the typical node its admission assumed:
                    // quota and grant must cover what it will really hold.
                    var held = HeldBy(shape, plan);
                    if (held != shape.HeldMilli)
                    {
                        allocation = Admit(job, p, held, now, out var heldReason);
                        if (heldReason is { } hr)
                        {
                            admissionReason = Worse(admissionReason, hr);
                            admissible &= ~(1UL << p);
                            continue;
                        }
                    }

                    result.Started.Add(Commit(job, p, shape, plan, allocation, now));
                    started = true;
                    break;
                }
            }

            if (started)
            {
                continue;
            }

            if (admissible == 0)
            {
                job.Reason = admissionReason;
                job.EstimatedStartTicks = -1;
                if (full && Options.Preemption && preemptors < Options.MaxPreemptorsPerCycle && admissionReason == PendingReason.CohortQuota && TryPreemptForQuota(job, now, result))
                {
                    preemptors++;
                }

                continue;
            }

            if (Options.Backfill == BackfillMode.None)
            {
                blocked |= admissible;
                job.Reason = PendingReason.Resources;
                job.EstimatedStartTicks = -1;
                continue;
            }

            if (job.HeldPool >= 0)
            {
                var held = _pools[job.HeldPool];
                job.Reason = held.StickyUntil > now ? PendingReason.WaitingForPreemption : PendingReason.Reserved;
                if (job.EstimatedStartTicks < 0)
                {
                    // Cleared while the job was refused by quota: the claim still says when its victims will be gone.
                    job.EstimatedStartTicks = held.StickyUntil > now ? Math.Max(now, held.StickyUntil - TimeSpan.FromMinutes(2).Ticks) : Math.Max(now, held.UsableUntil);
                }
            }
            else if (_holdCount < depth && MakeHold(job, admissible, now))
            {
                job.Reason = PendingReason.Reserved;
            }
            else
            {
                job.Reason = unavailable ? PendingReason.NodesUnavailable : (FreeCapacity(admissible) >= (long)(job.Spec.Gpus * Milli) ? PendingReason.BehindReservation : PendingReason.Resources);
                job.EstimatedStartTicks = -1;
            }

            if (full && Options.Preemption && preemptors < Options.MaxPreemptorsPerCycle && job.Spec.Priority != PriorityClass.Preemptible && job.Reason != PendingReason.WaitingForPreemption && TryPreempt(job, admissible, now, result))
            {
                preemptors++;
            }
        }
    }

    private static PendingReason Worse(PendingReason current, PendingReason candidate) =>
        current == PendingReason.NoAllocation ? candidate : current;

    private long FreeCapacity(ulong partitions)
    {
        long free = 0;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((partitions & (1UL << p)) != 0)
            {
                foreach (var id in _activePools[p])
                {
                    // Only GPUs set aside (backfill holds, advance reservations) can be "held for a higher-priority job":
                    // free GPUs of the general pool that the job could not use are fragmentation, a question of resources.
                    if (_pools[id].Kind != PoolKind.General)
                    {
                        free += _pools[id].FreeMilli;
                    }
                }
            }
        }

        return free;
    }

    /// <summary>Admission: quota and grant. Returns the allocation to charge, or a reason.</summary>
    private int Admit(JobRecord job, int p, long heldMilli, long now, out PendingReason? reason)
    {
        reason = _quota.Check(job.Project, p, heldMilli);
        if (reason is not null)
        {
            return -1;
        }

        if (!Options.RequireAllocation)
        {
            return -1;
        }

        var allocation = _grants.Find(job.Project, p, GpuHours(heldMilli, job.WalltimeTicks), now, out var why);
        if (allocation < 0)
        {
            reason = why;
        }

        return allocation;
    }
}
