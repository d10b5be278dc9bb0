using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// The scheduling cycle.
public sealed partial class SchedulerEngine
{
    private int[] _holdCount = [];

    /// <summary>
    /// How long a preemptor's claim on its victims' nodes outlives their grace: the time the backend has to report them
    /// stopped. The claim expires at grace + slack, and the preemptor's estimated start is that expiry less the slack.
    /// </summary>
    internal static readonly TimeSpan ClaimSlack = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The order in which a job that names no partition tries them: the cheapest GPUs first (rate per GPU-hour, then
    /// fleet order), as Slurm's node weights make jobs take the least valuable nodes that fit. Small flexible jobs then
    /// leave the most capable pools to the jobs that need them.
    /// </summary>
    private int[] _partitionOrder = [];

    private static ulong HoldBit(JobRecord job) => job.HoldPartition >= 0 ? 1UL << job.HoldPartition : 0;

    /// <summary>
    /// Where a blocked job may get a reservation: the first blocked job on any partition it may use; a later one only on
    /// the one partition it is bound to. A job that may run anywhere thus never takes the reservation of a partition
    /// from the job that was first in line there.
    /// </summary>
    private ulong HoldSlotsFor(JobRecord job, ulong admissible, int depth, bool blockedSeen)
    {
        if (blockedSeen && System.Numerics.BitOperations.PopCount(admissible) > 1)
        {
            return 0;
        }

        return HoldSlots(admissible, depth);
    }

    /// <summary>Reservation computations tried per partition in this pass; a partition whose jobs cannot get one stops trying.</summary>
    private int[] _holdAttempts = [];

    /// <summary>Reservation computations tried so far (every pass): a change of it means a partition's attempts changed.</summary>
    private long _holdTries;
    private int _holdAttemptLimit;

    private ulong HoldSlots(ulong partitions, int depth)
    {
        var slots = 0UL;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((partitions & (1UL << p)) != 0 && _holdCount[p] < depth && _holdAttempts[p] < _holdAttemptLimit)
            {
                slots |= 1UL << p;
            }
        }

        return slots;
    }
    /// <summary>The time of the pass that is walking (what the placer's admission check reads).</summary>
    private long _walkNow;

    private void RefreshCapacitySignature(int p)
    {
        foreach (var id in _c.ActivePools[p])
        {
            var pool = _c.Pools[id];
            int whole = 0, share = 0;
            for (var k = pool.Partial.Length - 1; k > 0; k--)
            {
                if (pool.Partial[k].Count > 0)
                {
                    whole = k;
                    break;
                }
            }

            if (pool.FullFree > 0)
            {
                whole = pool.Partition.MaxGpusPerNode;
            }

            if (pool.Shared.Count > 0)
            {
                share = (int)(pool.Shared.Max >> 32);
            }

            pool.SigWhole = whole;
            pool.SigShare = whole > 0 ? Milli : share;
        }
    }

