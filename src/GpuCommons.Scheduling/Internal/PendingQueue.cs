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
    /// alone (a stable radix sort of this list). May hold jobs that left the queue (<see cref="JobRecord.InSubmitOrder"/>
    /// stays set on them until a sort drops them, so a requeued job, which keeps its submit time, reuses its entry).
    /// </summary>
    private readonly List<JobRecord> _bySubmit = [];

    /// <summary>Whether a job was appended to <see cref="_bySubmit"/> out of submit order since the last sort.</summary>
    private bool _bySubmitUnsorted;

    // Sort buffers (keys and jobs, twice for the radix passes), kept between full passes.
    private ulong[] _keys = [];
    private ulong[] _keys2 = [];
    private JobRecord[] _sorted = [];
    private JobRecord[] _sorted2 = [];
    private readonly int[] _digitCounts = new int[8 * 256];

    // The lazy order (see Sort): the keys of the unsorted tail, in the tail's order, and the head selection's scratch.
    private ulong[] _tailKeys = [];
    private int _tailCount;
    private int[] _headHeap = [];
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
        _jobs.Add(job);
        if (job.SubmitTicks > now)
        {
            _submitsToCome.Enqueue(job, job.SubmitTicks);
        }

        if (!job.InSubmitOrder)
        {
            job.InSubmitOrder = true;

            // Jobs mostly arrive in submit order; one that does not is appended too, and the next sort puts the list
            // back in order once (an insertion in the middle would move the whole list for each such job).
            _bySubmitUnsorted |= _bySubmit.Count > 0 && !FifoBefore(_bySubmit[^1], job);
            _bySubmit.Add(job);
        }

        var slot = SlotFor(job);
        Order.Insert(slot, job);
        OrderWall.Insert(slot, job.WalltimeTicks);
        Arrivals.Add(job);
    }

    public void Remove(JobRecord job)
    {
        var slot = job.PendingSlot;
        var last = _jobs[^1];
        _jobs[slot] = last;
        last.PendingSlot = slot;
        _jobs.RemoveAt(_jobs.Count - 1);
        job.PendingSlot = -1;
    }

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
    /// walks the order a full cycle would. Other orders change with time and usage; the job goes last.
    /// </summary>
    private int SlotFor(JobRecord job)
    {
        if (options.Ordering != OrderingPolicy.Fifo || Order.Count <= OrderHead || !FifoBefore(job, Order[^1]))
        {
            return Order.Count;
        }

        return LowerBound(Order, OrderHead, job);
    }

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
    /// first) and says whether it goes at the head; ties go by submit time, then id.
    /// </summary>
    /// <remarks>
    /// The keys are read in submit order (<see cref="_bySubmit"/>), then sorted by a stable least-significant-digit radix
    /// sort on <see cref="Descending"/>: equal keys keep submit order, which is the tie-break. A byte in which all keys
    /// agree costs no pass (under FIFO every key is 0 and the sort is one read of the keys).
    /// </remarks>
    public void Sort<TKeys>(ref TKeys keyOf)
        where TKeys : struct, ISortKeys
    {
        var count = _jobs.Count;
        if (_keys.Length < count)
        {
            var size = Math.Max(count, _keys.Length * 2);
            _keys = new ulong[size];
            _keys2 = new ulong[size];
            _sorted = new JobRecord[size];
            _sorted2 = new JobRecord[size];
        }

        var minWall = long.MaxValue;
        var n = 0;
        var w = 0;
        var heads = 0;
        if (_bySubmitUnsorted)
        {
            _bySubmit.Sort(static (a, b) => FifoBefore(a, b) ? -1 : FifoBefore(b, a) ? 1 : 0);
            _bySubmitUnsorted = false;
        }

        for (var i = 0; i < _bySubmit.Count; i++)
        {
            var j = _bySubmit[i];
            if (j.PendingSlot < 0)
            {
                j.InSubmitOrder = false;
                continue;
            }

            _bySubmit[w++] = j;
            var key = Descending(keyOf.KeyOf(j));
            minWall = Math.Min(minWall, j.WalltimeTicks);
            heads += key == HeadKey ? 1 : 0;
            _keys[n] = key;
            _sorted[n++] = j;
        }

        _bySubmit.RemoveRange(w, _bySubmit.Count - w);
        if (n != count)
        {
            throw new InvalidOperationException($"the submit order lists {n} pending jobs, the queue {count}");
        }

        MinWalltime = minWall;
        Order.Clear();
        OrderWall.Clear();
        OrderHead = heads;
        _tailCount = 0;
        SortedUntil = int.MaxValue;
        var head = options.SortedHead;
        if (options.LazyOrder && options.Ordering != OrderingPolicy.Fifo && head > 0 && n > 2 * head && heads < head)
        {
            SortHeadOnly(n, head);
            return;
        }

        CountDigits(n);
        RadixSort(n);
        for (var i = 0; i < n; i++)
        {
            var j = _sorted[i];
            Order.Add(j);
            OrderWall.Add(j.WalltimeTicks);
            _sorted[i] = null!;
        }
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

    /// <summary>Whether job <paramref name="a"/> of the key pass goes before job <paramref name="b"/> (key, then submit order).</summary>
    private bool Before(int a, int b) => _keys[a] < _keys[b] || (_keys[a] == _keys[b] && a < b);

    /// <summary>
    /// The lazy order: the first <paramref name="head"/> jobs of the exact order (selected with a bounded max-heap, then
    /// sorted), followed by every other job in submit order with its key kept, for <see cref="SortTail"/> to sort if a
    /// pass needs the order beyond the head. Sorting the head and then the tail gives exactly the full sort's order: every
    /// head job goes before every tail job by (key, submit order), the full sort's own order.
    /// </summary>
    private void SortHeadOnly(int n, int head)
    {
        if (_headHeap.Length < head)
        {
            _headHeap = new int[head];
        }

        if (_inHead.Length < n)
        {
            _inHead = new bool[Math.Max(n, _inHead.Length * 2)];
        }

        // A max-heap (by the order) of the best `head` indices seen so far.
        var heap = _headHeap;
        var size = 0;
        for (var i = 0; i < n; i++)
        {
            if (size < head)
            {
                var c = size++;
                while (c > 0 && Before(heap[(c - 1) / 2], i))
                {
                    heap[c] = heap[(c - 1) / 2];
                    c = (c - 1) / 2;
                }

                heap[c] = i;
            }
            else if (Before(i, heap[0]))
            {
                var c = 0;
                while (true)
                {
                    var l = (2 * c) + 1;
                    if (l >= size)
                    {
                        break;
                    }

                    var r = l + 1;
                    var big = r < size && Before(heap[l], heap[r]) ? r : l;
                    if (!Before(i, heap[big]))
                    {
                        break;
                    }

                    heap[c] = heap[big];
                    c = big;
                }

                heap[c] = i;
            }
        }

        Array.Sort(heap, 0, size, Comparer<int>.Create((a, b) => a == b ? 0 : Before(a, b) ? -1 : 1));
        for (var k = 0; k < size; k++)
        {
            var j = _sorted[heap[k]];
            _inHead[heap[k]] = true;
            Order.Add(j);
            OrderWall.Add(j.WalltimeTicks);
        }

        if (_tailKeys.Length < n - size)
        {
            _tailKeys = new ulong[Math.Max(n - size, _tailKeys.Length * 2)];
        }

        var t = 0;
        for (var i = 0; i < n; i++)
        {
            var j = _sorted[i];
            _sorted[i] = null!;
            if (_inHead[i])
            {
                _inHead[i] = false;
                continue;
            }

            Order.Add(j);
            OrderWall.Add(j.WalltimeTicks);
            _tailKeys[t++] = _keys[i];
        }

        SortedUntil = size;
        _tailCount = t;
    }

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
        for (var i = 0; i < t; i++)
        {
            _sorted[i] = Order[from + i];
            _keys[i] = _tailKeys[i];
        }

        CountDigits(t);
        RadixSort(t);
        for (var i = 0; i < t; i++)
        {
            var j = _sorted[i];
            Order[from + i] = j;
            OrderWall[from + i] = j.WalltimeTicks;
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
            var keysOut = _keys2;
            var jobsOut = _sorted2;
            for (var i = 0; i < n; i++)
            {
                var k = keys[i];
                var at = next[(int)((k >> shift) & 0xFF)]++;
                keysOut[at] = k;
                jobsOut[at] = jobs[i];
            }

            (_keys, _keys2) = (_keys2, _keys);
            (_sorted, _sorted2) = (_sorted2, _sorted);
        }

        Array.Clear(_sorted2, 0, n);
    }

    /// <summary>The sort key of a job that goes at the head (<see cref="double.PositiveInfinity"/>).</summary>
    private static readonly ulong HeadKey = Descending(double.PositiveInfinity);

    /// <summary>The sort keys of a full pass (a struct, so that the sort loop calls it without a delegate).</summary>
    public interface ISortKeys
    {
        /// <summary>The job's key, highest first; <see cref="double.PositiveInfinity"/> puts it at the head.</summary>
        double KeyOf(JobRecord job);
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
