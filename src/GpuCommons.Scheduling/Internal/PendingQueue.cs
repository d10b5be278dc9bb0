using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// The pending queue: the set of pending jobs, the order a pass walks them in, the jobs that arrived since the last
/// pass, and the jobs whose submit time is still to come. It owns these lists and the sort buffer; the engine computes
/// the sort keys (they depend on fair share and the policy) and asks the queue to sort by them.
/// </summary>
/// <remarks>
/// <see cref="Order"/> is the last full cycle's order plus the jobs queued since (where <see cref="SlotFor"/> puts
/// them); it may hold jobs that left the queue since, which a pass skips and <see cref="Compact"/> removes.
/// </remarks>
internal sealed class PendingQueue(SchedulerOptions options)
{
    /// <summary>Pending jobs in no particular order; <see cref="JobRecord.PendingSlot"/> is a job's index here.</summary>
    private readonly List<JobRecord> _jobs = [];

    /// <summary>Jobs queued with a submit time still to come, by that time.</summary>
    private readonly PriorityQueue<JobRecord, long> _submitsToCome = new();

    /// <summary>
    /// Pending jobs by submit time, then id: the tie-break of every order, kept so that a full pass sorts by its key
    /// alone (a stable radix sort of this list). Kept as columns (the job, and what a key and the order read of it), so
    /// that a full pass computes every key without touching the jobs themselves: on a queue of a million jobs the
    /// jobs' objects are what a pass would otherwise wait for. <see cref="JobRecord.SubmitIndex"/> is a job's entry.
    /// An entry stays when its job leaves the queue (a requeued job, which keeps its submit time, takes it back) and is
    /// dropped when a sort finds more than an eighth of the entries departed.
    /// </summary>
    private JobRecord[] _sub = [];
    private long[] _subSubmit = [];
    private long[] _subWall = [];
    private int[] _subUser = [];
    private byte[] _subClass = [];
    private double[] _subSize = [];
    private int[] _subDecision = [];
    private bool[] _subAlive = [];
    /// <summary>Set for the jobs a sort puts at the head (see <see cref="Sort"/>), and cleared by it.</summary>
    private bool[] _subHead = [];
    private int _subCount;
    private int _subDead;

    /// <summary>Whether a job was appended to the submit-order columns out of submit order since the last sort.</summary>
    private bool _bySubmitUnsorted;

    /// <summary>Counts the jobs queued (<see cref="JobRecord.QueuedSeq"/>); <see cref="LastSortSeq"/> is the count at the last sort.</summary>
    private long _queuedSeq;

    /// <summary>The count of jobs queued when the last full sort ran: a pending job with <see cref="JobRecord.QueuedSeq"/> up to it was keyed by it.</summary>
    public long LastSortSeq { get; private set; }

    // Sort buffers (keys and jobs, twice for the radix passes), kept between full passes.
    private ulong[] _keys = [];
    private ulong[] _keys2 = [];
    private JobRecord[] _sorted = [];
    private JobRecord[] _sorted2 = [];
    private long[] _sortedWall = [];
    private long[] _sortedWall2 = [];
    private readonly int[] _digitCounts = new int[8 * 256];

    /// <summary>The key pass's entries: the submit-order column each comes from (its key is in <see cref="_keys"/>).</summary>
    private int[] _subOf = [];

    // The lazy order (see Sort): the keys of the unsorted tail, in the tail's order, and the head selection's scratch.
    private ulong[] _tailKeys = [];

    /// <summary>
    /// The decision class of each entry of the unsorted tail. A sort writes every job's here first, in the key pass's
    /// order (submit order), and the head's selection moves the tail's to the front, in place (an entry never moves up).
    /// </summary>
    private int[] _tailDecision = [];
    private int _tailCount;

    /// <summary>At most the lowest key of the tail (as <see cref="Descending"/> maps it).</summary>
    private ulong _tailLowKey;

    /// <summary>At least the highest key of the tail.</summary>
    private ulong _tailHighKey;

    /// <summary>At least the latest entry of the tail in submit order.</summary>
    private JobRecord? _tailLatest;
    private int[] _headPicked = [];
    private bool[] _inHead = [];

    /// <summary>The order a pass walks (see the remarks).</summary>
    public List<JobRecord> Order { get; } = [];

    /// <summary>Walltime of each job in <see cref="Order"/>, kept beside it so that a pass can skip jobs without touching them.</summary>
    public List<long> OrderWall { get; } = [];

    /// <summary>Jobs queued since the last pass.</summary>
    public List<JobRecord> Arrivals { get; } = [];

    /// <summary>
    /// How far <see cref="Order"/> is in its exact order. Beyond it, <see cref="UnsortedCount"/> entries follow in submit
    /// order (the tail the last full pass did not need sorted), then the jobs queued since. <see cref="int.MaxValue"/>
    /// when the whole order is sorted.
    /// </summary>
    public int SortedUntil { get; private set; } = int.MaxValue;

    /// <summary>Entries of <see cref="Order"/> after <see cref="SortedUntil"/> still to be sorted (0: none).</summary>
    public int UnsortedCount => _tailCount;