    private bool MayFit(in Shape shape, int p, JobRecord job, long end)
    {
        foreach (var id in _c.ActivePools[p])
        {
            var pool = _c.Pools[id];
            if (Fits(pool.SigWhole, pool.SigShare, pool.FullFree, shape) && (pool.Id == job.HeldPool || Placer.Eligible(pool, job, end)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>See <see cref="PendingQueue.Descending"/>.</summary>
    internal static ulong Descending(double key) => PendingQueue.Descending(key);

    /// <summary>
    /// Decides what starts now. A full pass (<paramref name="full"/>) counts fair-share usage, re-sorts the queue, redoes
    /// the backfill reservations, backfills and may preempt. An incremental pass decides less, never something else: after
    /// arrivals alone it tries only the new jobs; otherwise it walks the order (sorting it first where a full pass would
    /// sort it otherwise) and stops as soon as no free capacity is left or every partition is closed. Under multifactor,
    /// the first pass of each priority period works the priorities out again (see
    /// <see cref="SchedulerOptions.PriorityPeriod"/>).
    /// </summary>
    public ScheduleResult Schedule(bool full = true)
    {
        var now = _time.GetUtcNow().UtcTicks;
        var result = new ScheduleResult { Full = full };
        var t0 = _time.GetTimestamp();

        // Phase 1: time-driven changes (reservation windows, expired claims).
        UpdateAdvanceWindows(now);
        if (ExpireHolds(now, all: false) | _queue.ReleaseDueSubmits(now) | _admission.Grants.AnyEdgeIn(_lastPassTicks, now))
        {
            // A claim expired; jobs whose submit time came, to walk wherever they sort; or an allocation's window opened or
            // closed, and jobs refused before may be admitted now (or the reverse): the whole order is walked again.
            _capacityDirty = true;
        }

        _lastPassTicks = now;
        if (Options.Ordering == OrderingPolicy.Multifactor && _sorted && PeriodStart(now) != _keysPeriod)
        {
            // A new priority period: a full cycle now would work the priorities out again and sort by them, so this pass
            // does too, and walks the whole order.
            _capacityDirty = true;
            _orderStale = true;
        }

        // A pass that walks the whole order makes the reservations again as it walks, as a full cycle at this instant would
        // (jobs ahead of a holder are walked as if it held nothing; a hold's nodes may place its holder where the pools they
        // came from would not).
        // (With nothing free, an incremental pass stops at once: it keeps them.)
        RemadeHolds = full || (_capacityDirty && _c.FreeMilliTotal > 0);
        if (RemadeHolds)
        {
            ExpireHolds(now, all: true);
        }

        var t1 = _time.GetTimestamp();

        // Phase 2: order.
        if (full)
        {
            _cycles++;
            UpdateFairShare(now);
            Order(now);
        }
        else if (_capacityDirty && (_orderStale || !HeadIsCurrent()))
        {
            // This pass walks the whole order, and the last sort's is not the one a full cycle would walk now: a job queued
            // since sorts ahead of a pending one, or the jobs waiting for their preemptions are not the ones it put first.
            Order(now);
        }

        var t2 = _time.GetTimestamp();

        // Phase 3: walk the queue in order: admit, place, reserve, backfill, preempt.
        if (full || _capacityDirty)
        {
            Walk(_queue.Order, now, full, result);

            // Entries of jobs that left the queue (started, ended, requeued: a requeued job is queued again) stay until the
            // next sort rebuilds the order, or until they make up half of it: every walk passes over them.
            if (_queue.NeedsCompaction)
            {
                _queue.Compact();
            }
        }
        else if (_queue.Arrivals.Count > 0)
        {
            if (Options.Ordering == OrderingPolicy.Fifo && _queue.Arrivals.Count > 1)
            {
                // Arrivals in the order a full cycle walks them (a job may arrive with an earlier submit time).
                _queue.Arrivals.Sort(static (a, b) => PendingQueue.FifoBefore(a, b) ? -1 : PendingQueue.FifoBefore(b, a) ? 1 : 0);
            }
            else if (_queue.Arrivals.Count > 1 && _sorted)
            {
                // By the key a sort would give them, then submit time and id.
                _queue.Arrivals.Sort((a, b) =>
                {
                    var c = Descending(KeyNow(a)).CompareTo(Descending(KeyNow(b)));
                    return c != 0 ? c : PendingQueue.FifoBefore(a, b) ? -1 : PendingQueue.FifoBefore(b, a) ? 1 : 0;
                });
            }

            Walk(_queue.Arrivals, now, false, result);
        }

        _queue.Arrivals.Clear();

        // A job decided before a start in this walk may be decided otherwise now (a reservation or admission reads what
        // runs: a partition found full is a matter for placement, not quota). Unless every partition is closed (then an
        // arrival walked alone starts nowhere), the next pass walks the whole order again rather than arrivals alone
        // behind these decisions.
        _capacityDirty = result.Started.Count > 0 && (_blockedPartitions & AllPartitions) != AllPartitions;
        _admission.Quota.SettleOver();
        var t3 = _time.GetTimestamp();
        result.Timings = new CycleTimings(_time.GetElapsedTime(t0, t1), _time.GetElapsedTime(t1, t2), _time.GetElapsedTime(t2, t3));
        return result;
    }

    /// <summary>Decays past usage to now and adds what the running jobs used since the last update.</summary>
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
    }

    /// <summary>The start of the priority period that holds <paramref name="now"/> (see <see cref="SchedulerOptions.PriorityPeriod"/>).</summary>
    private long PeriodStart(long now) => now - (now % Options.PriorityPeriod.Ticks);

    /// <summary>The priority period the kept keys were worked out for (<see cref="long.MinValue"/>: none yet).</summary>
    private long _keysPeriod = long.MinValue;

    private void Order(long now)
    {
        var keysAt = now;
        if (Options.Ordering == OrderingPolicy.Multifactor)
        {
            // Priorities are worked out once per period, at its first sort: the fair-share factors as of that pass, ages as
            // of the period's start. A full cycle anywhere in the period then sorts as that pass did.
            keysAt = PeriodStart(now);
            if (keysAt != _keysPeriod)
            {
                UpdateFairShare(now);
                _fairShare.Recompute();
                _fairShare.CopyFactors(ref _keyFactors);
                _keysPeriod = keysAt;
            }
        }

        // The keys read the fair-share factors of the period; they are kept with the keys, for PriorityOf.
        _keys = new SortKeys(this, keysAt, _keyFactors);
        _goFirst.Clear();
        foreach (var j in _reasons.WaitingForPreemption)
        {
            // A job of a lazily decided rest never waits for a preemption (such a job holds a pool and is decided at once).
            if (j.State == JobState.Pending && !IsLazy(j))
            {
                _goFirst.Add(j);
            }
        }

        var keys = _keys;
        _queue.Sort(ref keys, _goFirst);
        _sorted = true;
        _orderStale = false;
        if (Options.Ordering is OrderingPolicy.LeastAttainedService or OrderingPolicy.ShortestRemainingFirst)
        {
            // The last place in this order: a job queued later with a key that goes after it goes last in the next sort too.
            _lastKey = 0;
            for (var i = 0; i < _queue.Count; i++)
            {
                _lastKey = Math.Max(_lastKey, Descending(_queue[i].Priority));
            }
        }
    }

    /// <summary>
    /// Under least attained service and shortest remaining time (whose keys do not change while a job waits): notes
    /// whether a job joining the queue goes last in the order a sort now would make, as it goes in the kept order. If it
    /// does not, the next pass over the whole order sorts first.
    /// </summary>
    private void NoteQueued(JobRecord job)
    {
        if (Options.Ordering is not (OrderingPolicy.LeastAttainedService or OrderingPolicy.ShortestRemainingFirst) || _orderStale)
        {
            return;
        }

        if (!_sorted)
        {
            // No keys yet: a second job makes the next pass sort.
            _orderStale = _queue.Count > 0;
            return;
        }

        var key = Descending(KeyNow(job));
        if (_queue.Count > 0 && (key < _lastKey || (key == _lastKey && job.SubmitTicks <= _queue.SubmitBound)))
        {
            _orderStale = true;
        }
        else
        {
            _lastKey = key;
        }
    }

    /// <summary>
    /// Under multifactor, whose priorities do not change within a priority period: puts a job just queued at its sorted
    /// place in the kept order (where the queue can), as the next sort of the period would. Otherwise the next pass over
    /// the whole order sorts first.
    /// </summary>
    private void PlaceQueued(JobRecord job)
    {
        if (Options.Ordering != OrderingPolicy.Multifactor)
        {
            return;
        }

        if (!_sorted)
        {
            _orderStale = _queue.Count > 1;
            return;
        }

        // Its priority is the period's, whether it is placed now or sorted later in the period.
        var key = KeyNow(job);
        job.Priority = key;
        if (!_orderStale && !_queue.PlaceByKey(job, Descending(key), _keyOfPlaced ??= j => Descending(KeyNow(j))))
        {
            _orderStale = true;
        }
    }

    /// <summary>A pending job's key as the last sort's keys give it, without writing it to the job.</summary>
    private double KeyNow(JobRecord job)
    {
        var kept = job.Priority;
        var key = _keys.KeyOf(job);
        job.Priority = kept;
        return key;
    }

    /// <summary>The key a kept job sorts by, for <see cref="PendingQueue.PlaceByKey"/>.</summary>
    private Func<JobRecord, ulong>? _keyOfPlaced;

    /// <summary>Whether a sort has run (before it, the order is the order of arrival).</summary>
    private bool _sorted;

    /// <summary>Whether the kept order is not the one a sort now would make (see <see cref="NoteQueued"/>).</summary>
    private bool _orderStale;

    /// <summary>The key (as <see cref="Descending"/> maps it) of the last job in the order, under LAS and SRTF.</summary>
    private ulong _lastKey;

    /// <summary>When set, the jobs the walks step, in the order they step them; for tests.</summary>
    internal List<long>? WalkRecord { get; set; }

    /// <summary>Whether the last pass dropped the reservations and made them again in its walk; for tests.</summary>
    internal bool RemadeHolds { get; private set; }

    /// <summary>When the last pass ran (<see cref="long.MinValue"/>: none yet).</summary>
    private long _lastPassTicks = long.MinValue;

    /// <summary>Whether the jobs at the head of the order (first in the last sort) are the pending jobs a sort now would put first.</summary>
    private bool HeadIsCurrent()
    {
        var order = _queue.Order;
        var waiting = 0;
        for (var i = 0; i < _queue.OrderHead; i++)
        {
            var j = order[i];
            if (j.State != JobState.Pending || IsLazy(j))
            {
                continue;
            }

            if (ReasonOf(j) != PendingReason.WaitingForPreemption)
            {
                return false;
            }

            waiting++;
        }

        var pending = 0;
        foreach (var j in _reasons.WaitingForPreemption)
        {
            if (j.State == JobState.Pending && !IsLazy(j))
            {
                pending++;
            }
        }

        return pending == waiting;
    }

    /// <summary>The last full pass's sort keys (what <see cref="PriorityOf"/> recomputes a priority with).</summary>
    private SortKeys _keys;

    /// <summary>The fair-share factor of every user, as the last full pass's keys read them.</summary>
    private double[] _keyFactors = [];

    /// <summary>The jobs the next sort puts first (scratch).</summary>
    private readonly List<JobRecord> _goFirst = [];

    /// <summary>
    /// A job's priority: the key the last full sort gave it. Under the policies whose keys come from the queue's columns
    /// (FIFO, multifactor) the sort does not write it to the job: it is worked out again here, from the same keys.
    /// For a job queued since: under multifactor the period's priority (<see cref="PlaceQueued"/>); otherwise +∞ (the
    /// engine reports it as 0).
    /// </summary>
    private double PriorityOf(JobRecord job)
    {
        if (job.PendingSlot >= 0 && _keys.Columnar && job.QueuedSeq <= _queue.LastSortSeq)
        {
            var size = job.SizeTerm;
            return _keys.KeyOf(job.User, job.SubmitTicks, job.PriorityClass, ref size, job);
        }

        return job.Priority;
    }

    /// <summary>
    /// The full pass's sort keys: the policy's priority; jobs waiting for their preemptions go first (the sort is given
    /// them). FIFO's and multifactor's keys come from the queue's columns and are not written to the job
    /// (<see cref="PriorityOf"/>); the other policies' read the job and are written to it.
    /// </summary>
    private readonly struct SortKeys(SchedulerEngine engine, long now, double[] factors) : PendingQueue.ISortKeys
    {
        private readonly double _maxAge = engine.Options.MaxAge.Ticks;
        private readonly double _logTotal = Math.Log2(1 + engine.Fleet.TotalGpus);
        private readonly OrderingPolicy _ordering = engine.Options.Ordering;
        private readonly bool _columnar = engine.Options.ColumnarKeys && (engine.Options.Ordering is OrderingPolicy.Fifo or OrderingPolicy.Multifactor);
        private readonly double _weightFairShare = engine.Options.WeightFairShare;
        private readonly double _weightAge = engine.Options.WeightAge;
        private readonly double _weightClass = engine.Options.WeightPriorityClass;
        private readonly double _weightSize = engine.Options.WeightSize;

        public bool Columnar => _columnar;

        public double KeyOf(int user, long submitTicks, PriorityClass cls, ref double size, JobRecord job)
        {
            if (_ordering == OrderingPolicy.Fifo)
            {
                return 0;
            }

            var age = Math.Clamp((now - submitTicks) / _maxAge, 0, 1);
            if (double.IsNaN(size))
            {
                // Worked out once per job.
                size = job.SizeTerm = Math.Log2(1 + job.Gpus) / _logTotal;
            }

            var factor = user < factors.Length ? factors[user] : 1;
            return (_weightFairShare * factor) + (_weightAge * age) + (_weightClass * ((int)cls / 2.0)) + (_weightSize * size);
        }

        /// <summary>These keys with a copy of the fair-share factors they read, in <paramref name="into"/> (reused when it fits).</summary>
        public SortKeys WithOwnFactors(ref double[] into)
        {
            if (factors is null)
            {
                return this;
            }

            if (into.Length != factors.Length)
            {
                into = new double[factors.Length];
            }

            factors.CopyTo(into, 0);
            return new SortKeys(engine, now, into);
        }

        public double KeyOf(JobRecord j)
        {
            double key;
            if (_ordering == OrderingPolicy.LeastAttainedService)
            {
                key = -engine._preemption.LasQueue(j.AttainedGpuSeconds);
            }
            else if (_ordering == OrderingPolicy.ShortestRemainingFirst)
            {
                var total = (j.DurationHint ?? TimeSpan.FromTicks(j.WalltimeTicks)).TotalSeconds;
                key = -Math.Max(0, total - (j.AttainedGpuSeconds / Math.Max(j.Gpus, 1e-3)));
            }
            else
            {
                var size = j.SizeTerm;
                key = KeyOf(j.User, j.SubmitTicks, j.PriorityClass, ref size, j);
            }

            j.Priority = key;
            return key;
        }
    }

    /// <summary>
    /// Phase 3 of a pass: walks <paramref name="jobs"/> in order. For each job: (3a) nominate it on each partition it may
    /// use (<see cref="Nominate"/>: admission, then placement; a value, nothing changed); (3b) commit the first fit;
    /// otherwise (3c) refused everywhere: the admission reason, and on a full pass maybe a preemption for quota;
    /// (3d) admitted but no room: a reservation (backfill hold) where a slot is left, else the reason why not; (3e) on a
    /// full pass, a preemption (<see cref="PreemptionPlanner.PlanPreemption"/>, then <see cref="Preempt"/>).
    /// </summary>
    private void Walk(List<JobRecord> jobs, long now, bool full, ScheduleResult result)
    {
        var depth = Options.Backfill switch
        {
            BackfillMode.Easy => 1,
            BackfillMode.Conservative => Options.ConservativeDepth,
            _ => 0,
        };
        // Without backfill, a partition on which a job waits is closed to every job behind it. A pass over the whole
        // order finds those partitions itself; a pass over arrivals or holders alone starts from the last pass's, so
        // that a job never starts ahead of a blocked one (a full cycle at that instant would not start it either).
        var wholeOrder = ReferenceEquals(jobs, _queue.Order);
        var blocked = wholeOrder ? 0UL : _blockedPartitions;

        // Partitions close behind a blocked job without backfill, and on an incremental pass: it never backfills, so
        // that it starts only jobs a full cycle at that instant would start too (the full cycle backfills).
        var closes = Options.Backfill == BackfillMode.None || !full;
        var brokeEarly = false;
        var preemptors = 0;
        var blockedSeen = false;
        _walkNow = now;
        if (_holdAttempts.Length != Fleet.Partitions.Count)
        {
            _holdAttempts = new int[Fleet.Partitions.Count];
        }

        Array.Clear(_holdAttempts);
        _holdAttemptLimit = full ? Math.Max(16, depth * 2) : Math.Max(8, depth * 2);
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            RefreshCapacitySignature(p);
        }

        var allBlocked = AllPartitions;
        var examined = 0;
        var looked = 0;
        (long Free, long Tries, int Started) restMark = (-1, -1, -1);
        var restHoldSlots = 0UL;
        var inRest = false;
        var restCounted = false;
        var restFrom = 0;
        JobRecord? segmentAfter = null;
        var segmentAt = UInt128.Zero;
        var segmentHeld = false;
        var segmentStarts = 0;
        // With backfill, a job an incremental pass passes over on a partition closed behind a waiting job might start
        // there in a full cycle and spend its project's GPU-hours, which its allocation may pay on any partition: its
        // project's later jobs wait too. (A pass over arrivals alone goes on from the last pass over the whole order, as
        // with the partitions.)
        var closesProjects = !full && Options.Backfill != BackfillMode.None;
        JobRecord? passedOver = null;
        if (wholeOrder)
        {
            _closedProjects.Clear();
        }

        for (var i = 0; i < jobs.Count || inRest; i++)
        {
            if (passedOver is not null)
            {
                ClosePassedOver(passedOver);
                passedOver = null;
            }

            if (wholeOrder && i == _queue.SortedUntil && !inRest)
            {
                if (full && RestIsSettled(blocked, allBlocked, preemptors, depth))
                {
                    // Nothing left in this pass can change the state: the rest is decided job by job, in any order.
                    DecideSettledRest(jobs, i, now, result);
                    break;
                }

                if (full && blockedSeen && Options.Backfill != BackfillMode.None && (!Options.Preemption || preemptors >= Options.MaxPreemptorsPerCycle))
                {
                    _admission.Quota.ResetRootBounds();
                    _restSegmented = false;
                    FindRestCandidates(i, now, depth, after: null);

                    // (The search worked out the classes, the room and the bounds in the state of now.)
                    restMark = (_c.FreeVersion, _holdTries, result.Started.Count);
                    restHoldSlots = HoldSlots(ulong.MaxValue, depth);
                    CheckedRests++;
                    LeaveRestLazy(jobs, i, now, result, checkedNow: true);
                    if (_restCandidates.FoundCount == 0)
                    {
                        // No job of the rest could be placed or reserved: none changes the state, in any order.
                        SettledRests++;
                        break;
                    }

                    // The rest is decided as the state is now, but for its candidates, each stepped here in the order of
                    // the whole sort. A step that changes the state begins a segment of the rest: the jobs after it are
                    // decided on the state it leaves (none of them changes it, unless the step opened something: then
                    // candidates are looked for again).
                    _restCandidates.TakeAll();
                    restCounted = true;
                    inRest = true;
                    restFrom = i;
                }
                else if (!full)
                {
                    // The last full sort ordered only the head of the queue, and this pass needs the order beyond it: an
                    // incremental pass looks at a bounded number of jobs, so the head grows by as many (the tail stays,
                    // for the jobs queued later to join).
                    _queue.ExtendHead(Options.SortedHead);
                }
                else
                {
                    // The last full sort ordered only the head of the queue, and this pass needs the order beyond it.
                    _queue.SortTail();
                }
            }

            JobRecord job;
            if (inRest)
            {
                // The rest's candidates, one per turn (i only counts the turns from here).
                if (segmentAfter is not null)
                {
                    // The last candidate's step changed the state: the jobs of the rest after it are decided on this one,
                    // and candidates are looked for again where a step may have opened what it did not close (a holder
                    // that starts gives its reservation's place back; a start may change a class's admission).
                    var segmentStart = result.Started.Count > segmentStarts ? result.Started[^1] : null;
                    var rescan = BeginRestSegment(segmentAfter, RestCandidates.KeyOf(segmentAt), now, segmentStart, segmentHeld);
                    segmentAfter = null;
                    var checkedCurrent = segmentStart is not null && rescan != Rescan.All && restMark.Started == segmentStarts && result.Started.Count == segmentStarts + 1;
                    if (checkedCurrent)
                    {
                        // The segment brought the checked classes up to date with the start: those whose answer changed were
                        // worked out again there, the others stand (the room is looked at again all the same).
                        restMark.Started = result.Started.Count;
                    }

                    if (rescan != Rescan.None)
                    {
                        FindRestCandidates(restFrom, now, depth, segmentAt, dirtyOnly: rescan == Rescan.Classes, keepChecked: checkedCurrent);
                        if (rescan == Rescan.All)
                        {
                            _restCandidates.TakeAll();
                        }
                        else
                        {
                            _restCandidates.TakeMore();
                        }

                        // (The bounds were worked out for that search.)
                        restMark = (_c.FreeVersion, _holdTries, result.Started.Count);
                        restHoldSlots = HoldSlots(ulong.MaxValue, depth);
                    }
                }

                if (Options.ClassDecisions && RefreshClassState(ref restMark, ref restHoldSlots, result, depth))
                {
                    StampCandidateBounds();
                }

                // Under class decisions, a candidate is no longer one when a step before it took the room or the
                // reservation it might have had (nor is any job of its class with its walltime): it stays as the rest
                // decides it, in the segment of its place.
                var test = new CandidateTest(this, now, restHoldSlots);
                if (!_restCandidates.TryNext(ref test, out var place))
                {
                    // Every candidate was stepped.
                    if (_reasons.Segments > 1)
                    {
                        ContinuedRests++;
                    }
                    else
                    {
                        SettledRests++;
                    }

                    break;
                }

                var t = RestCandidates.TailOf(place);
                job = jobs[restFrom + t];
                if (Options.ClassDecisions)
                {
                    if (job.State == JobState.Pending && job.SubmitTicks <= now
                        && DecideRestJob(job, now, CheckedBank, checkFit: true, restHoldSlots, out var nowReason, out var nowEstimate))
                    {
                        // No longer a candidate: its step is its class's, as in the walk.
                        looked++;
                        WalkRecord?.Add(job.Id);
                        ClassDecided++;
                        Decide(job, nowReason, nowEstimate);
                        continue;
                    }
                }

                if (WouldChangeState(job, now, depth))
                {
                    // Its step changes the state that the jobs after it are decided on.
                    segmentAfter = job;
                    segmentAt = place;
                    segmentHeld = job.HeldPool >= 0;
                    segmentStarts = result.Started.Count;
                }

                // Otherwise its step changes nothing the rest's decisions read (it writes its reason; a reservation may be
                // tried in vain), as at its place in the order.
            }
            else
            {
                job = jobs[i];
            }

            if (job.State != JobState.Pending)
            {
                continue;
            }

            // An incremental pass stops once nothing is free, every partition is closed, or it looked deep enough.
            if (!full && (_c.FreeMilliTotal == 0 || (wholeOrder && (blocked & allBlocked) == allBlocked) || examined >= Options.IncrementalDepth || looked >= Options.IncrementalDepth))
            {
                brokeEarly = true;
                break;
            }

            if (job.SubmitTicks > now)
            {
                // Submitted with a time still to come (a replayed trace, a clock ahead of ours): not eligible before it.
                Decide(job, PendingReason.New, -1);
                continue;
            }

            if (!restCounted)
            {
                // (A rest decided as a whole counted its jobs.)
                result.Considered++;
            }

            looked++;
            WalkRecord?.Add(job.Id);
            var mask = (job.PartitionFilter >= 0 ? 1UL << job.PartitionFilter : allBlocked) & job.ShapeMask;
            if (closes && ((blocked & mask) == mask || (closesProjects && _closedProjects.Count > 0 && _closedProjects.Contains(job.Project))))
            {
                // (Passed over, it might wait on any partition it may use: they close behind it.)
                SetReason(job, PendingReason.Priority);
                blocked |= mask;
                passedOver = closesProjects ? job : null;
                continue;
            }

            if (closesProjects && (blocked & mask) != 0)
            {
                passedOver = job;
            }

            // 3-. A job whose step would change nothing (no partition that admits it may fit it, no reservation is open to
            // it) is decided from its class's entries, worked out again whenever the state changes: on a full pass once a
            // job is blocked and no preemption is left; on an incremental pass always (it never preempts).
            if (Options.ClassDecisions && Options.Backfill != BackfillMode.None
                && (!full || (blockedSeen && (!Options.Preemption || preemptors >= Options.MaxPreemptorsPerCycle))))
            {
                _ = RefreshClassState(ref restMark, ref restHoldSlots, result, depth);
                if (!full)
                {
                    if (DecideIncrementalJob(job, now, depth, blockedSeen, blocked, out var nominated, out var waitsOn))
                    {
                        ClassDecidedIncremental++;
                        examined += nominated;
                        blockedSeen |= waitsOn != 0;
                        blocked |= waitsOn;
                        continue;
                    }
                }
                else if (DecideRestJob(job, now, CheckedBank, checkFit: true, restHoldSlots, out var restReason, out var restEstimate))
                {
                    ClassDecided++;
                    Decide(job, restReason, restEstimate);
                    continue;
                }
            }

            var end = now + job.WalltimeTicks;
            var admissionReason = PendingReason.NoAllocation;
            var admissible = 0UL;
            var started = false;
            var unavailable = true;
            foreach (var p in _partitionOrder)
            {
                if (job.PartitionFilter >= 0 && p != job.PartitionFilter)
                {
                    continue;
                }

                if (closes && (blocked & (1UL << p)) != 0)
                {
                    continue;
                }

                if ((job.ShapeMask & (1UL << p)) == 0)
                {
                    continue;
                }

                // 3a. Nominate.
                ref readonly var shape = ref job.Shapes[p];
                var nomination = Nominate(job, p, shape, end, now);
                examined++;

                if (nomination.NodesUp)
                {
                    unavailable = false;
                }

                switch (nomination.Mode)
                {
                    case NominationMode.Refused:
                        admissionReason = Worse(admissionReason, nomination.Reason!.Value);
                        continue;
                    case NominationMode.NoFit:
                        admissible |= 1UL << p;
                        continue;
                }

                // 3b. Commit.
                result.Started.Add(Commit(job, p, shape, nomination.Plan, nomination.Allocation, now));
                RefreshCapacitySignature(p);
                started = true;
                break;
            }

            if (started)
            {
                continue;
            }

            // 3c. Refused on every partition.
            if (admissible == 0)
            {
                Decide(job, admissionReason, -1);
                if (full && Options.Preemption && preemptors < Options.MaxPreemptorsPerCycle && admissionReason == PendingReason.CohortQuota)
                {
                    preemptors++;
                    TryPreemptForQuota(job, now, result);
                }

                continue;
            }

            // 3d. Admitted but no room: the partitions close behind it (no backfill), or a reservation, or the reason.
            blocked |= admissible;
            if (Options.Backfill == BackfillMode.None)
            {
                Decide(job, _placer.ExplainResources(job, admissible, end, PendingReason.Resources), -1);
                continue;
            }

            if (job.HeldPool >= 0)
            {
                var held = _c.Pools[job.HeldPool];
                var estimate = EstimateOf(job);

                // Cleared while the job was refused by quota: the claim still says when its victims will be gone.
                Decide(job, held.StickyUntil > now ? PendingReason.WaitingForPreemption : PendingReason.Reserved,
                    estimate >= 0 ? estimate : held.StickyUntil > now ? Math.Max(now, held.StickyUntil - ClaimSlack.Ticks) : Math.Max(now, held.UsableUntil));
            }
            else if (HoldSlotsFor(job, admissible, depth, blockedSeen) is var slots && slots != 0 && (((slots & HoldBit(job)) != 0 && MakeHold(job, HoldBit(job), now)) || MakeHold(job, slots, now)))
            {
                SetReason(job, PendingReason.Reserved);
            }
            else
            {
                Decide(job, unavailable ? PendingReason.NodesUnavailable : _placer.ExplainResources(job, admissible, end, FreeCapacity(admissible) >= (long)(job.Gpus * Milli) ? PendingReason.BehindReservation : PendingReason.Resources), -1);
            }

            // 3e. Preempt.
            blockedSeen = true;
            if (full && Options.Preemption && preemptors < Options.MaxPreemptorsPerCycle && ReasonOf(job) != PendingReason.WaitingForPreemption && (job.PriorityClass != PriorityClass.Preemptible || AnyWithinGuarantee(job, admissible)))
            {
                preemptors++;
                TryPreempt(job, admissible, now, result);
            }
        }

        if (passedOver is not null)
        {
            ClosePassedOver(passedOver);
        }

        if (closes || (wholeOrder && Options.Backfill != BackfillMode.None))
        {
            // What a pass over arrivals alone starts from: the partitions a waiting job closed to the jobs behind it. A full
            // pass with backfill that decided jobs without walking them (by class, or a lazy rest) closes them all.
            // A pass over the whole order that stopped early did not see every blocked job: close every partition until
            // the next whole pass (an arrival then waits for it, as it would wait behind the jobs not seen).
            // (Once a job waits and no preemption is left, a full pass may decide jobs by class or leave the rest lazy.)
            var decidedUnwalked = full && blockedSeen && (!Options.Preemption || preemptors >= Options.MaxPreemptorsPerCycle);
            _blockedPartitions = wholeOrder && (brokeEarly || decidedUnwalked) ? allBlocked : blocked;
        }
    }

    /// <summary>
    /// Brings what a class decision reads up to date (see the walk's step 3-): the classes' admission after a start, the
    /// pools' room after a start or a reservation, the reservations still to give after a try. <paramref name="mark"/>
    /// is what they were worked out at. True when any of them changed.
    /// </summary>
    private bool RefreshClassState(ref (long Free, long Tries, int Started) mark, ref ulong holdSlots, ScheduleResult result, int depth)
    {
        var changed = false;
        if (result.Started.Count != mark.Started)
        {
            _classes.BeginPass(CheckedBank);
            changed = true;
        }

        if (_c.FreeVersion != mark.Free)
        {
            RefreshRestRoom();
            changed = true;
        }

        if (_holdTries != mark.Tries)
        {
            // A try in vain changes only the count of tries, unless it was a partition's last.
            var slots = HoldSlots(ulong.MaxValue, depth);
            changed |= slots != holdSlots;
            holdSlots = slots;
        }

        mark = (_c.FreeVersion, _holdTries, result.Started.Count);
        return changed;
    }

    /// <summary>
    /// Whether nothing a full pass does for the jobs still to walk can change the state that later jobs are decided on,
    /// so that walking them in any order decides each of them the same (see docs/scheduling.md, "The queue knows what
    /// would unblock a job"). Without backfill: every partition is closed behind a waiting job, so each of them waits
    /// for <c>priority</c> and nothing else is looked at. With backfill, all of: (1) no pool of any partition has room for
    /// any job (<see cref="MayFit"/> is false for every shape, so no job is placed); (2) every partition has its
    /// reservations or has tried its last (<see cref="HoldSlots"/> is empty, so no reservation is made); (3) no preemption
    /// is left this pass. What remains of each job's step is then admission (a pure check) and its reason.
    /// </summary>
    private bool RestIsSettled(ulong blocked, ulong allBlocked, int preemptors, int depth)
    {
        if (Options.Backfill == BackfillMode.None)
        {
            return blocked == allBlocked;
        }

        if (Options.Preemption && preemptors < Options.MaxPreemptorsPerCycle)
        {
            return false;
        }

        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if (_holdCount[p] < depth && _holdAttempts[p] < _holdAttemptLimit)
            {
                return false;
            }

            foreach (var id in _c.ActivePools[p])
            {
                var pool = _c.Pools[id];
                if (pool.SigWhole > 0 || pool.SigShare > 0 || pool.FullFree > 0)
                {
                    return false;
                }
            }
        }

        return true;
    }

    /// <summary>
    /// The rest of a full pass once <see cref="RestIsSettled"/>: nothing left in the pass can change the state, so each
    /// job's step of <see cref="Walk"/> (admission, then the reason and estimate of a job neither placed, reserved for nor
    /// a preemptor) depends only on the job and on the state now. The rest is decided lazily: the state its steps read is
    /// kept (<see cref="DecisionClasses"/> entries of every class in the snapshot bank, the pools' set-aside GPUs, the
    /// time), and a job's reason and estimate are worked out from it when read (<see cref="ReasonOf"/>), unless something
    /// writes them first. A pass thus costs the head it walked and the classes, not the backlog. The jobs of the head are
    /// marked decided; a job holding a pool is decided at once (its step reads the pool, which later passes change).
    /// </summary>
    private void DecideSettledRest(List<JobRecord> jobs, int from, long now, ScheduleResult result)
    {
        SettledRests++;
        LeaveRestLazy(jobs, from, now, result, checkedNow: false);
    }

    /// <summary>
    /// Decides the rest of a full pass lazily (see <see cref="DecideSettledRest"/>): keeps the state its steps read, marks
    /// the head decided, and decides the jobs holding a pool at once. <paramref name="checkedNow"/>: the checked bank's
    /// pass began in the state of now (<see cref="FindRestCandidates"/> just looked), so its classes are copied.
    /// </summary>
    private void LeaveRestLazy(List<JobRecord> jobs, int from, long now, ScheduleResult result, bool checkedNow)
    {
        // Everything written from here on is newer than the rest; the head's decisions stand as written.
        var free = _reasons.BeginLazyRest(now, Fleet.Partitions.Count);
        for (var i = 0; i < from; i++)
        {
            _reasons.MarkDecided(jobs[i]);
        }

        if (Options.Backfill != BackfillMode.None)
        {
            for (var p = 0; p < free.Length; p++)
            {
                free[p] = ComputeFreeCapacity(1UL << p);
            }

            SnapshotRest(now, SnapshotBank, fromChecked: checkedNow);
        }

        foreach (var pool in _c.Pools)
        {
            if (pool.Kind == PoolKind.Hold && pool.HolderJob >= 0 && _jobs.TryGetValue(pool.HolderJob, out var holder)
                && holder.HeldPool == pool.Id && IsLazy(holder))
            {
                LazyDecision(holder, out var reason, out var estimate);
                Decide(holder, reason, estimate);
            }
        }

        // Every job of the rest is pending (the walk started only jobs of the head); those not yet submitted are new.
        var considered = jobs.Count - from;
        if (_queue.SubmitBound > now)
        {
            for (var i = from; i < jobs.Count; i++)
            {
                considered -= jobs[i].SubmitTicks > now ? 1 : 0;
            }
        }

        result.Considered += considered;
    }

    /// <summary>Who last decided each pending job's reason (see <see cref="ReasonBook"/>).</summary>
    private readonly ReasonBook _reasons = new();

    private bool IsLazy(JobRecord job) => _reasons.IsLazy(job);

    /// <summary>Why a pending job waits: its stored reason, or the one the last lazily decided rest gives it.</summary>
    private PendingReason ReasonOf(JobRecord job)
    {
        if (!IsLazy(job))
        {
            return job.StoredReason;
        }

        LazyDecision(job, out var reason, out _);
        return reason;
    }

    /// <summary>When a pending job may start (-1: unknown): its stored estimate, or the one the last lazily decided rest gives it.</summary>
    private long EstimateOf(JobRecord job)
    {
        if (!IsLazy(job))
        {
            return job.StoredEstimate;
        }

        if (Options.Backfill != BackfillMode.None && job.HeldPool < 0)
        {
            // A lazily decided job with backfill has an estimate only when it holds a pool (see DecideRestJob).
            return -1;
        }

        LazyDecision(job, out _, out var estimate);
        return estimate;
    }

    /// <summary>Writes a job's reason and estimate.</summary>
    private void Decide(JobRecord job, PendingReason reason, long estimate) => _reasons.Write(job, reason, estimate);

    private void SetReason(JobRecord job, PendingReason reason) => Decide(job, reason, EstimateOf(job));

    private void SetEstimate(JobRecord job, long estimate) => Decide(job, ReasonOf(job), estimate);

    /// <summary>Stores what the last lazily decided rest gives a job, before something its step reads (its hold) changes.</summary>
    private void Materialize(JobRecord job)
    {
        if (IsLazy(job))
        {
            LazyDecision(job, out var reason, out var estimate);
            Decide(job, reason, estimate);
        }
    }

    /// <summary>The job's step in the last lazily decided rest (<see cref="DecideSettledRest"/>), from the state kept then.</summary>
    private void LazyDecision(JobRecord job, out PendingReason reason, out long estimate)
    {
        if (job.SubmitTicks > _reasons.LazyNow)
        {
            reason = PendingReason.New;
            estimate = -1;
        }
        else if (Options.Backfill == BackfillMode.None)
        {
            // Every partition was closed behind a waiting job; the estimate stays as it was.
            reason = PendingReason.Priority;
            estimate = job.StoredEstimate;
        }
        else
        {
            var segment = _reasons.Segments == 1 ? 0 : _reasons.SegmentOf(LazyPlace(job));
            DecideRestJobFrom(job, _reasons.LazyNow, SegmentEntries(segment, job.DecisionClass), segment, checkFit: false, 0, out reason, out estimate);
        }
    }

    /// <summary>What a new segment of the rest asks of the rest's candidates (see <see cref="BeginRestSegment"/>).</summary>
    private enum Rescan
    {
        /// <summary>None: no job that was not a candidate can be one now.</summary>
        None,
        /// <summary>The jobs of the classes whose admission changed (marked in <see cref="_dirtyStamp"/>).</summary>
        Classes,
        /// <summary>Every job of the rest after the step.</summary>
        All,
    }

    /// <summary>
    /// Begins a segment of the lazily decided rest after <paramref name="after"/>, a candidate whose step changed the state
    /// (at <paramref name="key"/> in the tail's order): keeps the state the jobs after it are decided on, and says which of
    /// them may have become candidates. A reservation changes no admission and only takes room and reservations away: the
    /// last segment's entries stand, and no job becomes a candidate. A start takes room but changes admission on its
    /// partition (quota) and for its project (grants): those entries are worked out again, and the classes whose answer
    /// changed are looked at again (a refusal on one partition may leave a job one partition to reserve on, and a start may
    /// turn a cohort's refusal into a full partition). A holder that starts gives its reservation back: everything is
    /// worked out again.
    /// </summary>
    private Rescan BeginRestSegment(JobRecord after, ulong key, long now, JobStart? started, bool heldBefore)
    {
        if (_reasons.Segments == 1)
        {
            // A job of the rest finds its segment by its key, as the sort that made this order keyed it (an incremental
            // pass may sort again with other keys before it is asked).
            _lazyKeys = _keys.WithOwnFactors(ref _lazyFactors);
            _segmentBanks.Clear();
            _segmentBanks.Add(SnapshotBank);
            _nextSegmentBank = CheckedBank + 1;
            _latestScan++;
            _latestBankSegment = 0;
            foreach (var kept in _segmentOverlays)
            {
                kept?.Clear();
            }
        }

        System.Diagnostics.Debug.Assert(Descending(LazyKey(after)) == key, $"job {after.Id}: its key in the tail is not the one the rest's keys give it");
        _restSegmented = true;
        var free = _reasons.BeginSegment((key, after.SubmitTicks, after.Id), Fleet.Partitions.Count);
        RestSegments++;
        for (var p = 0; p < free.Length; p++)
        {
            free[p] = ComputeFreeCapacity(1UL << p);
        }

        var segment = _reasons.Segments - 1;
        while (_segmentOverlays.Count <= segment)
        {
            _segmentOverlays.Add(null);
        }

        if (started is null)
        {
            // Entries are read from the segments before it.
            _segmentBanks.Add(-1);
            return Rescan.None;
        }

        if (heldBefore)
        {
            var bank = _nextSegmentBank++;
            _segmentBanks.Add(bank);
            SnapshotRest(now, bank, fromChecked: false);
            _latestScan++;
            _latestBankSegment = segment;
            return Rescan.All;
        }

        // The new segment keeps only the classes whose answer changed; the others are read from the segments before it
        // (SegmentEntries).
        _segmentBanks.Add(-1);
        var overlay = _segmentOverlays[segment] ??= [];
        var project = after.Project;
        var partition = started.Placement.Partition;
        _dirtyScan++;
        if (_dirtyStamp.Length < _classes.Count)
        {
            Array.Resize(ref _dirtyStamp, Math.Max(_classes.Count, _dirtyStamp.Length * 2));
        }

        if (_latestStamp.Length < _classes.Count)
        {
            Array.Resize(ref _latestStamp, Math.Max(_classes.Count, _latestStamp.Length * 2));
            Array.Resize(ref _latest, _latestStamp.Length);
        }

        // Another organisation's projects can only get another answer at the root. While every answer given there since
        // the rest began holds (QuotaTracker.RootAnswersHold), only the start's organisation's classes are looked at.
        var any = false;
        var orgOnly = _admission.Quota.RootAnswersHold(partition);
        var org = _admission.Quota.OrgOf(project);
        var count = orgOnly ? (org < _orgClasses.Count ? _orgClasses[org].Count : 0) : _classes.Count;
        for (var k0 = 0; k0 < count; k0++)
        {
            var c = orgOnly ? _orgClasses[org][k0] : k0;
            var own = _classes.Project(c) == project;
            if (_classes.Pending(c) == 0 || (!own && (_classes.Mask(c) & (1UL << partition)) == 0))
            {
                continue;
            }

            var shapes = _classes.Shapes(c);
            var was = LatestEntries(c);
            System.Diagnostics.Debug.Assert(
                System.Runtime.CompilerServices.Unsafe.AreSame(
                    ref System.Runtime.InteropServices.MemoryMarshal.GetReference(was),
                    ref System.Runtime.InteropServices.MemoryMarshal.GetReference(SegmentEntries(segment - 1, c))),
                $"decision class {c}: its latest entries are not those of the segment before");
            var dirty = false;
            for (var k = 0; k < was.Length && !dirty; k++)
            {
                if (own)
                {
                    var e = was[k];
                    FillEntry(ref e, _classes.Project(c), shapes[e.Partition], e.Partition, now);
                    dirty = !SameAnswer(was[k], e);
                }
                else if (was[k].Partition == partition)
                {
                    // Another project's grants did not change: only its quota on the start's partition may have.
                    dirty = (_admission.Quota.Check(_classes.Project(c), partition, was[k].HeldMilli) ?? PendingReason.New) != was[k].Quota;
                }
            }

            if (dirty)
            {
                var entries = was.ToArray();
                foreach (ref var e in entries.AsSpan())
                {
                    if (own || e.Partition == partition)
                    {
                        FillEntry(ref e, _classes.Project(c), shapes[e.Partition], e.Partition, now);
                    }
                }

                if (_classes.IsCurrent(CheckedBank, c))
                {
                    // The checked classes follow the segments (see the rest's turn in Walk).
                    entries.CopyTo(_classes.Entries(CheckedBank, c));
                }

                overlay[c] = entries;
                _latest[c] = entries;
                _latestStamp[c] = _latestScan;
                _dirtyStamp[c] = _dirtyScan;
                any = true;
            }
        }

        return any ? Rescan.Classes : Rescan.None;
    }

    /// <summary>
    /// Per segment of the lazily decided rest, where its class entries are kept: a bank that keeps every class (the first
    /// segment, and one after a holder started), or -1: only the classes whose answer changed there, in
    /// <see cref="_segmentOverlays"/>, the others read from the segments before it.
    /// </summary>
    private readonly List<int> _segmentBanks = [];
    private readonly List<Dictionary<int, DecisionClasses.Entry[]>?> _segmentOverlays = [];
    private int _nextSegmentBank;

    /// <summary>
    /// The entries of class <paramref name="c"/> in the last segment begun, as <see cref="SegmentEntries"/> gives them
    /// there, without looking back through the segments: the last overlay written for the class since the last segment
    /// that keeps every class, else that segment's.
    /// </summary>
    private ReadOnlySpan<DecisionClasses.Entry> LatestEntries(int c) =>
        _latestStamp[c] == _latestScan ? _latest[c] : SegmentEntries(_latestBankSegment, c);

    /// <summary>Per class, the last overlay written for it (see <see cref="LatestEntries"/>), valid where its stamp is <see cref="_latestScan"/>.</summary>
    private DecisionClasses.Entry[][] _latest = [];
    private int[] _latestStamp = [];
    private int _latestScan;

    /// <summary>The last segment of the lazily decided rest that keeps every class (0: its first).</summary>
    private int _latestBankSegment;

    /// <summary>Classes marked for a rescan of the rest's candidates: those whose stamp is <see cref="_dirtyScan"/>.</summary>
    private int[] _dirtyStamp = [];
    private int _dirtyScan;

    /// <summary>Where a lazily decided job is in the order of its rest: its key as the rest's sort gave it, submit time, id.</summary>
    private (ulong Key, long Submit, long Id) LazyPlace(JobRecord job) => (Descending(LazyKey(job)), job.SubmitTicks, job.Id);

    /// <summary>A job's key as the sort of the last lazily decided rest gave it, without writing it to the job.</summary>
    private double LazyKey(JobRecord job)
    {
        var kept = job.Priority;
        var key = _lazyKeys.KeyOf(job);
        job.Priority = kept;
        return key;
    }

    /// <summary>The sort keys of the last lazily decided rest that was cut into segments (see <see cref="BeginRestSegment"/>).</summary>
    private SortKeys _lazyKeys;

    /// <summary>The fair-share factors <see cref="_lazyKeys"/> read (their own copy).</summary>
    private double[] _lazyFactors = [];

    /// <summary>The entries of class <paramref name="c"/> kept for a segment of the lazily decided rest (see <see cref="_segmentBanks"/>).</summary>
    private ReadOnlySpan<DecisionClasses.Entry> SegmentEntries(int segment, int c)
    {
        for (var k = segment; k > 0; k--)
        {
            if (_segmentBanks[k] >= 0)
            {
                if (_classes.IsCurrent(_segmentBanks[k], c))
                {
                    return _classes.Entries(_segmentBanks[k], c);
                }

                break;
            }

            if (_segmentOverlays[k] is { } overlay && overlay.TryGetValue(c, out var entries))
            {
                return entries;
            }
        }

        return _classes.IsCurrent(SnapshotBank, c) ? _classes.Entries(SnapshotBank, c)
            : throw new InvalidOperationException($"decision class {c}: not kept with the rest it belongs to");
    }

    /// <summary>
    /// Keeps every class's entries, which the rest's steps read, in <paramref name="bank"/> (the set-aside GPUs per
    /// partition are kept by the caller). With <paramref name="fromChecked"/>, the state has not changed since the
    /// checked bank's pass began: the classes filled there are copied, not worked out again.
    /// </summary>
    private void SnapshotRest(long now, int bank, bool fromChecked)
    {
        _classes.BeginPass(bank);
        for (var c = 0; c < _classes.Count; c++)
        {
            // Every job of the rest is pending, so a class without pending jobs has none in it.
            if (_classes.Pending(c) == 0)
            {
                continue;
            }

            if (fromChecked && _classes.IsCurrent(CheckedBank, c))
            {
                _classes.Entries(CheckedBank, c).CopyTo(_classes.Entries(bank, c));
                _classes.MarkCurrent(bank, c);
            }
            else
            {
                FillClass(bank, c, now);
            }
        }
    }

    private const int SnapshotBank = 0;
    private const int CheckedBank = 1;

    /// <summary>
    /// Looks for the candidates of the rest of a full pass (the unsorted tail, from <paramref name="from"/>), once a
    /// blocked job was seen and no preemption is left: the jobs whose step might place them or reserve for them in the
    /// state of now, into <see cref="_restCandidates"/> (after <paramref name="after"/>; with <paramref name="dirtyOnly"/>,
    /// only the jobs of the classes marked by <see cref="BeginRestSegment"/>; with <paramref name="keepChecked"/>, the
    /// checked classes are up to date, as a segment left them, and only the room is looked at again). Every other job's
    /// step changes nothing but its reason, and is the one <see cref="DecideRestJob"/> gives, until a step changes the
    /// state. A reservation or a start only takes room and reservations away; but a start may change a class's admission
    /// either way, and a holder that starts gives its reservation back: those are looked for again then
    /// (<see cref="Rescan"/>). The tail is read without touching its jobs: per class, the longest walltime a job of it
    /// could be a candidate with (<see cref="CandidateWalltime"/>), against the walltimes kept beside the order. Each
    /// candidate is looked at again at its turn.
    /// </summary>
    private void FindRestCandidates(int from, long now, int depth, UInt128? after, bool dirtyOnly = false, bool keepChecked = false)
    {
        _restCandidates.BeginFind(replacing: !dirtyOnly);
        if (keepChecked)
        {
            RefreshRestRoom();
        }
        else
        {
            BeginCheckedRest();
        }

        var holdSlots = HoldSlots(ulong.MaxValue, depth);
        StampCandidateBounds();
        var keys = _queue.TailKeys;
        var classes = _queue.TailDecisions;
        var walls = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_queue.OrderWall).Slice(from, keys.Length);
        for (var t = 0; t < keys.Length; t++)
        {
            var c = classes[t];
            if ((dirtyOnly && _dirtyStamp[c] != _dirtyScan) || walls[t] > BoundOf(c, now, holdSlots)
                || (after is { } a && RestCandidates.Place(keys[t], t) <= a))
            {
                continue;
            }

            _restCandidates.Found(keys[t], t, c, walls[t]);
        }
    }

