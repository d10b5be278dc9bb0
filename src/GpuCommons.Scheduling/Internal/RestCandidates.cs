namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// The candidates of a full pass's lazily decided rest (see <c>SchedulerEngine.FindRestCandidates</c>), as places in the
/// unsorted tail (<see cref="Place"/>: the sort key, then the place in the tail), taken in that order, which is the whole
/// sort's. A search fills <see cref="Found"/>; its finds then replace every candidate (<see cref="TakeAll"/>), or join
/// those still to take (<see cref="TakeMore"/>), each place once.
/// </summary>
internal sealed class RestCandidates
{
    private UInt128[] _main = new UInt128[256];
    private int _mainCount;
    private int _mainAt;
    private UInt128[] _more = new UInt128[64];
    private int _moreCount;
    private int _moreAt;
    private ulong[] _foundKeys = new ulong[256];
    private int[] _foundTails = new int[256];
    private UInt128[] _found = new UInt128[256];
    private int _foundCount;
    private UInt128[] _merged = new UInt128[64];

    /// <summary>A place in the tail's order: <paramref name="key"/> (as <c>PendingQueue.Descending</c> maps it), then <paramref name="tail"/>.</summary>
    public static UInt128 Place(ulong key, int tail) => ((UInt128)key << 64) | (uint)tail;

    public static ulong KeyOf(UInt128 place) => unchecked((ulong)(place >> 64));

    public static int TailOf(UInt128 place) => unchecked((int)(uint)place);

    /// <summary>Places found by the search under way.</summary>
    public int FoundCount => _foundCount;

    /// <summary>Begins a search.</summary>
    public void BeginFind() => _foundCount = 0;

    /// <summary>A candidate the search found (in any order; each place at most once per search).</summary>
    public void Found(ulong key, int tail)
    {
        if (_foundCount == _foundKeys.Length)
        {
            Array.Resize(ref _foundKeys, _foundKeys.Length * 2);
            Array.Resize(ref _foundTails, _foundKeys.Length);
        }

        _foundKeys[_foundCount] = key;
        _foundTails[_foundCount++] = tail;
    }

    /// <summary>
    /// Sorts what the search found into <see cref="_found"/> by place: by key, then each run of equal keys by place in the
    /// tail (a run is short: the places of one key). Many finds are sorted with a stable least-significant-digit radix sort,
    /// 11 bits a pass, skipping the digits in which all keys agree: a search finds in tail order, so a run of equal keys is
    /// then in order already.
    /// </summary>
    private void SortFound()
    {
        var n = _foundCount;
        if (n >= RadixFrom)
        {
            RadixSort(n);
        }
        else
        {
            Array.Sort(_foundKeys, _foundTails, 0, n);
        }

        KeyRuns.OrderPlacesWithinRuns(_foundKeys.AsSpan(0, n), _foundTails.AsSpan(0, n));

        if (_found.Length < n)
        {
            _found = new UInt128[Math.Max(n, _found.Length * 2)];
        }

        for (var i = 0; i < n; i++)
        {
            _found[i] = Place(_foundKeys[i], _foundTails[i]);
        }
    }

    /// <summary>From this many finds on, <see cref="SortFound"/> sorts by radix rather than by comparison.</summary>
    private const int RadixFrom = 512;

    private ulong[] _radixKeys = [];
    private int[] _radixTails = [];

    /// <summary>The bits of a key that one pass of <see cref="RadixSort"/> sorts by: six passes cover 64 bits.</summary>
    private const int DigitBits = 11;
    private const int Digits = (64 + DigitBits - 1) / DigitBits;
    private const int DigitMask = (1 << DigitBits) - 1;
    private readonly int[] _digitCounts = new int[Digits << DigitBits];

    /// <summary>Stable radix sort of the first <paramref name="n"/> finds by key (their places go with them).</summary>
    private void RadixSort(int n)
    {
        if (_radixKeys.Length < n)
        {
            _radixKeys = new ulong[_foundKeys.Length];
            _radixTails = new int[_foundKeys.Length];
        }

        var counts = _digitCounts;
        Array.Clear(counts);
        var keys = _foundKeys;
        for (var i = 0; i < n; i++)
        {
            var key = keys[i];
            for (var d = 0; d < Digits; d++)
            {
                counts[(d << DigitBits) | (int)((key >> (d * DigitBits)) & DigitMask)]++;
            }
        }

        Span<int> next = stackalloc int[1 << DigitBits];
        for (var d = 0; d < Digits; d++)
        {
            var shift = d * DigitBits;
            var digit = counts.AsSpan(d << DigitBits, 1 << DigitBits);
            if (digit[(int)((_foundKeys[0] >> shift) & DigitMask)] == n)
            {
                // Every key has the same digit here: the pass would move nothing.
                continue;
            }

            var sum = 0;
            for (var b = 0; b < digit.Length; b++)
            {
                next[b] = sum;
                sum += digit[b];
            }

            var keysIn = _foundKeys;
            var tailsIn = _foundTails;
            var keysOut = _radixKeys;
            var tailsOut = _radixTails;
            for (var i = 0; i < n; i++)
            {
                var k = keysIn[i];
                var at = next[(int)((k >> shift) & DigitMask)]++;
                keysOut[at] = k;
                tailsOut[at] = tailsIn[i];
            }

            (_foundKeys, _radixKeys) = (_radixKeys, _foundKeys);
            (_foundTails, _radixTails) = (_radixTails, _foundTails);
        }
    }

    /// <summary>The search found every candidate: they replace all those still to take.</summary>
    public void TakeAll()
    {
        SortFound();
        (_main, _found) = (_found, _main);
        _mainCount = _foundCount;
        _mainAt = 0;
        _moreCount = 0;
        _moreAt = 0;
        _foundCount = 0;
    }

    /// <summary>The search found the candidates of some classes: they join those still to take.</summary>
    public void TakeMore()
    {
        if (_foundCount == 0)
        {
            return;
        }

        SortFound();
        var size = (_moreCount - _moreAt) + _foundCount;
        if (_merged.Length < size)
        {
            _merged = new UInt128[Math.Max(size, _merged.Length * 2)];
        }

        int a = _moreAt, b = 0, n = 0;
        while (a < _moreCount || b < _foundCount)
        {
            var next = a == _moreCount ? _found[b] : b == _foundCount ? _more[a] : UInt128.Min(_more[a], _found[b]);
            a += a < _moreCount && _more[a] == next ? 1 : 0;
            b += b < _foundCount && _found[b] == next ? 1 : 0;
            _merged[n++] = next;
        }

        (_more, _merged) = (_merged, _more);
        _moreCount = n;
        _moreAt = 0;
        _foundCount = 0;
    }

    /// <summary>Takes the next candidate in order (a place found twice is taken once); false when none is left.</summary>
    public bool TryNext(out UInt128 place)
    {
        var hasMain = _mainAt < _mainCount;
        var hasMore = _moreAt < _moreCount;
        if (!hasMain && !hasMore)
        {
            place = default;
            return false;
        }

        place = !hasMore ? _main[_mainAt] : !hasMain ? _more[_moreAt] : UInt128.Min(_main[_mainAt], _more[_moreAt]);
        _mainAt += hasMain && _main[_mainAt] == place ? 1 : 0;
        _moreAt += hasMore && _more[_moreAt] == place ? 1 : 0;
        return true;
    }
}