    /// <summary>
    /// The sort keys of the unsorted tail, entry by entry (<see cref="Order"/> from <see cref="SortedUntil"/>): the tail's
    /// order is by key, then by place in the tail (<see cref="SortTail"/> is stable).
    /// </summary>
    public ReadOnlySpan<ulong> TailKeys => _tailKeys.AsSpan(0, _tailCount);

    /// <summary>The decision class of each entry of the unsorted tail, as its job was queued: read without touching the jobs.</summary>
    public ReadOnlySpan<int> TailDecisions => _tailDecision.AsSpan(0, _tailCount);

    /// <summary>Entries at the head of <see cref="Order"/> that the last full pass put first (jobs waiting for their preemptions).</summary>
    public int OrderHead { get; private set; }

    /// <summary>
    /// At least the latest submit time of any pending job (never lowered). While it is not after now, no pending job is
    /// waiting for its submit time.
    /// </summary>
    public long SubmitBound { get; private set; } = long.MinValue;

    /// <summary>At most the shortest walltime of a pending job (exact after a sort).</summary>
    public long MinWalltime { get; private set; } = long.MaxValue;

    public int Count => _jobs.Count;

    public JobRecord this[int slot] => _jobs[slot];

    /// <summary>Whether <see cref="Order"/> holds enough departed jobs to be worth compacting between full passes.</summary>
    public bool NeedsCompaction => Order.Count > (2 * _jobs.Count) + 1024;

    public void Add(JobRecord job, long now)
    {
        MinWalltime = Math.Min(MinWalltime, job.WalltimeTicks);
        SubmitBound = Math.Max(SubmitBound, job.SubmitTicks);
        job.PendingSlot = _jobs.Count;
        job.QueuedSeq = ++_queuedSeq;
        _jobs.Add(job);
        if (job.SubmitTicks > now)
        {
            _submitsToCome.Enqueue(job, job.SubmitTicks);
        }

        if (job.SubmitIndex >= 0)
        {
            // Requeued while its entry was kept.
            _subAlive[job.SubmitIndex] = true;
            _subDead--;
        }
        else
        {
            // Jobs mostly arrive in submit order; one that does not is appended too, and the next sort puts the list
            // back in order once (an insertion in the middle would move the whole list for each such job).
            _bySubmitUnsorted |= _subCount > 0 && !FifoBefore(_sub[_subCount - 1], job);
            AppendEntry(job);
        }

        var slot = SlotFor(job);
        Order.Insert(slot, job);
        OrderWall.Insert(slot, job.WalltimeTicks);
        Arrivals.Add(job);
    }

    public void Remove(JobRecord job)
    {
        _subAlive[job.SubmitIndex] = false;
        _subDead++;
        var slot = job.PendingSlot;
        var last = _jobs[^1];
        _jobs[slot] = last;
        last.PendingSlot = slot;
        _jobs.RemoveAt(_jobs.Count - 1);
        job.PendingSlot = -1;
    }

    private void AppendEntry(JobRecord job)
    {
        if (_subCount == _sub.Length && _subDead > 0 && !_bySubmitUnsorted)
        {
            // Full: drop departed entries before growing the columns.
            RebuildSubmitOrder();
        }

        if (_subCount == _sub.Length)
        {
            var size = Math.Max(1024, _sub.Length + (_sub.Length / 2));
            Array.Resize(ref _sub, size);
            Array.Resize(ref _subSubmit, size);
            Array.Resize(ref _subWall, size);
            Array.Resize(ref _subUser, size);
            Array.Resize(ref _subClass, size);
            Array.Resize(ref _subSize, size);
            Array.Resize(ref _subDecision, size);
            Array.Resize(ref _subAlive, size);
            Array.Resize(ref _subHead, size);
        }

        var i = _subCount++;
        _sub[i] = job;
        _subSubmit[i] = job.SubmitTicks;
        _subWall[i] = job.WalltimeTicks;
        _subUser[i] = job.User;
        _subClass[i] = (byte)job.PriorityClass;
        _subSize[i] = job.SizeTerm;
        _subDecision[i] = job.DecisionClass;
        _subAlive[i] = true;
        _subHead[i] = false;
        job.SubmitIndex = i;
    }

    /// <summary>
    /// Rewrites the submit-order columns without departed entries (in place) and, when jobs were appended out of order,
    /// in submit order again; each entry's job learns its new index.
    /// </summary>
    private void RebuildSubmitOrder()
    {
        var w = 0;
        for (var i = 0; i < _subCount; i++)
        {
            var j = _sub[i];
            if (!_subAlive[i])
            {
                j.SubmitIndex = -1;
                continue;
            }

            if (w != i)
            {
                _sub[w] = j;
                _subSubmit[w] = _subSubmit[i];
                _subWall[w] = _subWall[i];
                _subUser[w] = _subUser[i];
                _subClass[w] = _subClass[i];
                _subSize[w] = _subSize[i];
                _subDecision[w] = _subDecision[i];
                _subAlive[w] = true;
                j.SubmitIndex = w;
            }

            w++;
        }

        Array.Clear(_sub, w, _subCount - w);
        _subCount = w;
        _subDead = 0;
        if (_bySubmitUnsorted)
        {
            // Rare (a job queued with an earlier submit time than the last): re-append every entry in submit order.
            // (A job's size term in the columns is the one on the job: both are written when it is worked out.)
            var kept = _sub.AsSpan(0, w).ToArray();
            Array.Sort(kept, static (a, b) => FifoBefore(a, b) ? -1 : FifoBefore(b, a) ? 1 : 0);
            _subCount = 0;
            foreach (var j in kept)
            {
                j.SubmitIndex = -1;
                AppendEntry(j);
            }

            _bySubmitUnsorted = false;
        }
    }