    /// <summary>
    /// Forgets the classes' candidate walltimes (the state changed), but for the classes of jobs that hold a pool: such
    /// a job may fit its own pool whatever its walltime, so its class is checked job by job.
    /// </summary>
    private void StampCandidateBounds()
    {
        _candidateScan++;
        if (_candidateStamp.Length < _classes.Count)
        {
            Array.Resize(ref _candidateStamp, Math.Max(_classes.Count, _candidateStamp.Length * 2));
            Array.Resize(ref _candidateWall, _candidateStamp.Length);
        }

        foreach (var pool in _c.Pools)
        {
            if (pool.Active && pool.HolderJob >= 0 && _jobs.TryGetValue(pool.HolderJob, out var holder) && holder.State == JobState.Pending)
            {
                _candidateStamp[holder.DecisionClass] = _candidateScan;
                _candidateWall[holder.DecisionClass] = long.MaxValue;
            }
        }
    }

    /// <summary>The longest walltime a job of class <paramref name="c"/> may be a candidate with now (<see cref="CandidateWalltime"/>, kept until the state changes).</summary>
    private long BoundOf(int c, long now, ulong holdSlots)
    {
        if (_candidateStamp[c] != _candidateScan)
        {
            _candidateStamp[c] = _candidateScan;
            _candidateWall[c] = CandidateWalltime(c, now, holdSlots);
        }

        return _candidateWall[c];
    }

