using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Free CPU cores and memory of every node, next to the engine's GPU state. A job that starts takes
/// <see cref="ResourceDemand.PerNode"/> on each of its nodes (computed once, from the GPUs it got there, and kept on the
/// job); ending, failing, being preempted or rolled back gives exactly that back. An untracked resource starts at
/// <see cref="int.MaxValue"/>/<see cref="long.MaxValue"/> and so never refuses.
/// </summary>
/// <remarks>
/// Also the "shadow" used by backfill reservations: cores and memory that running jobs will have released by some time,
/// so that a reservation's earliest start counts every resource, not only GPUs.
/// </remarks>
internal sealed class ResourceLedger
{
    private readonly Fleet _fleet;
    private readonly int[] _freeCpus;
    private readonly long[] _freeMem;
    private int[] _relCpus = [];
    private long[] _relMem = [];
    private readonly List<int> _relTouched = [];

    public ResourceLedger(Fleet fleet)
    {
        _fleet = fleet;
        var n = fleet.Nodes.Count;
        _freeCpus = new int[n];
        _freeMem = new long[n];
        TrackedPartition = new bool[fleet.Partitions.Count];
        for (var i = 0; i < n; i++)
        {
            var node = fleet.Nodes[i];
            _freeCpus[i] = node.CpuCapacity;
            _freeMem[i] = node.MemoryCapacityMiB;
            if (node.Cpus > 0 || node.MemoryMiB > 0)
            {
                TrackedPartition[node.PartitionIndex] = true;
                Tracked = true;
            }
        }
    }

    /// <summary>True when some node tracks cores or memory (otherwise nothing here ever refuses).</summary>
    public bool Tracked { get; }

    /// <summary>Per partition: some node of it tracks cores or memory.</summary>
    public bool[] TrackedPartition { get; }

    public int FreeCpus(int n) => _freeCpus[n];

    public long FreeMemoryMiB(int n) => _freeMem[n];

    /// <summary>The demand of a job of <paramref name="shape"/> on each node it would use in <paramref name="partition"/>.</summary>
    public static ResourceDemand DemandOf(JobSpec spec, Partition partition, in Shape shape) =>
        ResourceDemand.PerNode(spec, partition, shape.Kind == ShapeKind.Share ? shape.Amount : shape.Amount * JobSpec.MilliPerGpu);

    /// <summary>True when the demand's cores and memory fit what node <paramref name="n"/> has free now.</summary>
    public bool Fits(int n, in ResourceDemand demand) => demand.Cpus <= _freeCpus[n] && demand.MemoryMiB <= _freeMem[n];

    /// <summary>True when the demand fits the node once the shadow releases are counted.</summary>
    public bool FitsAfterRelease(int n, in ResourceDemand demand) =>
        demand.Cpus <= (long)_freeCpus[n] + (n < _relCpus.Length ? _relCpus[n] : 0)
        && demand.MemoryMiB <= SaturatingAdd(_freeMem[n], n < _relMem.Length ? _relMem[n] : 0);

    /// <summary>True when the demand fits the empty node (its whole cores and memory).</summary>
    public bool FitsEmpty(int n, in ResourceDemand demand) => demand.FitsOnEmpty(_fleet.Nodes[n]);

    /// <summary>Takes a running job's cores and memory on each of its nodes (from the GPUs its placement has there).</summary>
    public void Take(JobRecord job)
    {
        var placement = job.Placement!;
        var partition = _fleet.Partitions[placement.Partition];
        var nodes = placement.Nodes;
        var taken = new ResourceDemand[nodes.Count];
        for (var i = 0; i < nodes.Count; i++)
        {
            var n = nodes[i];
            var milli = 0;
            foreach (var s in placement.Slots)
            {
                if (s.Node == n)
                {
                    milli += s.Milli;
                }
            }

            var d = ResourceDemand.PerNode(job.Request, partition, milli);
            if (!Fits(n, d))
            {
                // Undo what this call took, so that a refused start leaves the ledger as it was.
                for (var k = 0; k < i; k++)
                {
                    GiveOne(nodes[k], taken[k]);
                }

                throw new InvalidOperationException($"node {_fleet.Nodes[n].Name} has {_freeCpus[n]} cores and {_freeMem[n]} MiB free, job {job.Id} needs {d}");
            }

            _freeCpus[n] -= d.Cpus;
            _freeMem[n] -= d.MemoryMiB;
            taken[i] = d;
        }

        job.Taken = taken;
    }

    /// <summary>The cores and memory a running job holds on node <paramref name="n"/>; null when it holds none there.</summary>
    public static ResourceDemand? TakenOn(JobRecord job, int n)
    {
        if (job.Taken is not { } taken)
        {
            return null;
        }

        var nodes = job.Placement!.Nodes;
        for (var i = 0; i < nodes.Count; i++)
        {
            if (nodes[i] == n)
            {
                return taken[i];
            }
        }

        return null;
    }

    /// <summary>Gives back exactly what <see cref="Take"/> took for the job.</summary>
    public void Give(JobRecord job)
    {
        var taken = job.Taken ?? throw new InvalidOperationException($"job {job.Id} holds no cores or memory");
        var nodes = job.Placement!.Nodes;
        for (var i = 0; i < nodes.Count; i++)
        {
            GiveOne(nodes[i], taken[i]);
        }

        job.Taken = null;
    }

