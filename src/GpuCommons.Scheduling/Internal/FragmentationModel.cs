using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// FGD's fragmentation measure (Weng et al., ATC'23) over the recent workload: the popularity of task shapes from a
/// sliding window of arrivals, and the expected fragmentation F_n = Σ_m p_m F_n(m) of one node, where F_n(m) is the
/// node's free GPU capacity that a task of shape m cannot use (all of it when m does not fit the node at all: too few
/// free GPUs, cores or memory). To that it adds the free GPU capacity that the node's free cores or memory could not
/// feed at the window's average cores and memory per GPU: FGD's F_n(m) sees a node's cores run out only once no shape
/// fits any more, and on a fleet where some nodes have fewer cores per GPU than the workload asks for, this is what
/// steers core-hungry shares to the nodes with cores to spare.
/// </summary>
internal sealed class FragmentationModel
{
    /// <summary>Arrivals the popularity is taken over.</summary>
    public const int Window = 2_000;

    /// <summary>Most distinct shapes scored (the most frequent in the window): bounds the cost of one score.</summary>
    public const int MaxShapes = 32;

    private readonly Key[] _ring = new Key[Window];
    private int _next;
    private int _count;
    private readonly Dictionary<Key, int> _counts = [];
    private int _sinceRefresh = int.MaxValue;
    private Key[] _shapes = [];
    private double[] _weights = [];
    private double _cpusPerMilli;
    private double _memPerMilli;

    /// <summary>A task shape on one node: a share (<see cref="Milli"/> &lt; 1000, one GPU) or whole GPUs, with cores and memory.</summary>
    public readonly record struct Key(int Milli, int Gpus, int Cpus, long MemoryMiB);

    public int ShapeCount
    {
        get
        {
            Refresh();
            return _shapes.Length;
        }
    }

    /// <summary>Records one arrival's per-node demand (a share or whole GPUs on one node).</summary>
    public void Observe(in ResourceDemand demand)
    {
        var key = demand.GpuMilli < JobSpec.MilliPerGpu
            ? new Key(demand.GpuMilli, 1, demand.Cpus, demand.MemoryMiB)
            : new Key(JobSpec.MilliPerGpu, demand.GpuMilli / JobSpec.MilliPerGpu, demand.Cpus, demand.MemoryMiB);
        if (_count == Window)
        {
            var old = _ring[_next];
            if (--_counts[old] == 0)
            {
                _counts.Remove(old);
            }
        }
        else
        {
            _count++;
        }

        _ring[_next] = key;
        _next = (_next + 1) % Window;
        _counts[key] = _counts.GetValueOrDefault(key) + 1;
        _sinceRefresh = _sinceRefresh == int.MaxValue ? int.MaxValue : _sinceRefresh + 1;
    }

    private void Refresh()
    {
        // The most frequent shapes change slowly: recompute after a share of the window has turned over.
        if (_sinceRefresh < Math.Clamp(_count / 32, 1, 64))
        {
            return;
        }

        var top = _counts.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key.Milli).ThenBy(kv => kv.Key.Gpus).ThenBy(kv => kv.Key.Cpus).ThenBy(kv => kv.Key.MemoryMiB).Take(MaxShapes).ToArray();
        double total = top.Sum(kv => kv.Value);
        _shapes = [.. top.Select(kv => kv.Key)];
        _weights = [.. top.Select(kv => kv.Value / total)];
        double milli = 0, cpus = 0, mem = 0;
        for (var i = 0; i < _shapes.Length; i++)
        {
            var m = _shapes[i].Milli < JobSpec.MilliPerGpu ? _shapes[i].Milli : _shapes[i].Gpus * JobSpec.MilliPerGpu;
            milli += _weights[i] * m;
            cpus += _weights[i] * _shapes[i].Cpus;
            mem += _weights[i] * _shapes[i].MemoryMiB;
        }

        _cpusPerMilli = milli > 0 ? cpus / milli : 0;
        _memPerMilli = milli > 0 ? mem / milli : 0;
        _sinceRefresh = 0;
    }

    /// <summary>
    /// Expected fragmentation of one node, in thousandths of a GPU: <paramref name="free"/> holds the free thousandths of
    /// each of its GPUs; <paramref name="freeCpus"/> and <paramref name="freeMemoryMiB"/> what is left of its cores and memory.
    /// </summary>
    public double Expected(ReadOnlySpan<int> free, long freeCpus, long freeMemoryMiB)
    {
        Refresh();
        long total = 0, partial = 0;
        var fullFree = 0;
        foreach (var f in free)
        {
            total += f;
            if (f == JobSpec.MilliPerGpu)
            {
                fullFree++;
            }
            else
            {
                partial += f;
            }
        }

        if (total == 0)
        {
            return 0;
        }

        double sum = 0;
        for (var i = 0; i < _shapes.Length; i++)
        {
            sum += _weights[i] * Of(_shapes[i], free, total, partial, fullFree, freeCpus, freeMemoryMiB);
        }

        {
            // Cores or memory exhausted before GPUs: the GPU capacity the node's free cores or memory cannot feed at the
            // window's average cores and memory per GPU also counts as lost (FGD's F_n(m) only sees it once no shape fits).
            double usable = total;
            if (_cpusPerMilli > 0)
            {
                usable = Math.Min(usable, freeCpus / _cpusPerMilli);
            }

            if (_memPerMilli > 0)
            {
                usable = Math.Min(usable, freeMemoryMiB / _memPerMilli);
            }

            sum += total - Math.Max(0, usable);
        }

        return sum;
    }

    /// <summary>F_n(m): as <c>FgdBenchmark.NodeFragmentMilli</c>, the reference.</summary>
    private static long Of(in Key m, ReadOnlySpan<int> free, long total, long partial, int fullFree, long freeCpus, long freeMemoryMiB)
    {
        if (m.Cpus > freeCpus || m.MemoryMiB > freeMemoryMiB)
        {
            return total;
        }

        if (m.Milli < JobSpec.MilliPerGpu)
        {
            long smaller = 0;
            foreach (var f in free)
            {
                if (f < m.Milli)
                {
                    smaller += f;
                }
            }

            return smaller < total ? smaller : total;
        }

        return fullFree >= m.Gpus ? partial : total;
    }
}