    /// <summary>The multifactor size term kept for a pending job (NaN until a sort works it out).</summary>
    public double SizeTermOf(JobRecord job) => _subSize[job.SubmitIndex];

    /// <summary>Drops the jobs whose submit time has come; true when there were any (they are new to the queue wherever they sort).</summary>
    public bool ReleaseDueSubmits(long now)
    {
        var any = false;
        while (_submitsToCome.TryPeek(out _, out var due) && due <= now)
        {
            _submitsToCome.Dequeue();
            any = true;
        }

        return any;
    }

    /// <summary>The earliest submit time after <paramref name="now"/> of a pending job, or <see cref="long.MaxValue"/>.</summary>
    public long NextSubmitAfter(long now)
    {
        var next = long.MaxValue;
        if (SubmitBound <= now)
        {
            return next;
        }

        foreach (var j in _jobs)
        {
            if (j.SubmitTicks > now)
            {
                next = Math.Min(next, j.SubmitTicks);
            }
        }

        return next;
    }

    /// <summary>
    /// Where a job that joins the queue goes in <see cref="Order"/> until the next full pass sorts it. FIFO's order does
    /// not change with time: the job goes where that sort will put it (by submit time, then id), so that a pass in between
    /// walks the order a full cycle would. Other orders go last here; the engine then moves a multifactor job to its place
    /// (<see cref="PlaceByKey"/>) or marks the order for a sort.
    /// </summary>
    private int SlotFor(JobRecord job)
    {
        if (options.Ordering != OrderingPolicy.Fifo || Order.Count <= OrderHead || !FifoBefore(job, Order[^1]))
        {
            return Order.Count;
        }

        return LowerBound(Order, OrderHead, job);
    }

    /// <summary>
    /// Moves <paramref name="job"/>, just added (last in <see cref="Order"/>), to the place a sort by the kept keys would
    /// give it: by <paramref name="key"/> (see <see cref="Descending"/>), then submit order, after the jobs a sort puts
    /// first. <paramref name="keyOf"/> gives a kept entry's key (entries that left the queue keep theirs). Into the sorted
    /// head by binary search; behind it, into the unsorted tail with its key and decision class. Returns false, leaving it
    /// last, where the order is not one a sort made plus jobs so placed (the caller then sorts before it walks the order),
    /// or where its place in the tail would not keep the tail in submit order.
    /// </summary>
    public bool PlaceByKey(JobRecord job, ulong key, Func<JobRecord, ulong> keyOf)
    {
        var n = Order.Count - 1;
        if (n < 0 || !ReferenceEquals(Order[n], job))
        {
            return false;
        }

        if (_tailCount == 0)
        {
            if (SortedUntil != int.MaxValue)
            {
                return false;
            }

            var at = PlaceInHead(job, key, n, keyOf);
            if (!MayMove(n - at))
            {
                return false;
            }

            MoveLastTo(at, n);
            return true;
        }

        var head = SortedUntil;
        if (head + _tailCount != n)
        {
            return false;
        }

        var last = head > OrderHead ? Order[head - 1] : null;
        var lastKey = last is null ? 0 : keyOf(last);
        if (last is null || GoesBefore(last, lastKey, job, key))
        {
            // Behind the head: it joins the tail, whose order is by key, then place (submit order among equal keys).
            if (!FifoBefore(_tailLatest!, job))
            {
                return false;
            }

            AppendToTail(job, key);
            return true;
        }

        // Into the head. Its last entry goes before every entry of the tail; where its key is below every key of the tail,
        // its place in the tail does not matter (no tie to break), and it moves there: the head keeps its length, and
        // only the head moves.
        var slot = PlaceInHead(job, key, head, keyOf);
        if (lastKey < _tailLowKey)
        {
            var order = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Order);
            var walls = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(OrderWall);
            var wall = walls[n];
            order[n] = last;
            walls[n] = walls[head - 1];
            order[slot..(head - 1)].CopyTo(order[(slot + 1)..head]);
            walls[slot..(head - 1)].CopyTo(walls[(slot + 1)..head]);
            order[slot] = job;
            walls[slot] = wall;
            AppendToTail(last, lastKey);
            return true;
        }

        if (!MayMove(n - slot))
        {
            return false;
        }