    private void GiveOne(int n, in ResourceDemand d)
    {
        _freeCpus[n] += d.Cpus;
        _freeMem[n] += d.MemoryMiB;
        if (_freeCpus[n] > _fleet.Nodes[n].CpuCapacity || _freeMem[n] > _fleet.Nodes[n].MemoryCapacityMiB)
        {
            throw new InvalidOperationException($"node {_fleet.Nodes[n].Name} would have more cores or memory free than it has");
        }
    }

    /// <summary>Why a restored job cannot hold its placement's cores and memory (or its nodes are not eligible); null when it can.</summary>
    public string? CheckRestore(JobSpec spec, Partition partition, IReadOnlyList<GpuSlot> slots)
    {
        foreach (var n in slots.Select(s => s.Node).Distinct())
        {
            var milli = slots.Where(s => s.Node == n).Sum(s => s.Milli);
            var d = ResourceDemand.PerNode(spec, partition, milli);
            if (!ResourceDemand.Eligible(spec, _fleet.Nodes[n]))
            {
                return $"node {_fleet.Nodes[n].Name} does not have the GPU model or features the job asks for";
            }

            if (!Fits(n, d))
            {
                return $"node {_fleet.Nodes[n].Name} has {FreeText(n)} free, the job needs {d.Cpus} cores and {d.MemoryMiB} MiB";
            }
        }

        return null;
    }

    private string FreeText(int n) =>
        $"{(_freeCpus[n] >= int.MaxValue / 2 ? "untracked" : _freeCpus[n].ToString(System.Globalization.CultureInfo.InvariantCulture))} cores and {(_freeMem[n] >= long.MaxValue / 2 ? "untracked" : _freeMem[n].ToString(System.Globalization.CultureInfo.InvariantCulture))} MiB";

    // ---- Shadow releases (backfill reservations) -------------------------------------------------------------

    public void ResetShadow()
    {
        if (_relCpus.Length != _freeCpus.Length)
        {
            _relCpus = new int[_freeCpus.Length];
            _relMem = new long[_freeCpus.Length];
            _relTouched.Clear();
            return;
        }

        foreach (var n in _relTouched)
        {
            _relCpus[n] = 0;
            _relMem[n] = 0;
        }

        _relTouched.Clear();
    }

    /// <summary>Counts, in the shadow, the cores and memory a running job will give back on node <paramref name="n"/>.</summary>
    public void ReleaseInShadow(JobRecord running, int n)
    {
        if (running.Taken is not { } taken)
        {
            return;
        }

        var nodes = running.Placement!.Nodes;
        for (var i = 0; i < nodes.Count; i++)
        {
            if (nodes[i] == n)
            {
                if (_relCpus[n] == 0 && _relMem[n] == 0)
                {
                    _relTouched.Add(n);
                }

                _relCpus[n] += taken[i].Cpus;
                _relMem[n] += taken[i].MemoryMiB;
                return;
            }
        }
    }

    // ---- Self-check ------------------------------------------------------------------------------------------

    /// <summary>
    /// Recomputes free cores and memory from the running jobs' placements (from scratch, with <see cref="ResourceDemand.PerNode"/>)
    /// and compares: no node over-committed, what each job holds is what it asked for there, every job on an eligible node.
    /// </summary>
    public string? Verify(IEnumerable<JobRecord> running)
    {
        var cpus = new long[_freeCpus.Length];
        var mem = new long[_freeCpus.Length];
        foreach (var j in running)
        {
            var placement = j.Placement!;
            var partition = _fleet.Partitions[placement.Partition];
            if (j.Taken is null || j.Taken.Length != placement.Nodes.Count)
            {
                return $"running job {j.Id} has no record of the cores and memory it holds";
            }

            for (var i = 0; i < placement.Nodes.Count; i++)
            {
                var n = placement.Nodes[i];
                var milli = placement.Slots.Where(s => s.Node == n).Sum(s => s.Milli);
                var d = ResourceDemand.PerNode(j.Request, partition, milli);
                if (d != j.Taken[i])
                {
                    return $"job {j.Id} holds {j.Taken[i]} on node {_fleet.Nodes[n].Name}, its request there is {d}";
                }

                if (!ResourceDemand.Eligible(j.Request, _fleet.Nodes[n]))
                {
                    return $"job {j.Id} runs on node {_fleet.Nodes[n].Name}, whose GPU model or features it does not allow";
                }

                cpus[n] += d.Cpus;
                mem[n] += d.MemoryMiB;
            }
        }

        for (var n = 0; n < _freeCpus.Length; n++)
        {
            var node = _fleet.Nodes[n];
            if (node.Cpus > 0 && cpus[n] > node.Cpus)
            {
                return $"node {node.Name} is given {cpus[n]} cores, more than its {node.Cpus}";
            }

            if (node.MemoryMiB > 0 && mem[n] > node.MemoryMiB)
            {
                return $"node {node.Name} is given {mem[n]} MiB, more than its {node.MemoryMiB}";
            }

            if (node.CpuCapacity - cpus[n] != _freeCpus[n] || node.MemoryCapacityMiB - mem[n] != _freeMem[n])
            {
                return $"node {node.Name}: running jobs hold {cpus[n]} cores and {mem[n]} MiB, the ledger has {FreeText(n)} free";
            }
        }

        return null;
    }

    private static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;
}
