namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// The candidates of a full pass's lazily decided rest (see <c>SchedulerEngine.FindRestCandidates</c>), as places in the
/// unsorted tail (<see cref="Place"/>: the sort key, then the place in the tail), taken in that order, which is the whole
/// sort's. A search fills <see cref="Found"/>; its finds then replace every candidate (<see cref="TakeAll"/>), or join
/// those still to take (<see cref="TakeMore"/>), each place once. A take gives the next candidate that passes the
/// caller's test at its turn (<see cref="ICandidateTest"/>).
/// </summary>
/// <remarks>
/// The candidates are not sorted as a whole. A search in a full cluster finds every job that fits the little room left,
/// and the first few steps take that room: the others then fail their test. So the candidates are kept unsorted, and
/// only the least of them are selected and sorted, a chunk at a time (32, then twice as many each time). Before each
/// chunk, the candidates that fail the test are dropped.
/// </remarks>
internal sealed class RestCandidates
{
    /// <summary>
    /// The candidates still to take, unsorted (with some taken or dropped since the last chunk: see <see cref="_inPool"/>):
    /// place, decision class, walltime. A search writes its finds after them (from <see cref="_foundFrom"/>).
    /// </summary>
    private UInt128[] _pool = new UInt128[256];
    private int[] _poolClass = new int[256];
    private long[] _poolWall = new long[256];
    private int _poolCount;
    private int _foundFrom;
    private int _foundCount;

    /// <summary>Per place in the tail, <see cref="_inPoolScan"/> while the pool holds it still to take (each place once).</summary>
    private int[] _inPool = new int[256];
    private int _inPoolScan = 1;

    /// <summary>The least candidates of the pool when the chunk was selected, as indices into it, sorted by place.</summary>
    private int[] _chunk = new int[FirstChunk];
    private UInt128[] _chunkPlaces = new UInt128[FirstChunk];
    private int _chunkCount;
    private int _chunkAt;
    private int _chunkSize = FirstChunk;

    /// <summary>The last place taken (every later one comes after it).</summary>
    private UInt128 _last;
    private bool _hasLast;

    /// <summary>The size of the first chunk after a search.</summary>
    private const int FirstChunk = 32;

    /// <summary>
    /// The least <see cref="FirstChunk"/> places of the search under way, in a bounded max-heap, with each one's index among
    /// the search's finds: the first chunk of a search whose finds replace every candidate (<see cref="TakeAll"/>), which
    /// then needs no pass over them.
    /// </summary>
    private readonly UInt128[] _searchLeast = new UInt128[FirstChunk];
    private readonly int[] _searchLeastAt = new int[FirstChunk];
    private int _searchLeastCount;

    /// <summary>A place in the tail's order: <paramref name="key"/> (as <c>PendingQueue.Descending</c> maps it), then <paramref name="tail"/>.</summary>
    public static UInt128 Place(ulong key, int tail) => ((UInt128)key << 64) | (uint)tail;

    public static ulong KeyOf(UInt128 place) => unchecked((ulong)(place >> 64));

    public static int TailOf(UInt128 place) => unchecked((int)(uint)place);

    /// <summary>Places found by the search under way.</summary>
    public int FoundCount => _foundCount;

    /// <summary>
    /// Begins a search; with <paramref name="replacing"/>, one whose finds will replace every candidate
    /// (<see cref="TakeAll"/>): they are forgotten now, so that the finds need no room beside them.
    /// </summary>
    public void BeginFind(bool replacing = false)
    {
        if (replacing)
        {
            ForgetAll();
        }

        _foundFrom = _poolCount;
        _foundCount = 0;
        _searchLeastCount = 0;
    }

