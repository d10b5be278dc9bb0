namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Pending jobs grouped by what their admission and fit depend on, apart from their walltime and GPUs: the project, the
/// request resolved per partition (a shared shape array) and the partitions the job may use. Jobs of one class get the
/// same quota answer, the same grants to choose from and the same pools to fit in on every partition, so that a pass
/// that decides many jobs without changing the state (the rest of a full pass, see
/// <see cref="SchedulerEngine"/>'s settled and checked rest) works each of these out once per class, and per job only
/// what depends on its walltime and GPUs.
/// </summary>
/// <remarks>
/// A class's entries (<see cref="Entry"/>, one per partition it may use, in the engine's partition order) are filled
/// at most once per pass of their bank (<see cref="BeginPass"/>), against the state of that pass.
/// </remarks>
internal sealed class DecisionClasses
{
    private readonly Dictionary<(int Project, Shape[] Shapes, ulong Mask), int> _ids = [];
    private int[] _project = new int[64];
    private Shape[][] _shapes = new Shape[64][];
    private ulong[] _mask = new ulong[64];
    private int[] _offset = new int[64];
    private int[] _pending = new int[64];
    private int _entryCount;
    private readonly List<Bank> _banks = [new(), new()];

    /// <summary>Classes interned so far.</summary>
    public int Count { get; private set; }

    /// <summary>The class of jobs of <paramref name="project"/> with these resolved shapes on these partitions.</summary>
    public int Intern(int project, Shape[] shapes, ulong mask)
    {
        if (_ids.TryGetValue((project, shapes, mask), out var id))
        {
            return id;
        }

        id = Count++;
        if (id == _project.Length)
        {
            var size = id * 2;
            Array.Resize(ref _project, size);
            Array.Resize(ref _shapes, size);
            Array.Resize(ref _mask, size);
            Array.Resize(ref _offset, size);
            Array.Resize(ref _pending, size);
            foreach (var bank in _banks)
            {
                Array.Resize(ref bank.Stamp, size);
            }
        }

        var width = System.Numerics.BitOperations.PopCount(mask);
        foreach (var bank in _banks)
        {
            if (_entryCount + width > bank.Entries.Length)
            {
                Array.Resize(ref bank.Entries, Math.Max(_entryCount + width, bank.Entries.Length * 2));
            }

            bank.Stamp[id] = 0;
        }

        _project[id] = project;
        _shapes[id] = shapes;
        _mask[id] = mask;
        _offset[id] = _entryCount;
        _entryCount += width;
        _ids.Add((project, shapes, mask), id);
        return id;
    }

    /// <summary>Starts a pass of <paramref name="bank"/> (made if it is the next one): every class's entries there are stale until filled again.</summary>
    public void BeginPass(int bank)
    {
        if (bank == _banks.Count)
        {
            var added = new Bank { Stamp = new int[_project.Length], Entries = new Entry[Math.Max(_entryCount, 256)] };
            _banks.Add(added);
        }

        _banks[bank].Pass++;
    }

    public int Project(int id) => _project[id];

    /// <summary>Pending jobs of the class (a class outlives its jobs: only those with some are worth filling for a whole pass).</summary>
    public int Pending(int id) => _pending[id];

    /// <summary>A job of the class was queued (+1) or left the queue (-1).</summary>
    public void CountPending(int id, int delta) => _pending[id] += delta;

    public Shape[] Shapes(int id) => _shapes[id];

    public ulong Mask(int id) => _mask[id];

    /// <summary>Whether the class's entries in <paramref name="bank"/> were filled in its current pass.</summary>
    public bool IsCurrent(int bank, int id) => _banks[bank].Stamp[id] == _banks[bank].Pass;

    /// <summary>The class's entries in <paramref name="bank"/>, to fill (then <see cref="MarkCurrent"/>) or to read.</summary>
    public Span<Entry> Entries(int bank, int id) => _banks[bank].Entries.AsSpan(_offset[id], System.Numerics.BitOperations.PopCount(_mask[id]));

    public void MarkCurrent(int bank, int id) => _banks[bank].Stamp[id] = _banks[bank].Pass;

    /// <summary>
    /// One set of entries for every class, with its own pass: the engine works the checked rest in one bank and keeps
    /// the entries of its last lazily decided rest in the others, one per segment (they must outlive that pass).
    /// </summary>
    private sealed class Bank
    {
        public int Pass = 1;
        public int[] Stamp = new int[64];
        public Entry[] Entries = new Entry[256];
    }

    /// <summary>What a pass knows of one class on one partition, the job's walltime and GPUs aside.</summary>
    public struct Entry
    {
        /// <summary>The grants' answer: none needed, no grant active (refused, <c>NoAllocation</c>), or active ones to check.</summary>
        public enum GrantState : byte
        {
            NotRequired,
            NoneActive,
            Active,
        }

        public byte Partition;
        /// <summary>The quota's refusal; <see cref="PendingReason.New"/> when quota admits (New is never a refusal).</summary>
        public PendingReason Quota;
        public bool NodesUp;
        public GrantState Grants;
        /// <summary>With active grants and none of them NaN: the most any one covers (its remaining GPU-hours plus the grants' tolerance).</summary>
        public bool AnyGrantNaN;
        public double MaxCover;
        public long HeldMilli;
    }
}
