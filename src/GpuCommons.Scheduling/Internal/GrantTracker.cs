using GpuCommons.Core.Tenancy;

namespace GpuCommons.Scheduling.Internal;

/// <summary>Allocations of GPU-hours: spent (charged) and committed (walltime × GPUs of running jobs).</summary>
internal sealed class GrantTracker
{
    private readonly List<Grant> _grants = [];
    private readonly List<List<int>> _byProject = [];
    private readonly Dictionary<string, int> _byId = new(StringComparer.Ordinal);

    public int Count => _grants.Count;

    public Grant this[int i] => _grants[i];

    public void EnsureProject(int project)
    {
        while (_byProject.Count <= project)
        {
            _byProject.Add([]);
        }
    }

    public int Add(AllocationSpec spec, int project, int partition)
    {
        if (_byId.TryGetValue(spec.Id, out var existing))
        {
            var g = _grants[existing];
            g.Spec = spec;
            _edges = null;
            g.Spent = spec.SpentGpuHours;
            return existing;
        }

        EnsureProject(project);
        _edges = null;
        var grant = new Grant(spec, project, partition) { Spent = spec.SpentGpuHours };
        _grants.Add(grant);
        _byProject[project].Add(_grants.Count - 1);
        _byId[spec.Id] = _grants.Count - 1;
        return _grants.Count - 1;
    }

    public int Find(string id) => _byId.TryGetValue(id, out var i) ? i : -1;

    /// <summary>The starts and ends of the grants' windows, sorted (null: to be worked out again).</summary>
    private long[]? _edges;

    /// <summary>Whether a grant's window opens or closes after <paramref name="after"/> and by <paramref name="upTo"/>: admission may have changed.</summary>
    public bool AnyEdgeIn(long after, long upTo)
    {
        if (upTo <= after || _grants.Count == 0)
        {
            return false;
        }

        if (_edges is null)
        {
            _edges = new long[_grants.Count * 2];
            for (var i = 0; i < _grants.Count; i++)
            {
                _edges[2 * i] = _grants[i].StartTicks;
                _edges[(2 * i) + 1] = _grants[i].EndTicks;
            }

            Array.Sort(_edges);
        }

        // The first edge after `after`, if it is not after `upTo`.
        var at = Array.BinarySearch(_edges, after + 1);
        at = at < 0 ? ~at : at;
        while (at > 0 && _edges[at - 1] > after)
        {
            at--;
        }

        return at < _edges.Length && _edges[at] <= upTo;
    }

    public bool HasAny(int project) => project < _byProject.Count && _byProject[project].Count > 0;

    /// <summary>
    /// Picks the active allocation of the project on the partition that can cover <paramref name="gpuHours"/>,
    /// preferring the one that expires first. Returns -1 and the reason when none can.
    /// </summary>
    public int Find(int project, int partition, double gpuHours, long nowTicks, out PendingReason reason)
    {
        reason = PendingReason.NoAllocation;
        if (project >= _byProject.Count)
        {
            return -1;
        }

        var best = -1;
        var grants = _byProject[project];
        for (var k = 0; k < grants.Count; k++)
        {
            var i = grants[k];
            var g = _grants[i];
            if (!Active(g, partition, nowTicks))
            {
                continue;
            }

            if (g.Remaining + 1e-9 < gpuHours)
            {
                reason = PendingReason.GrantExhausted;
                continue;
            }

            if (best < 0 || g.EndTicks < _grants[best].EndTicks)
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>Whether a grant pays for jobs on the partition now (its partition, or any, and within its window).</summary>
    private static bool Active(Grant g, int partition, long nowTicks) =>
        (g.Partition < 0 || g.Partition == partition) && nowTicks >= g.StartTicks && nowTicks < g.EndTicks;

    /// <summary>
    /// What <see cref="Find(int, int, double, long, out PendingReason)"/> would answer for any request on the partition,
    /// as one bound: it finds an allocation for <c>gpuHours</c> exactly when <paramref name="anyActive"/> and
    /// (<paramref name="anyNaN"/> or not <c>cover &lt; gpuHours</c>), where cover is the returned value (the most any
    /// active grant covers: its remaining GPU-hours plus the same tolerance); otherwise its reason is
    /// <see cref="PendingReason.GrantExhausted"/> when <paramref name="anyActive"/>, else <see cref="PendingReason.NoAllocation"/>.
    /// </summary>
    public double Cover(int project, int partition, long nowTicks, out bool anyActive, out bool anyNaN)
    {
        anyActive = false;
        anyNaN = false;
        var cover = double.NegativeInfinity;
        if (project >= _byProject.Count)
        {
            return cover;
        }

        var grants = _byProject[project];
        for (var k = 0; k < grants.Count; k++)
        {
            var g = _grants[grants[k]];
            if (!Active(g, partition, nowTicks))
            {
                continue;
            }

            anyActive = true;
            var c = g.Remaining + 1e-9;
            if (double.IsNaN(c))
            {
                anyNaN = true;
            }
            else if (c > cover)
            {
                cover = c;
            }
        }

        return cover;
    }
}

internal sealed class Grant(AllocationSpec spec, int project, int partition)
{
    /// <summary>The allocation; its window and GPU-hours are copied on every set, since <see cref="GrantTracker.Find(int, int, double, long, out PendingReason)"/> reads them for every pending job in every full pass.</summary>
    public AllocationSpec Spec
    {
        get;
        set
        {
            field = value;
            StartTicks = value.Start.UtcTicks;
            EndTicks = value.End.UtcTicks;
            GpuHours = value.GpuHours;
        }
    } = spec;

    public int Project { get; } = project;
    public int Partition { get; } = partition;
    public long StartTicks { get; private set; } = spec.Start.UtcTicks;
    public long EndTicks { get; private set; } = spec.End.UtcTicks;
    public double GpuHours { get; private set; } = spec.GpuHours;
    public double Spent { get; set; }
    public double Committed { get; set; }
    public double Remaining => GpuHours - Spent - Committed;
}