        MoveLastTo(slot, n);
        SortedUntil++;
        return true;
    }

    /// <summary>
    /// Whether placing a job may move <paramref name="entries"/> entries of <see cref="Order"/>: at most
    /// <see cref="MaxPlacementMove"/> at once, and <see cref="MoveBudgetPerEntry"/> per entry of the last sort in all until
    /// the next one (moving an entry costs some 40 times less than sorting it; beyond that, sorting again is cheaper).
    /// </summary>
    private bool MayMove(int entries)
    {
        if (entries > MaxPlacementMove || _moved + entries > _moveBudget)
        {
            return false;
        }

        _moved += entries;
        return true;
    }

    /// <summary>The most entries of <see cref="Order"/> that placing one job may move (2 MB of references).</summary>
    private const int MaxPlacementMove = 262_144;

    /// <summary>Entries placing jobs may move between two sorts, per entry of the last sort (see <see cref="MayMove"/>).</summary>
    private const int MoveBudgetPerEntry = 16;

    /// <summary>Entries moved by placing jobs since the last sort, and how many may be.</summary>
    private long _moved;
    private long _moveBudget;

    /// <summary>Where <paramref name="job"/> goes among the sorted entries from <see cref="OrderHead"/> to <paramref name="end"/>.</summary>
    private int PlaceInHead(JobRecord job, ulong key, int end, Func<JobRecord, ulong> keyOf)
    {
        int lo = OrderHead, hi = end;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (GoesBefore(Order[mid], keyOf(Order[mid]), job, key))
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

    /// <summary>Moves the entry at <paramref name="n"/> (the last) to <paramref name="at"/>.</summary>
    private void MoveLastTo(int at, int n)
    {
        if (at == n)
        {
            return;
        }

        var job = Order[n];
        var wall = OrderWall[n];
        Order.RemoveAt(n);
        OrderWall.RemoveAt(n);
        Order.Insert(at, job);
        OrderWall.Insert(at, wall);
    }

    /// <summary>Adds the key and decision class of the entry just put last in <see cref="Order"/> to the tail.</summary>
    private void AppendToTail(JobRecord job, ulong key)
    {
        if (_tailKeys.Length == _tailCount)
        {
            Array.Resize(ref _tailKeys, Math.Max(1024, _tailCount * 2));
        }

        if (_tailDecision.Length == _tailCount)
        {
            Array.Resize(ref _tailDecision, Math.Max(1024, _tailCount * 2));
        }

        _tailKeys[_tailCount] = key;
        _tailDecision[_tailCount++] = job.DecisionClass;
        _tailLowKey = Math.Min(_tailLowKey, key);
        _tailHighKey = Math.Max(_tailHighKey, key);
        if (FifoBefore(_tailLatest!, job))
        {
            _tailLatest = job;
        }
    }

    /// <summary>Whether entry <paramref name="a"/> (key <paramref name="ka"/>) goes before <paramref name="b"/> (key <paramref name="kb"/>) in a sort.</summary>
    private static bool GoesBefore(JobRecord a, ulong ka, JobRecord b, ulong kb) => ka < kb || (ka == kb && FifoBefore(a, b));

    /// <summary>The first index at or after <paramref name="from"/> whose job does not go before <paramref name="job"/> in submit order.</summary>
    private static int LowerBound(List<JobRecord> list, int from, JobRecord job)
    {
        int lo = from, hi = list.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (FifoBefore(list[mid], job))
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

    public static bool FifoBefore(JobRecord a, JobRecord b) => a.SubmitTicks != b.SubmitTicks ? a.SubmitTicks < b.SubmitTicks : a.Id < b.Id;

    /// <summary>Removes departed jobs (and, after requeues, duplicates) from <see cref="Order"/>.</summary>
    public void Compact()
    {
        // After a full pass Order has no duplicates; later requeues append, so an incremental compaction dedupes.
        HashSet<long>? seen = NeedsCompaction ? [] : null;
        var w = 0;
        var head = 0;
        var sorted = SortedUntil;
        var tail = _tailCount;
        int keptSorted = 0, keptTail = 0;
        for (var i = 0; i < Order.Count; i++)
        {
            var j = Order[i];
            if (j.State == JobState.Pending && (seen is null || seen.Add(j.Id)))
            {
                if (i < OrderHead)
                {
                    head++;
                }

                if (tail > 0)
                {
                    // The unsorted tail keeps its keys beside it (in place: keptTail never passes i - sorted).
                    if (i < sorted)
                    {
                        keptSorted++;
                    }
                    else if (i < sorted + tail)
                    {
                        _tailDecision[keptTail] = _tailDecision[i - sorted];
                        _tailKeys[keptTail++] = _tailKeys[i - sorted];
                    }
                }

                OrderWall[w] = j.WalltimeTicks;
                Order[w++] = j;
            }
        }

        Order.RemoveRange(w, Order.Count - w);
        OrderWall.RemoveRange(w, OrderWall.Count - w);
        OrderHead = head;
        if (tail > 0)
        {
            SortedUntil = keptTail > 0 ? keptSorted : int.MaxValue;
            _tailCount = keptTail;
        }
    }

    /// <summary>
    /// Sorts the queue into <see cref="Order"/>: <paramref name="keyOf"/> gives each pending job its sort key (highest
    /// first), <paramref name="heads"/> the jobs that go before all others; ties go by submit time, then id.
    /// </summary>
    /// <remarks>
    /// The keys are read in submit order (the submit-order columns, <see cref="_sub"/>), then sorted by a stable
    /// least-significant-digit radix sort on <see cref="Descending"/>: equal keys keep submit order, which is the
    /// tie-break. A byte in which all keys agree costs no pass (under FIFO every key is 0 and the sort is one read of
    /// the keys).
    /// </remarks>
    public void Sort<TKeys>(ref TKeys keyOf, IEnumerable<JobRecord> heads)
        where TKeys : struct, ISortKeys
    {
        var count = _jobs.Count;
        if (_keys.Length < count)
        {
            GrowSortBuffers(Math.Max(count + (count / 4), _keys.Length + (_keys.Length / 4)));
            _tailDecision = new int[_keys.Length];
        }

        if (_bySubmitUnsorted || _subDead > _subCount / 8)
        {
            RebuildSubmitOrder();
        }

        foreach (var j in heads)
        {
            if (j.PendingSlot >= 0)
            {
                _subHead[j.SubmitIndex] = true;
            }
        }

        var headCount = 0;

        var minWall = long.MaxValue;
        var n = 0;
        var low = ulong.MaxValue;
        var high = 0UL;
        var columnar = keyOf.Columnar;
        for (var i = 0; i < _subCount; i++)
        {
            if (!_subAlive[i])
            {
                continue;
            }

            var key = Descending(columnar ? keyOf.KeyOf(_subUser[i], _subSubmit[i], (Core.Jobs.PriorityClass)_subClass[i], ref _subSize[i], _sub[i]) : keyOf.KeyOf(_sub[i]));
            if (_subHead[i])
            {
                // A job that made others stop for it goes first: otherwise a requeued victim that keeps its (earlier)
                // place takes the GPUs or quota back, and the preemption repeats.
                _subHead[i] = false;
                key = HeadKey;
            }

            headCount += key == HeadKey ? 1 : 0;
            low = Math.Min(low, key);
            high = Math.Max(high, key);
            _keys[n] = key;
            _subOf[n++] = i;
        }

        if (n != count)
        {
            throw new InvalidOperationException($"the submit order lists {n} pending jobs, the queue {count}");
        }

        LastSortSeq = _queuedSeq;
        _moved = 0;
        _moveBudget = MoveBudgetPerEntry * (n + 1024L);
        Order.Clear();
        OrderWall.Clear();
        OrderHead = headCount;
        _tailCount = 0;
        SortedUntil = int.MaxValue;
        var head = options.SortedHead;
        if (options.LazyOrder && options.Ordering != OrderingPolicy.Fifo && head > 0 && n > 2 * head && headCount < head)
        {
            SortHeadOnly(n, head, low, high);
            return;
        }

        for (var k = 0; k < n; k++)
        {
            var i = _subOf[k];
            var wall = _subWall[i];
            minWall = Math.Min(minWall, wall);
            _sortedWall[k] = wall;
            _sorted[k] = _sub[i];
        }

        MinWalltime = minWall;
        CountDigits(n);
        RadixSort(n);
        System.Runtime.InteropServices.CollectionsMarshal.SetCount(Order, n);
        System.Runtime.InteropServices.CollectionsMarshal.SetCount(OrderWall, n);
        _sorted.AsSpan(0, n).CopyTo(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Order));
        _sortedWall.AsSpan(0, n).CopyTo(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(OrderWall));
        Array.Clear(_sorted, 0, n);
    }

    private void CountDigits(int n)
    {
        var counts = _digitCounts;
        Array.Clear(counts);
        for (var i = 0; i < n; i++)
        {
            var key = _keys[i];
            for (var d = 0; d < 8; d++)
            {
                counts[(d << 8) | (int)((key >> (d * 8)) & 0xFF)]++;
            }
        }
    }

    /// <summary>Replaces the sort buffers (keys and jobs, twice for the radix passes) with empty ones of <paramref name="size"/> entries.</summary>
    private void GrowSortBuffers(int size)
    {
        _keys = new ulong[size];
        _keys2 = new ulong[size];
        _subOf = new int[size];
        _sorted = new JobRecord[size];
        _sorted2 = new JobRecord[size];
        _sortedWall = new long[size];
        _sortedWall2 = new long[size];
    }

    /// <summary>The keys <see cref="SelectHead"/> reads: the key pass's, or the tail's.</summary>
    private ulong[] _selectKeys = [];

    /// <summary>
    /// Selects the first <paramref name="head"/> of the <paramref name="n"/> entries of <see cref="_selectKeys"/> by
    /// (key, index), and sorts them into <see cref="_headPicked"/>; returns how many. <paramref name="low"/> and
    /// <paramref name="high"/> bound the keys (at most the lowest, at least the highest).
    /// </summary>
    /// <remarks>
    /// A radix select: the highest 12 bits in which the keys differ split them into 4,096 buckets; the buckets below the
    /// one where the count reaches <paramref name="head"/> are in, those above out, and the entries of that one bucket are
    /// split again by the highest bits in which they still differ, until the entries left are all in or all of one key
    /// (then the lowest indices are in). Two reads of the keys and the short lists of the split buckets, instead of a
    /// heap step for each entry that beats the worst kept so far.
    /// </remarks>
    private int SelectHead(int n, int head, ulong low, ulong high)
    {
        if (_headPicked.Length < head)
        {
            _headPicked = new int[head];
        }

        var keys = _selectKeys;
        var picked = _headPicked;
        var size = 0;
        if (n <= head)
        {
            for (var i = 0; i < n; i++)
            {
                picked[size++] = i;
            }
        }
        else
        {
            // The entries still undecided: at first all of them (null: 0..n), then one bucket's. The first split reads the
            // caller's bounds of the keys (every key between them shares the bits above their highest difference).
            var min = low;
            var max = high;

            if (_splitBuffer.Length < n)
            {
                _splitBuffer = new int[Math.Max(n, _splitBuffer.Length * 2)];
            }

            int[]? undecided = null;
            var count = n;
            var wanted = head;
            Span<int> buckets = stackalloc int[1 << SelectDigitBits];
            while (wanted > 0 && min != max)
            {
                // The digit: the highest bits in which the keys left still differ.
                var shift = Math.Max(0, 64 - System.Numerics.BitOperations.LeadingZeroCount(min ^ max) - SelectDigitBits);
                buckets.Clear();
                for (var k = 0; k < count; k++)
                {
                    buckets[(int)((keys[undecided is null ? k : undecided[k]] >> shift) & SelectDigitMask)]++;
                }

                var split = 0;
                var before = 0;
                while (before + buckets[split] < wanted)
                {
                    before += buckets[split++];
                }

                // Below the split bucket: in. The split bucket: still undecided, in index order (kept in place).
                var w = 0;
                min = ulong.MaxValue;
                max = 0;
                for (var k = 0; k < count; k++)
                {
                    var i = undecided is null ? k : undecided[k];
                    var digit = (int)((keys[i] >> shift) & SelectDigitMask);
                    if (digit < split)
                    {
                        picked[size++] = i;
                    }
                    else if (digit == split)
                    {
                        _splitBuffer[w++] = i;
                        min = Math.Min(min, keys[i]);
                        max = Math.Max(max, keys[i]);
                    }
                }

                undecided = _splitBuffer;
                count = w;
                wanted -= before;
                if (wanted == count)
                {
                    break;
                }
            }

            // The undecided entries left are all wanted, or share one key: the lowest indices go first.
            for (var k = 0; k < count && wanted > 0; k++, wanted--)
            {
                picked[size++] = undecided is null ? k : undecided[k];
            }
        }

        // In order: by key with the primitive sort, then each run of equal keys by index.
        if (_headKeys.Length < size)
        {
            _headKeys = new ulong[_headPicked.Length];
        }

        for (var k = 0; k < size; k++)
        {
            _headKeys[k] = keys[picked[k]];
        }

        Array.Sort(_headKeys, picked, 0, size);
        KeyRuns.OrderPlacesWithinRuns(_headKeys.AsSpan(0, size), picked.AsSpan(0, size));

        return size;
    }

    /// <summary>For tests: the indices of the first <paramref name="head"/> of <paramref name="keys"/> by (key, index), in that order (with bounds of the keys looser by the amounts given).</summary>
    internal int[] SelectHeadForTests(ulong[] keys, int head, ulong lowerBy = 0, ulong raiseBy = 0)
    {
        _selectKeys = keys;
        var low = keys.Length == 0 ? 0 : keys.Min();
        var high = keys.Length == 0 ? 0 : keys.Max();
        var size = SelectHead(keys.Length, head, low - Math.Min(low, lowerBy), high + Math.Min(ulong.MaxValue - high, raiseBy));
        _selectKeys = [];
        return _headPicked.AsSpan(0, size).ToArray();
    }

    /// <summary>The bits of a key that one split of <see cref="SelectHead"/> reads (its buckets: 4,096 counts, 16 KB).</summary>
    private const int SelectDigitBits = 12;
    private const ulong SelectDigitMask = (1UL << SelectDigitBits) - 1;

    /// <summary>The entries of the bucket a <see cref="SelectHead"/> split, in index order.</summary>
    private int[] _splitBuffer = [];

    /// <summary>The keys of the selected head, for sorting it (see <see cref="SelectHead"/>).</summary>
    private ulong[] _headKeys = [];

    /// <summary>
    /// The lazy order: the first <paramref name="head"/> jobs of the exact order (selected by radix, then
    /// sorted), followed by every other job in submit order with its key kept, for <see cref="SortTail"/> to sort if a
    /// pass needs the order beyond the head. Sorting the head and then the tail gives exactly the full sort's order: every
    /// head job goes before every tail job by (key, submit order), the full sort's own order.
    /// </summary>
    private void SortHeadOnly(int n, int head, ulong low, ulong high)
    {
        if (_inHead.Length < n)
        {
            _inHead = new bool[Math.Max(n, _inHead.Length * 2)];
        }

        _selectKeys = _keys;
        var size = SelectHead(n, head, low, high);
        System.Runtime.InteropServices.CollectionsMarshal.SetCount(Order, n);
        System.Runtime.InteropServices.CollectionsMarshal.SetCount(OrderWall, n);
        var order = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Order);
        var walls = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(OrderWall);
        if (_tailKeys.Length < n - size)
        {
            _tailKeys = new ulong[Math.Max(n - size, _tailKeys.Length * 2)];
        }

        var t = ArrangeFromColumns(order, walls, n, size);

        // The tail is in submit order: its last entry is its latest.
        _tailLatest = t > 0 ? order[size + t - 1] : null;
        SortedUntil = size;
        _tailCount = t;
    }

    /// <summary>
    /// Writes the <paramref name="n"/> entries of the key pass (<see cref="_subOf"/>, their keys in <see cref="_keys"/>) to
    /// <paramref name="order"/> and <paramref name="walls"/>: first the <paramref name="size"/> selected ones
    /// (<see cref="_headPicked"/>, in its order), then the others in submit order, whose keys and decision classes go to the
    /// tail's columns. Reads the jobs, walltimes and decision classes from the submit-order columns; sets
    /// <see cref="MinWalltime"/> and the bounds of the tail's keys. Returns the count of the others.
    /// </summary>
    private int ArrangeFromColumns(Span<JobRecord> order, Span<long> walls, int n, int size)
    {
        var heap = _headPicked;
        var minWall = long.MaxValue;
        for (var k = 0; k < size; k++)
        {
            var j = heap[k];
            _inHead[j] = true;
            var i = _subOf[j];
            var wall = _subWall[i];
            minWall = Math.Min(minWall, wall);
            order[k] = _sub[i];
            walls[k] = wall;
        }

        var t = 0;
        var low = ulong.MaxValue;
        var high = 0UL;
        for (var j = 0; j < n; j++)
        {
            if (_inHead[j])
            {
                _inHead[j] = false;
                continue;
            }

            var i = _subOf[j];
            var wall = _subWall[i];
            minWall = Math.Min(minWall, wall);
            order[size + t] = _sub[i];
            walls[size + t] = wall;
            _tailDecision[t] = _subDecision[i];
            var key = _keys[j];
            low = Math.Min(low, key);
            high = Math.Max(high, key);
            _tailKeys[t++] = key;
        }

        MinWalltime = minWall;
        _tailLowKey = low;
        _tailHighKey = high;
        return t;
    }

    /// <summary>
    /// Moves the first <paramref name="count"/> entries of the unsorted tail (in the order <see cref="SortTail"/> would give
    /// them) to the end of the sorted head, and leaves the others as the tail, in their order, with their keys: for a pass
    /// that walks a little beyond the head (an incremental pass looks at a bounded number of jobs), and keeps the tail for
    /// the jobs queued later (<see cref="PlaceByKey"/>).
    /// </summary>
    /// <remarks>
    /// The selection reads the tail's keys. The others then move in blocks, in place: between two selected entries, every
    /// entry of <see cref="Order"/> moves right by as many places as there are selected entries after it (none after the
    /// last one), and in the tail's own columns left by as many as there are before it. A block moves as one copy, so a
    /// reference is not stored one entry at a time.
    /// </remarks>
    public void ExtendHead(int count)
    {
        var t = _tailCount;
        if (count >= t)
        {
            SortTail();
            return;
        }

        _selectKeys = _tailKeys;
        var size = SelectHead(t, count, _tailLowKey, _tailHighKey);
        var picked = _headPicked.AsSpan(0, size);
        if (_extendJobs.Length < size)
        {
            _extendJobs = new JobRecord[picked.Length];
            _extendWalls = new long[picked.Length];
            _extendAt = new int[picked.Length];
        }

        var from = SortedUntil;
        var tail = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(Order).Slice(from, t);
        var tailWalls = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(OrderWall).Slice(from, t);
        for (var k = 0; k < size; k++)
        {
            _extendJobs[k] = tail[picked[k]];
            _extendWalls[k] = tailWalls[picked[k]];
        }

        var at = _extendAt.AsSpan(0, size);
        picked.CopyTo(at);
        at.Sort();

        // Order: from the last selected entry back, each block right by the selected entries after it.
        var end = t;
        for (var k = size - 1; k >= 0; k--)
        {
            var block = end - at[k] - 1;
            var shift = size - 1 - k;
            if (shift > 0 && block > 0)
            {
                tail.Slice(at[k] + 1, block).CopyTo(tail[(at[k] + 1 + shift)..]);
                tailWalls.Slice(at[k] + 1, block).CopyTo(tailWalls[(at[k] + 1 + shift)..]);
            }

            end = at[k];
        }

        tail[..end].CopyTo(tail[size..]);
        tailWalls[..end].CopyTo(tailWalls[size..]);
        _extendJobs.AsSpan(0, size).CopyTo(tail);
        _extendWalls.AsSpan(0, size).CopyTo(tailWalls);
        Array.Clear(_extendJobs, 0, size);

        // The tail's keys and decision classes: each block left by the selected entries before it.
        var w = at[0];
        for (var k = 0; k < size; k++)
        {
            var first = at[k] + 1;
            var block = (k + 1 < size ? at[k + 1] : t) - first;
            _tailKeys.AsSpan(first, block).CopyTo(_tailKeys.AsSpan(w));
            _tailDecision.AsSpan(first, block).CopyTo(_tailDecision.AsSpan(w));
            w += block;
        }

        // (The tail's keys only narrow: the kept bounds stay bounds.)
        _tailCount = t - size;
        SortedUntil = from + size;
    }

    /// <summary>The entries <see cref="ExtendHead"/> moves to the head (in their order, then their places in the tail).</summary>
    private JobRecord[] _extendJobs = [];
    private long[] _extendWalls = [];
    private int[] _extendAt = [];

    /// <summary>
    /// Sorts the tail that the last full pass left unsorted (see <see cref="SortHeadOnly"/>), in place in
    /// <see cref="Order"/>: afterwards <see cref="Order"/> is what the full sort would have made of it. Entries that left
    /// the queue since keep their places, as they would have in the full sort's order.
    /// </summary>
    public void SortTail()
    {
        if (_tailCount == 0)
        {
            return;
        }

        var from = SortedUntil;
        var t = _tailCount;
        if (_keys.Length < t)
        {
            // Jobs queued since the sort joined the tail.
            GrowSortBuffers(t + (t / 4));
        }

        for (var i = 0; i < t; i++)
        {
            _sorted[i] = Order[from + i];
            _sortedWall[i] = OrderWall[from + i];
            _keys[i] = _tailKeys[i];
        }

        CountDigits(t);
        RadixSort(t);
        for (var i = 0; i < t; i++)
        {
            Order[from + i] = _sorted[i];
            OrderWall[from + i] = _sortedWall[i];
            _sorted[i] = null!;
        }

        _tailCount = 0;
        SortedUntil = int.MaxValue;
    }

    /// <summary>Stable LSD radix sort of the first <paramref name="n"/> keys (and their jobs), a byte a pass, with the digit counts already taken.</summary>
    private void RadixSort(int n)
    {
        Span<int> next = stackalloc int[256];
        for (var d = 0; d < 8; d++)
        {
            var counts = _digitCounts.AsSpan(d << 8, 256);
            var shift = d * 8;
            if (n == 0 || counts[(int)((_keys[0] >> shift) & 0xFF)] == n)
            {
                // Every key has the same byte here: the pass would not move anything.
                continue;
            }

            var sum = 0;
            for (var b = 0; b < 256; b++)
            {
                next[b] = sum;
                sum += counts[b];
            }

            var keys = _keys;
            var jobs = _sorted;
            var walls = _sortedWall;
            var keysOut = _keys2;
            var jobsOut = _sorted2;
            var wallsOut = _sortedWall2;
            for (var i = 0; i < n; i++)
            {
                var k = keys[i];
                var at = next[(int)((k >> shift) & 0xFF)]++;
                keysOut[at] = k;
                jobsOut[at] = jobs[i];
                wallsOut[at] = walls[i];
            }

            (_keys, _keys2) = (_keys2, _keys);
            (_sorted, _sorted2) = (_sorted2, _sorted);
            (_sortedWall, _sortedWall2) = (_sortedWall2, _sortedWall);
        }

        Array.Clear(_sorted2, 0, n);
    }

    /// <summary>The sort key of a job that goes at the head (<see cref="double.PositiveInfinity"/>).</summary>
    private static readonly ulong HeadKey = Descending(double.PositiveInfinity);

    /// <summary>The sort keys of a full pass (a struct, so that the sort loop calls it without a delegate).</summary>
    public interface ISortKeys
    {
        /// <summary>Whether keys come from the columns (<see cref="KeyOf(int, long, Core.Jobs.PriorityClass, ref double, JobRecord)"/>), without touching the job.</summary>
        bool Columnar { get; }

        /// <summary>The job's key, highest first.</summary>
        double KeyOf(JobRecord job);

        /// <summary>The job's key from its user, submit time, class and size term (NaN until worked out: set it), highest first.</summary>
        double KeyOf(int user, long submitTicks, Core.Jobs.PriorityClass cls, ref double size, JobRecord job);
    }

    /// <summary>
    /// Maps a key to an unsigned integer whose ascending order is the key's descending order as
    /// <see cref="double.CompareTo(double)"/> sees it: -0 and +0 are equal, NaN is below everything. Sorting then compares
    /// integers instead of doubles, which the full pass does some n log n times for n pending jobs.
    /// </summary>
    public static ulong Descending(double key)
    {
        if (double.IsNaN(key))
        {
            return ulong.MaxValue;
        }

        var bits = BitConverter.DoubleToUInt64Bits(key == 0 ? 0.0 : key);
        var ascending = (bits & 0x8000_0000_0000_0000UL) != 0 ? ~bits : bits | 0x8000_0000_0000_0000UL;
        return ~ascending;
    }
}