    /// <summary>
    /// A candidate the search found (in any order; each place at most once per search), with its decision class and
    /// walltime, which <see cref="ICandidateTest"/> is given.
    /// </summary>
    public void Found(ulong key, int tail, int decisionClass = 0, long walltime = 0)
    {
        var at = _foundFrom + _foundCount;
        if (at == _pool.Length)
        {
            var size = _pool.Length * 2;
            Array.Resize(ref _pool, size);
            Array.Resize(ref _poolClass, size);
            Array.Resize(ref _poolWall, size);
        }

        var place = Place(key, tail);
        _pool[at] = place;
        _poolClass[at] = decisionClass;
        _poolWall[at] = walltime;
        KeepIfLeast(_searchLeast, _searchLeastAt, ref _searchLeastCount, FirstChunk, place, _foundCount);
        _foundCount++;
    }

    /// <summary>
    /// The search found every candidate: they replace all those still to take. The least of them, kept as they were found,
    /// are the first chunk, without a pass over the finds to select it. That pass would also drop the finds that fail the
    /// caller's test by now; none does where nothing changed since the search, and one that does is passed over at its
    /// turn (a candidate is tested there) or dropped by the next chunk's pass, so the candidates taken are the same.
    /// </summary>
    public void TakeAll()
    {
        ForgetAll();
        var found = _foundCount;
        AddFound();

        // (A search finds each place once, and the pool was forgotten: the finds keep their indices, from 0.)
        System.Diagnostics.Debug.Assert(_poolCount == found, "a replacing take moved its finds");
        var count = _searchLeastCount;
        _searchLeast.AsSpan(0, count).CopyTo(_chunkPlaces);
        _searchLeastAt.AsSpan(0, count).CopyTo(_chunk);
        Array.Sort(_chunkPlaces, _chunk, 0, count);
        _chunkCount = count;
        _chunkAt = 0;
        _chunkSize = 2 * FirstChunk;
    }

    /// <summary>Forgets every candidate still to take, and the last taken.</summary>
    private void ForgetAll()
    {
        _inPoolScan++;
        _poolCount = 0;
        _hasLast = false;
    }

    /// <summary>The search found the candidates of some classes: they join those still to take (each place once).</summary>
    public void TakeMore()
    {
        if (_poolCount != _foundFrom)
        {
            throw new InvalidOperationException("candidates were taken during a search");
        }

        if (_foundCount > 0)
        {
            AddFound();
        }
    }

    /// <summary>Moves the search's finds to the end of the pool, but for places it holds; the next take selects a chunk anew.</summary>
    private void AddFound()
    {
        var end = _foundFrom + _foundCount;
        for (var i = _foundFrom; i < end; i++)
        {
            var tail = TailOf(_pool[i]);
            if (_inPool.Length <= tail)
            {
                Array.Resize(ref _inPool, Math.Max(tail + 1, _inPool.Length * 2));
            }

            if (_inPool[tail] == _inPoolScan)
            {
                continue;
            }

            // (Never ahead of i: the pool ends at or before the finds.)
            _inPool[tail] = _inPoolScan;
            _pool[_poolCount] = _pool[i];
            _poolClass[_poolCount] = _poolClass[i];
            _poolWall[_poolCount++] = _poolWall[i];
        }

        _foundFrom = _poolCount;
        _foundCount = 0;
        _chunkCount = 0;
        _chunkAt = 0;
        _chunkSize = FirstChunk;
    }

    /// <summary>Takes the next candidate in order (a place found twice is taken once); false when none is left.</summary>
    public bool TryNext(out UInt128 place)
    {
        var all = default(AllPass);
        return TryNext(ref all, out place);
    }

    /// <summary>
    /// Takes the next candidate in order that passes <paramref name="test"/> at this turn; false when none is left. Those
    /// before it that fail are dropped.
    /// </summary>
    public bool TryNext<TTest>(ref TTest test, out UInt128 place)
        where TTest : struct, ICandidateTest
    {
        while (true)
        {
            while (_chunkAt < _chunkCount)
            {
                var i = _chunk[_chunkAt++];
                var p = _pool[i];
                var tail = TailOf(p);
                if (_inPool[tail] != _inPoolScan)
                {
                    continue;
                }

                _inPool[tail] = 0;
                if (test.Passes(_poolClass[i], _poolWall[i]))
                {
                    _last = p;
                    _hasLast = true;
                    place = p;
                    return true;
                }
            }

            if (!SelectChunk(ref test))
            {
                place = default;
                return false;
            }
        }
    }