    /// <summary>
    /// Whether a candidate of the rest is still one at its turn (under class decisions): its walltime within its class's
    /// bound (<see cref="BoundOf"/>). A bound grows only where a segment looks for candidates again
    /// (<see cref="BeginRestSegment"/>), so a candidate refused once is refused until a search finds it again.
    /// </summary>
    private readonly struct CandidateTest(SchedulerEngine engine, long now, ulong holdSlots) : RestCandidates.ICandidateTest
    {
        private readonly bool _classDecisions = engine.Options.ClassDecisions;

        public bool Passes(int decisionClass, long walltime) => !_classDecisions || walltime <= engine.BoundOf(decisionClass, now, holdSlots);
    }

    /// <summary>The rest's candidates (see <see cref="FindRestCandidates"/>).</summary>
    private readonly RestCandidates _restCandidates = new();

    private int[] _candidateStamp = [];
    private long[] _candidateWall = [];
    private int _candidateScan;

    /// <summary>
    /// At least the longest walltime with which a job of class <paramref name="c"/> could be placed or reserved for in the
    /// state of now (<see cref="long.MinValue"/>: none): over the partitions that admit the class, the walltime its grants
    /// cover (with an hour to spare), if a general pool has room for it or a reservation is open there: any; else, if
    /// another pool has room for it, the longest a job may run to use one of them (as <see cref="Placer.Eligible"/>).
    /// A bound, not the decision: the jobs within it are checked one by one.
    /// </summary>
    private long CandidateWalltime(int c, long now, ulong holdSlots)
    {
        if (!_classes.IsCurrent(CheckedBank, c))
        {
            FillClass(CheckedBank, c, now);
        }

        System.Diagnostics.Debug.Assert(!_restSegmented || CheckedAgreesWithSegments(c), $"decision class {c}: its checked entries are not those of the last segment");
        var project = _classes.Project(c);
        var shapes = _classes.Shapes(c);
        var entries = _classes.Entries(CheckedBank, c);

        // The walltime each partition's admission covers (long.MinValue: refused whatever the walltime).
        Span<long> covers = stackalloc long[entries.Length];
        for (var k = 0; k < entries.Length; k++)
        {
            ref readonly var e = ref entries[k];
            covers[k] = long.MinValue;
            if (e.Quota != PendingReason.New || e.Grants == DecisionClasses.Entry.GrantState.NoneActive)
            {
                continue;
            }

            covers[k] = long.MaxValue;
            if (e.Grants == DecisionClasses.Entry.GrantState.Active && !e.AnyGrantNaN && e.HeldMilli > 0)
            {
                var hours = e.MaxCover / (e.HeldMilli / (double)Milli);
                covers[k] = !(hours >= -1) ? long.MinValue : hours >= CoverHoursLimit ? long.MaxValue : (long)((hours + 1) * TimeSpan.TicksPerHour);
            }
        }

        var longest = long.MinValue;
        for (var k = 0; k < entries.Length; k++)
        {
            ref readonly var e = ref entries[k];
            var covered = covers[k];
            if (covered == long.MinValue)
            {
                continue;
            }

            if ((holdSlots & (1UL << e.Partition)) != 0)
            {
                // A reservation goes only to a job admitted on this partition alone (HoldSlotsFor, a blocked job seen):
                // one whose walltime the others do not cover.
                var others = long.MinValue;
                for (var q = 0; q < entries.Length; q++)
                {
                    others = q == k ? others : Math.Max(others, covers[q]);
                }

                if (covered > others)
                {
                    longest = Math.Max(longest, covered);
                }
            }

            ref readonly var shape = ref shapes[e.Partition];
            ref readonly var room = ref _restRoom[e.Partition];
            long usable;
            if (Fits(room.General, shape))
            {
                usable = long.MaxValue;
            }
            else if (Fits(room.Other, shape))
            {
                usable = long.MinValue;
                foreach (var id in _c.ActivePools[e.Partition])
                {
                    var pool = _c.Pools[id];
                    if (pool.Kind == PoolKind.General || !Fits(pool.SigWhole, pool.SigShare, pool.FullFree, shape))
                    {
                        continue;
                    }

                    var until = pool.Kind switch
                    {
                        PoolKind.Hold => pool.HoldsReserved ? long.MinValue : pool.UsableUntil,
                        PoolKind.Advance when pool.UsableUntil == long.MinValue => pool.OwnerProject == project && project >= 0 ? long.MaxValue : long.MinValue,
                        PoolKind.Advance => pool.UsableUntil,
                        _ => long.MinValue,
                    };
                    usable = Math.Max(usable, until == long.MaxValue ? long.MaxValue : until < now ? long.MinValue : until - now);
                }
            }
            else
            {
                continue;
            }

            longest = Math.Max(longest, Math.Min(covered, usable));
        }

        return longest;
    }

