namespace GpuCommons.Core.Rounds;

/// <summary>From <see cref="FromMonth"/> on, <see cref="Gpus"/> of the partition are in service (until the next step).</summary>
public sealed record CapacityStep(string Partition, int FromMonth, int Gpus);

/// <summary>
/// The fleet's delivery timeline: GPUs in service per partition and month, as steps. A partition with no step before a
/// month has nothing then. Built from the fleet as it is (one step per partition), from a call's declared deliveries,
/// or from a capacity-planning scenario (<c>CapacityPlanner.Timeline</c>).
/// </summary>
public sealed class CapacityTimeline
{
    private readonly Dictionary<string, List<CapacityStep>> _steps = new(StringComparer.Ordinal);

    /// <summary>A timeline of the given steps, in any order.</summary>
    public CapacityTimeline(IEnumerable<CapacityStep> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        foreach (var s in steps)
        {
            if (!_steps.TryGetValue(s.Partition, out var list))
            {
                _steps[s.Partition] = list = [];
            }

            list.Add(s);
        }

        foreach (var list in _steps.Values)
        {
            list.Sort((a, b) => a.FromMonth.CompareTo(b.FromMonth));
        }
    }

    /// <summary>The partitions that have at least one step, in ordinal order.</summary>
    public IEnumerable<string> Partitions => _steps.Keys.Order(StringComparer.Ordinal);

    /// <summary>Every step, partition by partition, each partition's in month order.</summary>
    public IEnumerable<CapacityStep> Steps => _steps.Values.SelectMany(s => s);

    /// <summary>Every partition at its size from the beginning of time.</summary>
    public static CapacityTimeline Constant(IEnumerable<(string Partition, int Gpus)> partitions) =>
        new(partitions.Select(p => new CapacityStep(p.Partition, int.MinValue, p.Gpus)));

    /// <summary>This timeline with the given steps laid over it (a partition with overrides takes only the overrides from their first month on).</summary>
    public CapacityTimeline With(IEnumerable<CapacityStep> overrides)
    {
        ArgumentNullException.ThrowIfNull(overrides);
        var extra = overrides.ToList();
        var steps = new List<CapacityStep>();
        foreach (var (p, list) in _steps)
        {
            var first = extra.Where(e => e.Partition == p).Select(e => (int?)e.FromMonth).Min();
            steps.AddRange(first is { } f ? list.Where(s => s.FromMonth < f) : list);
        }

        steps.AddRange(extra);
        return new CapacityTimeline(steps);
    }

    /// <summary>GPUs of the partition in service in <paramref name="month"/> (<see cref="Months"/>): the latest step at or before it, else 0.</summary>
    public int GpusAt(string partition, int month)
    {
        if (!_steps.TryGetValue(partition, out var list))
        {
            return 0;
        }

        var gpus = 0;
        foreach (var s in list)
        {
            if (s.FromMonth > month)
            {
                break;
            }

            gpus = s.Gpus;
        }

        return gpus;
    }
}

/// <summary>Dedicated capacity on a partition from a start month for some months (a capacity award).</summary>
public readonly record struct DedicatedCapacity(string Partition, int Gpus, int StartMonth, int Months)
{
    /// <summary>Whether the capacity is held in <paramref name="month"/>: from <see cref="StartMonth"/> for <see cref="Months"/> months.</summary>
    public bool Covers(int month) => month >= StartMonth && month < StartMonth + Months;
}

/// <summary>One cell of the committee's table: a partition in a month.</summary>
public sealed record FeasibilityRow(string Partition, int Month, int Capacity, int Existing, int Added)
{
    /// <summary>What is left for the shared queue (negative: over-promised).</summary>
    public int SharedQueue => Capacity - Existing - Added;

    /// <summary>Over-promised: what was already awarded plus what this round adds exceeds the capacity of the month.</summary>
    public bool Over => Existing + Added > Capacity;
}

/// <summary>The outcome of <see cref="Feasibility.Check"/>: the committee's table and its violations.</summary>
/// <param name="Rows">One row per partition and month, from the first month any award starts to the last it covers.</param>
public sealed record FeasibilityReport(IReadOnlyList<FeasibilityRow> Rows)
{
    /// <summary>The over-promised rows where this round adds capacity.</summary>
    public IReadOnlyList<FeasibilityRow> Violations => Rows.Where(r => r.Over && r.Added > 0).ToList();

    /// <summary>True when this round over-promises no month.</summary>
    public bool Feasible => Violations.Count == 0;
}

/// <summary>
/// Feasibility before the award: whether the dedicated capacity awarded on each partition, in each month, fits what the
/// fleet holds that month on its delivery timeline. A month is over-promised when what was already awarded plus what
/// this round adds exceeds the capacity; only months where this round adds something count as its violations.
/// </summary>
public static class Feasibility
{
    /// <summary>
    /// The table of capacity, <paramref name="existing"/> awards and <paramref name="added"/> awards (this round's) per
    /// partition and month, over the months the awards cover.
    /// </summary>
    public static FeasibilityReport Check(CapacityTimeline timeline, IReadOnlyList<DedicatedCapacity> existing, IReadOnlyList<DedicatedCapacity> added)
    {
        ArgumentNullException.ThrowIfNull(timeline);
        ArgumentNullException.ThrowIfNull(existing);
        ArgumentNullException.ThrowIfNull(added);
        var all = existing.Concat(added).ToList();
        var rows = new List<FeasibilityRow>();
        if (all.Count == 0)
        {
            return new FeasibilityReport(rows);
        }

        var first = all.Min(a => a.StartMonth);
        var last = all.Max(a => a.StartMonth + a.Months - 1);
        var partitions = timeline.Partitions.Concat(all.Select(a => a.Partition)).Distinct().Order(StringComparer.Ordinal).ToList();
        foreach (var p in partitions)
        {
            // Per month: sums by difference arrays, so a round of thousands of awards over a year is linear.
            var span = last - first + 1;
            var ex = new long[span + 1];
            var ad = new long[span + 1];
            foreach (var a in existing)
            {
                if (a.Partition == p)
                {
                    ex[a.StartMonth - first] += a.Gpus;
                    ex[a.StartMonth - first + a.Months] -= a.Gpus;
                }
            }

            foreach (var a in added)
            {
                if (a.Partition == p)
                {
                    ad[a.StartMonth - first] += a.Gpus;
                    ad[a.StartMonth - first + a.Months] -= a.Gpus;
                }
            }

            long e = 0, d = 0;
            for (var m = 0; m < span; m++)
            {
                e += ex[m];
                d += ad[m];
                rows.Add(new FeasibilityRow(p, first + m, timeline.GpusAt(p, first + m), (int)e, (int)d));
            }
        }

        return new FeasibilityReport(rows);
    }
}