    /// <summary>
    /// Drops the candidates taken, or that fail <paramref name="test"/> now, and selects the least of those left into the
    /// chunk, sorted; false when none is left.
    /// </summary>
    private bool SelectChunk<TTest>(ref TTest test)
        where TTest : struct, ICandidateTest
    {
        var size = _chunkSize;
        _chunkSize = size <= int.MaxValue / 2 ? size * 2 : size;
        if (_chunk.Length < size)
        {
            _chunk = new int[size];
            _chunkPlaces = new UInt128[size];
        }

        // One pass: keep the candidates still to take, after the last taken, that pass; and the least of them in a
        // bounded max-heap (a kept candidate's index never changes again in this pass: it only moves down).
        var kept = 0;
        var heap = _chunkPlaces;
        var at = _chunk;
        var count = 0;
        for (var i = 0; i < _poolCount; i++)
        {
            var p = _pool[i];
            var tail = TailOf(p);
            if (_inPool[tail] != _inPoolScan)
            {
                continue;
            }

            if ((_hasLast && p <= _last) || !test.Passes(_poolClass[i], _poolWall[i]))
            {
                _inPool[tail] = 0;
                continue;
            }

            _pool[kept] = p;
            _poolClass[kept] = _poolClass[i];
            _poolWall[kept] = _poolWall[i];
            KeepIfLeast(heap, at, ref count, size, p, kept);
            kept++;
        }

        _poolCount = kept;
        Array.Sort(heap, at, 0, count);
        _chunkCount = count;
        _chunkAt = 0;
        return count > 0;
    }

    /// <summary>Offers <paramref name="place"/> (at <paramref name="index"/>) to a bounded max-heap of the <paramref name="size"/> least places.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void KeepIfLeast(UInt128[] heap, int[] at, ref int count, int size, UInt128 place, int index)
    {
        if (count < size)
        {
            heap[count] = place;
            at[count] = index;
            SiftUp(heap, at, count++);
        }
        else if (place < heap[0])
        {
            heap[0] = place;
            at[0] = index;
            SiftDown(heap, at, count);
        }
    }

    private static void SiftUp(UInt128[] heap, int[] at, int k)
    {
        while (k > 0)
        {
            var parent = (k - 1) / 2;
            if (heap[parent] >= heap[k])
            {
                return;
            }

            (heap[parent], heap[k]) = (heap[k], heap[parent]);
            (at[parent], at[k]) = (at[k], at[parent]);
            k = parent;
        }
    }

    private static void SiftDown(UInt128[] heap, int[] at, int count)
    {
        var k = 0;
        while (true)
        {
            var largest = k;
            var left = (2 * k) + 1;
            var right = left + 1;
            largest = left < count && heap[left] > heap[largest] ? left : largest;
            largest = right < count && heap[right] > heap[largest] ? right : largest;
            if (largest == k)
            {
                return;
            }

            (heap[largest], heap[k]) = (heap[k], heap[largest]);
            (at[largest], at[k]) = (at[k], at[largest]);
            k = largest;
        }
    }

    /// <summary>
    /// What a candidate must pass at its turn, from its decision class and walltime. A caller promises that a candidate the
    /// test refuses would be refused at every later turn too, unless a search finds it again: the pool drops it at once.
    /// </summary>
    public interface ICandidateTest
    {
        bool Passes(int decisionClass, long walltime);
    }

    private struct AllPass : ICandidateTest
    {
        public readonly bool Passes(int decisionClass, long walltime) => true;
    }
}