    /// <summary>Whether a segment of the rest was begun since the rest looked for its candidates (for an assertion).</summary>
    private bool _restSegmented;

    /// <summary>Whether class <paramref name="c"/>'s checked entries give the answers of the last segment's (for an assertion).</summary>
    private bool CheckedAgreesWithSegments(int c)
    {
        var latest = c < _latestStamp.Length ? LatestEntries(c) : SegmentEntries(_latestBankSegment, c);
        var mine = _classes.Entries(CheckedBank, c);
        if (latest.Length != mine.Length)
        {
            return false;
        }

        for (var k = 0; k < mine.Length; k++)
        {
            if (!SameAnswer(mine[k], latest[k]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Grants covering more hours than this are taken to cover any walltime (the ticks would not fit a long).</summary>
    private const double CoverHoursLimit = long.MaxValue / (double)TimeSpan.TicksPerHour / 2;

    /// <summary>
    /// Whether the walk's step for a candidate of the rest would change the state the jobs after it are decided on: it
    /// would be placed, or would get a reservation (a reservation tried in vain changes only which partitions still give
    /// one, which the rest's decisions do not read). A what-if: nomination and the shadow computation change nothing.
    /// Only for a full pass with a blocked job seen and no preemption left, with backfill.
    /// </summary>
    private bool WouldChangeState(JobRecord job, long now, int depth)
    {
        if (job.State != JobState.Pending || job.SubmitTicks > now)
        {
            return false;
        }

        var end = now + job.WalltimeTicks;
        var admissible = 0UL;
        foreach (var p in _partitionOrder)
        {
            if ((job.PartitionFilter >= 0 && p != job.PartitionFilter) || (job.ShapeMask & (1UL << p)) == 0)
            {
                continue;
            }

            var nomination = Nominate(job, p, job.Shapes[p], end, now);
            if (nomination.Mode == NominationMode.Fit)
            {
                return true;
            }

            if (nomination.Mode == NominationMode.NoFit)
            {
                admissible |= 1UL << p;
            }
        }

        if (admissible == 0 || job.HeldPool >= 0)
        {
            return false;
        }

        var slots = HoldSlotsFor(job, admissible, depth, blockedSeen: true) & job.ShapeMask;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((slots & (1UL << p)) != 0 && _shadow.Find(job, p, job.Shapes[p], now, long.MaxValue).Nodes is not null)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// One job's step of the walk in a rest that changes no state (<see cref="DecideSettledRest"/>,
    /// <see cref="FindRestCandidates"/>): admission on every partition it may use, then the reason and estimate the walk
    /// gives a job that is neither placed, reserved for nor a preemptor. With <paramref name="checkFit"/>, false when the
    /// walk would instead try to place the job (a partition that admits it may fit it) or reserve for it (a slot of
    /// <paramref name="holdSlots"/> is open to it); nothing is decided then. What does not depend on the job's walltime
    /// and GPUs is worked out once per pass for its class, in <paramref name="bank"/> (<see cref="DecisionClasses"/>);
    /// the snapshot bank also reads the set-aside GPUs kept with it.
    /// </summary>
    private bool DecideRestJob(JobRecord job, long now, int bank, bool checkFit, ulong holdSlots, out PendingReason reason, out long estimate)
    {
        var c = job.DecisionClass;
        if (!_classes.IsCurrent(bank, c))
        {
            FillClass(bank, c, now);
        }

        return DecideRestJobFrom(job, now, _classes.Entries(bank, c), -1, checkFit, holdSlots, out reason, out estimate);
    }

    /// <summary>
    /// <see cref="DecideRestJob"/> from the class's
    /// <paramref name="entries"/>: those of the checked state (<paramref name="lazySegment"/> -1), or those kept with a
    /// segment of the lazily decided rest, whose set-aside GPUs it then reads.
    /// </summary>
    private bool DecideRestJobFrom(JobRecord job, long now, ReadOnlySpan<DecisionClasses.Entry> entries, int lazySegment, bool checkFit, ulong holdSlots, out PendingReason reason, out long estimate)
    {
        var admissionReason = PendingReason.NoAllocation;
        var admissible = 0UL;
        var unavailable = true;
        var end = now + job.WalltimeTicks;
        foreach (ref readonly var e in entries)
        {
            if (Refusal(e, job) is var refused && refused != PendingReason.New)
            {
                admissionReason = Worse(admissionReason, refused);
                continue;
            }

            if (checkFit && RoomFor(job, e.Partition, end))
            {
                reason = default;
                estimate = -1;
                return false;
            }

            admissible |= 1UL << e.Partition;
            unavailable &= !e.NodesUp;
        }

        if (admissible == 0)
        {
            reason = admissionReason;
            estimate = -1;
        }
        else if (job.HeldPool >= 0)
        {
            var held = _c.Pools[job.HeldPool];
            reason = held.StickyUntil > now ? PendingReason.WaitingForPreemption : PendingReason.Reserved;
            estimate = job.StoredEstimate >= 0 ? job.StoredEstimate
                : held.StickyUntil > now ? Math.Max(now, held.StickyUntil - ClaimSlack.Ticks) : Math.Max(now, held.UsableUntil);
        }
        else if (checkFit && (System.Numerics.BitOperations.PopCount(admissible) > 1 ? 0 : admissible & holdSlots) != 0)
        {
            // HoldSlotsFor(job, admissible, depth, blockedSeen: true): the walk would try to reserve for it.
            reason = default;
            estimate = -1;
            return false;
        }
        else
        {
            // No resource reason (ExplainResources) is needed here: the rest is decided only when no pool may take the
            // job's GPUs (RestIsSettled, or MayFit above), and then the walk's ExplainResources gives the plain reason too.
            var free = lazySegment >= 0 ? LazyFreeCapacity(admissible, lazySegment) : FreeCapacity(admissible);
            reason = unavailable ? PendingReason.NodesUnavailable : (free >= (long)(job.Gpus * Milli) ? PendingReason.BehindReservation : PendingReason.Resources);
            estimate = -1;
        }

        return true;
    }

    /// <summary>
    /// One job's step of an incremental pass (with backfill) taken from its class's entries in the checked bank, when it
    /// changes nothing but the job's reason: no partition it may use has a pool with room for it (<see cref="RoomFor"/>),
    /// so each gives admission's answer, as <see cref="Nominate"/> would; and no reservation is open to it. Then the walk's
    /// reason is written, <paramref name="nominated"/> is the count of partitions looked at, and
    /// <paramref name="waitsOn"/> the partitions on which the job waits (admitted, no room), which close behind it.
    /// False, with nothing written, when the walk must step the job itself (a pool may fit it, it holds a pool, or a
    /// reservation is open to it).
    /// </summary>
    private bool DecideIncrementalJob(JobRecord job, long now, int depth, bool blockedSeen, ulong closed, out int nominated, out ulong waitsOn)
    {
        nominated = 0;
        waitsOn = 0;
        if (job.HeldPool >= 0)
        {
            return false;
        }

        var c = job.DecisionClass;
        if (!_classes.IsCurrent(CheckedBank, c))
        {
            FillClass(CheckedBank, c, now);
        }

        var admissionReason = PendingReason.NoAllocation;
        var admissible = 0UL;
        var unavailable = true;
        var end = now + job.WalltimeTicks;
        foreach (ref readonly var e in _classes.Entries(CheckedBank, c))
        {
            if ((closed & (1UL << e.Partition)) != 0)
            {
                continue;
            }

            if (RoomFor(job, e.Partition, end))
            {
                return false;
            }

            nominated++;
            if (Refusal(e, job) is var refused && refused != PendingReason.New)
            {
                admissionReason = Worse(admissionReason, refused);
                continue;
            }

            admissible |= 1UL << e.Partition;
            unavailable &= !e.NodesUp;
        }

        if (admissible == 0)
        {
            Decide(job, admissionReason, -1);
            return true;
        }

        if (HoldSlotsFor(job, admissible, depth, blockedSeen) != 0)
        {
            return false;
        }

        // No pool of an admitting partition may take the job's GPUs: the walk's ExplainResources gives the plain reason.
        Decide(job, unavailable ? PendingReason.NodesUnavailable : (FreeCapacity(admissible) >= (long)(job.Gpus * Milli) ? PendingReason.BehindReservation : PendingReason.Resources), -1);
        waitsOn = admissible;
        return true;
    }

    /// <summary>
    /// Admission's answer for a job from its class's entry on one partition, as <see cref="Admission.Admit"/> gives it:
    /// <see cref="PendingReason.New"/> when admitted (New is never a refusal), else the refusal (quota; no active grant;
    /// or, as GrantTracker.Find, every active grant covering less than the job's GPU-hours).
    /// </summary>
    private static PendingReason Refusal(in DecisionClasses.Entry e, JobRecord job) =>
        e.Quota != PendingReason.New ? e.Quota
        : e.Grants == DecisionClasses.Entry.GrantState.NoneActive ? PendingReason.NoAllocation
        : e.Grants == DecisionClasses.Entry.GrantState.Active && !e.AnyGrantNaN && e.MaxCover < Admission.GpuHours(e.HeldMilli, job.WalltimeTicks) ? PendingReason.GrantExhausted
        : PendingReason.New;

    /// <summary>Whether a pending job's reason is still <see cref="PendingReason.New"/> (a lazily decided one is only while its submit time is to come).</summary>
    private bool IsNew(JobRecord job) => IsLazy(job) ? job.SubmitTicks > _reasons.LazyNow : job.StoredReason == PendingReason.New;

    /// <summary><see cref="FreeCapacity"/> as it was at the last lazily decided rest.</summary>
    private long LazyFreeCapacity(ulong partitions, int segment)
    {
        long free = 0;
        var kept = _reasons.LazyFree(segment);
        for (var p = 0; p < kept.Length; p++)
        {
            if ((partitions & (1UL << p)) != 0)
            {
                free += kept[p];
            }
        }

        return free;
    }

    /// <summary>
    /// Works out a class's entries in <paramref name="bank"/> for its pass: per partition it may use (in the walk's
    /// order), quota, grants and nodes up. Whether a pool may fit a job is not kept: it is read from the pools' room
    /// (<see cref="RoomFor"/>), which reservations change without changing admission.
    /// </summary>
    private void FillClass(int bank, int c, long now)
    {
        var project = _classes.Project(c);
        var shapes = _classes.Shapes(c);
        var mask = _classes.Mask(c);
        var entries = _classes.Entries(bank, c);
        var n = 0;
        foreach (var p in _partitionOrder)
        {
            if ((mask & (1UL << p)) == 0)
            {
                continue;
            }

            FillEntry(ref entries[n++], project, shapes[p], p, now);
        }

        if (n != entries.Length)
        {
            throw new InvalidOperationException($"decision class {c}: {n} partitions in order, {entries.Length} in its mask");
        }

        _classes.MarkCurrent(bank, c);
    }

    /// <summary>One entry of a class (see <see cref="FillClass"/>): quota, grants and nodes up on partition <paramref name="p"/>.</summary>
    private void FillEntry(ref DecisionClasses.Entry e, int project, in Shape shape, int p, long now)
    {
        e.Partition = (byte)p;
        e.HeldMilli = shape.HeldMilli;
        e.NodesUp = _c.UpNodes[p] >= shape.Nodes;
        e.Quota = _admission.Quota.Check(project, p, shape.HeldMilli) ?? PendingReason.New;
        e.AnyGrantNaN = false;
        e.MaxCover = double.NegativeInfinity;
        if (!Options.RequireAllocation)
        {
            e.Grants = DecisionClasses.Entry.GrantState.NotRequired;
        }
        else
        {
            e.MaxCover = _admission.Grants.Cover(project, p, now, out var anyActive, out e.AnyGrantNaN);
            e.Grants = anyActive ? DecisionClasses.Entry.GrantState.Active : DecisionClasses.Entry.GrantState.NoneActive;
        }
    }

    /// <summary>Whether two entries of a class give any job the same admission answer.</summary>
    private static bool SameAnswer(in DecisionClasses.Entry a, in DecisionClasses.Entry b) =>
        a.Quota == b.Quota && a.Grants == b.Grants && a.AnyGrantNaN == b.AnyGrantNaN && a.NodesUp == b.NodesUp
        && (a.MaxCover == b.MaxCover || (double.IsNaN(a.MaxCover) && double.IsNaN(b.MaxCover)));

    /// <summary>The most room any one pool of a kind offers (see <see cref="MayFit"/>'s signature test).</summary>
    private readonly record struct PoolRoom(int Whole, int Share, int FullFree);

    /// <summary>Per partition, the most room in its general pools and in its other pools, for <see cref="RoomFor"/>.</summary>
    private (PoolRoom General, PoolRoom Other)[] _restRoom = [];

    private static bool Fits(PoolRoom room, in Shape shape) => Fits(room.Whole, room.Share, room.FullFree, shape);

    /// <summary>The capacity signature's test: a pool (or the most room of several) whose most free GPUs on one node, most room on one GPU and free nodes are these may hold the shape.</summary>
    private static bool Fits(int whole, int share, int fullFree, in Shape shape) => shape.Kind switch
    {
        ShapeKind.Share => share >= shape.Amount,
        ShapeKind.SingleNode => whole >= shape.Amount,
        _ => fullFree >= shape.Nodes,
    };

    /// <summary>
    /// As <see cref="MayFit"/>, from the most room of the partition's pools (<see cref="RefreshRestRoom"/>): a general
    /// pool takes any job; other pools depend on the job (its end, its hold), and are looked at only when their most room
    /// could hold it.
    /// </summary>
    private bool RoomFor(JobRecord job, int p, long end)
    {
        ref readonly var room = ref _restRoom[p];
        ref readonly var shape = ref job.Shapes[p];
        return Fits(room.General, shape) || (Fits(room.Other, shape) && MayFit(shape, p, job, end));
    }

    /// <summary>Starts a checked rest: classes are filled anew in the checked bank, and the pools' room is taken as it is now (the rest changes none).</summary>
    private void BeginCheckedRest()
    {
        _classes.BeginPass(CheckedBank);
        RefreshRestRoom();
    }

    /// <summary>Per partition, the most room in its general pools and in its other pools, as the pools are now.</summary>
    private void RefreshRestRoom()
    {
        if (_restRoom.Length != Fleet.Partitions.Count)
        {
            _restRoom = new (PoolRoom, PoolRoom)[Fleet.Partitions.Count];
        }

        for (var p = 0; p < _restRoom.Length; p++)
        {
            PoolRoom general = new(int.MinValue, int.MinValue, int.MinValue), other = general;
            foreach (var id in _c.ActivePools[p])
            {
                var pool = _c.Pools[id];
                ref var room = ref pool.Kind == PoolKind.General ? ref general : ref other;
                room = new PoolRoom(Math.Max(room.Whole, pool.SigWhole), Math.Max(room.Share, pool.SigShare), Math.Max(room.FullFree, pool.FullFree));
            }

            _restRoom[p] = (general, other);
        }
    }

    /// <summary>Jobs a full pass's walk decided from their decision class, not nominated (<see cref="SchedulerOptions.ClassDecisions"/>); for tests.</summary>
    internal long ClassDecided { get; private set; }

    /// <summary>Jobs an incremental pass decided from their decision class (<see cref="DecideIncrementalJob"/>); for tests.</summary>
    internal long ClassDecidedIncremental { get; private set; }

    /// <summary>Full passes that looked for the candidates of their rest (<see cref="FindRestCandidates"/>); for tests.</summary>
    internal int CheckedRests { get; private set; }

    /// <summary>Full passes whose rest had a candidate that changed the state, after which the rest was cut into segments; for tests.</summary>
    internal int ContinuedRests { get; private set; }

    /// <summary>Segments that steps of candidates began in lazily decided rests (see <see cref="BeginRestSegment"/>); for tests.</summary>
    internal long RestSegments { get; private set; }

    /// <summary>Full passes that decided the rest of the queue unsorted (<see cref="DecideSettledRest"/>); for tests.</summary>
    internal int SettledRests { get; private set; }

    /// <summary>Projects whose jobs an incremental pass with backfill no longer starts (see <see cref="Walk"/>).</summary>
    private readonly ProjectSet _closedProjects = new();

    /// <summary>A job passed over on a closed partition that did not start elsewhere: its project closes, if it pays with an allocation.</summary>
    private void ClosePassedOver(JobRecord job)
    {
        if (job.State == JobState.Pending && _admission.Grants.HasAny(job.Project))
        {
            _closedProjects.Add(job.Project);
        }
    }

    /// <summary>
    /// Partitions a waiting job closed to the jobs behind it in the last pass: what a pass over arrivals alone starts
    /// from (see <see cref="Walk"/>).
    /// </summary>
    private ulong _blockedPartitions;

    /// <summary>Every partition's bit.</summary>
    private ulong AllPartitions => Fleet.Partitions.Count >= 64 ? ulong.MaxValue : (1UL << Fleet.Partitions.Count) - 1;

    private bool AnyWithinGuarantee(JobRecord job, ulong partitions)
    {
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((partitions & job.ShapeMask & (1UL << p)) != 0 && _admission.Quota.WithinGuarantee(job.Project, p, job.Shapes[p].HeldMilli))
            {
                return true;
            }
        }

        return false;
    }

    private static PendingReason Worse(PendingReason current, PendingReason candidate) =>
        current == PendingReason.NoAllocation ? candidate : current;

    /// <summary>The <see cref="ClusterState.FreeVersion"/> at which <see cref="_freeCapacity"/> was computed for <see cref="_freeCapacityPartitions"/>.</summary>
    private long _freeCapacityVersion = -1;
    private ulong _freeCapacityPartitions;
    private long _freeCapacity;

    /// <summary>
    /// GPUs (thousandths) set aside in the partitions' non-general pools. A full pass asks for every blocked job, most
    /// often with nothing changed since the job before: the last answer is kept until a pool changes.
    /// </summary>
    private long FreeCapacity(ulong partitions)
    {
        if (partitions == _freeCapacityPartitions && _c.FreeVersion == _freeCapacityVersion)
        {
            return _freeCapacity;
        }

        var free = ComputeFreeCapacity(partitions);
        _freeCapacityPartitions = partitions;
        _freeCapacityVersion = _c.FreeVersion;
        _freeCapacity = free;
        return free;
    }

    private long ComputeFreeCapacity(ulong partitions)
    {
        long free = 0;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((partitions & (1UL << p)) != 0)
            {
                foreach (var id in _c.ActivePools[p])
                {
                    // Only GPUs set aside (backfill holds, advance reservations) can be "held for a higher-priority job":
                    // free GPUs of the general pool that the job could not use are fragmentation, a question of resources.
                    if (_c.Pools[id].Kind != PoolKind.General)
                    {
                        free += _c.Pools[id].FreeMilli;
                    }
                }
            }
        }

        return free;
    }

    /// <summary>What a job can have on one partition in this pass (see <see cref="Nomination"/>).</summary>
    private enum NominationMode
    {
        /// <summary>Refused by admission (quota or grant): <see cref="Nomination.Reason"/> says which.</summary>
        Refused,
        /// <summary>Admitted, but no room now: a reservation or a preemption may follow.</summary>
        NoFit,
        /// <summary>Admitted and placed: <see cref="Nomination.Plan"/> and <see cref="Nomination.Allocation"/> are what to commit.</summary>
        Fit,
    }

    /// <summary>
    /// The outcome of admission and placement of one job on one partition, before anything is committed: the mode, the
    /// placement plan and the allocation to charge when it fits, the refusal otherwise, and whether the partition has
    /// enough nodes up for the job at all.
    /// </summary>
    private readonly record struct Nomination(int Partition, NominationMode Mode, Placer.Plan Plan, int Allocation, PendingReason? Reason, bool NodesUp);

    /// <summary>Admission, then placement, of a job on one partition. Changes nothing; the walk commits a fit.</summary>
    private Nomination Nominate(JobRecord job, int p, in Shape shape, long end, long now)
    {
        var mayFit = MayFit(shape, p, job, end);
        var admission = Admit(job, p, shape.HeldMilli, now);
        if (admission.Reason is { } refused)
        {
            return new Nomination(p, NominationMode.Refused, default, -1, refused, false);
        }

        var nodesUp = _c.UpNodes[p] >= shape.Nodes;
        if (!mayFit || !_placer.TryPlace(job, p, shape, end, out var plan))
        {
            return new Nomination(p, NominationMode.NoFit, default, -1, null, nodesUp);
        }

        // A gang holds whole nodes, which may be larger than the typical node its admission assumed: quota and grant
        // must cover what it will really hold.
        var held = _placer.HeldBy(shape, plan);
        if (held != shape.HeldMilli)
        {
            admission = Admit(job, p, held, now);
            if (admission.Reason is { } heldRefused)
            {
                return new Nomination(p, NominationMode.Refused, default, -1, heldRefused, nodesUp);
            }
        }

        return new Nomination(p, NominationMode.Fit, plan, admission.Allocation, null, nodesUp);
    }

    private AdmissionResult Admit(JobRecord job, int p, long heldMilli, long now) => _admission.Admit(job.Project, p, heldMilli, job.WalltimeTicks, now);
}
