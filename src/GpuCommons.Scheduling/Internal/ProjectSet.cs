namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// A set of project indices (small, dense integers) that empties in O(1): each project's slot holds the generation it was
/// added in. For sets that a pass fills and the next pass clears, and that the pass asks about once per job.
/// </summary>
internal sealed class ProjectSet
{
    private int[] _added = [];
    private int _generation = 1;

    /// <summary>How many projects are in the set.</summary>
    public int Count { get; private set; }

    public void Clear()
    {
        _generation++;
        Count = 0;
    }

    public bool Contains(int project) => (uint)project < (uint)_added.Length && _added[project] == _generation;

    public void Add(int project)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(project);
        if (project >= _added.Length)
        {
            Array.Resize(ref _added, Math.Max(project + 1, _added.Length * 2));
        }

        if (_added[project] != _generation)
        {
            _added[project] = _generation;
            Count++;
        }
    }
}
