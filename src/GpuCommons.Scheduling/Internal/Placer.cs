using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Placement: where a job would run in a partition, as a <see cref="Plan"/> (its pool, node, GPU or gang nodes), found
/// from the pools' free-capacity indexes without scanning every node; best fit, or fragmentation-aware (FGD) for shares
/// and for whole GPUs that ask for more than the partition's default cores or memory per GPU. It owns the fit checks of
/// cores, memory, GPU models and features at the candidates the indexes return (the per-node state is in
/// <see cref="Ledger"/>), and the reason a job that found no room is given (<see cref="ExplainResources"/>). It reads the
/// cluster state and changes nothing: the engine commits a plan.
/// </summary>
internal sealed class Placer(Fleet fleet, SchedulerOptions options, ClusterState cluster, ResourceLedger ledger, int[] partitionOrder, Func<JobRecord, int, long, bool> admitted)
{
    private const int Milli = JobSpec.MilliPerGpu;
    private readonly Fleet _fleet = fleet;
    private readonly SchedulerOptions _options = options;
    private readonly ClusterState _c = cluster;
    private readonly int[] _partitionOrder = partitionOrder;

    private readonly List<int> _leafScratch = [];
    private readonly List<int> _nodeScratch = [];
    private readonly FragmentationModel _fragmentation = new();
    private readonly List<(int Node, int Gpu)> _fgdCandidates = [];

    /// <summary>Free cores and memory per node.</summary>
    public ResourceLedger Ledger { get; } = ledger;

    /// <summary>The popularity window of shapes that fragmentation-aware placement scores against.</summary>
    public FragmentationModel Fragmentation => _fragmentation;

    // The job being placed: set by BeginFit for one TryPlace.
    private JobRecord? _fitJob;
    private ResourceDemand _fitDemand;
    /// <summary>False when every node passes (nothing tracked in the partition, no model or feature asked): today's fast path.</summary>
    private bool _fitCheck;
    private bool _fitConstrained;
    /// <summary>Place this job fragmentation-aware.</summary>
    private bool _fitFgd;

    /// <summary>Where a job would run: its pool, and its node and GPU (one node) or its nodes (a gang).</summary>
    public struct Plan
    {
        public int Pool;
        public int Node;
        public int Gpu;
        public int[]? Nodes;
    }

    private List<int> ActivePools(int p) => _c.ActivePools[p];

    public static bool Eligible(Pool pool, JobRecord job, long end) => pool.Kind switch
    {
        PoolKind.General => true,
        PoolKind.Hold => pool.HolderJob == job.Id || (end <= pool.UsableUntil && !pool.HoldsReserved),
        PoolKind.Advance => pool.UsableUntil == long.MinValue ? pool.OwnerProject == job.Project && pool.OwnerProject >= 0 : end <= pool.UsableUntil,
        _ => false,
    };

    /// <summary>Tries the pools a job may use, own hold and own reservation first, the general pool last.</summary>
    public bool TryPlaceCore(JobRecord job, int p, in Shape shape, long end, out Plan plan)
    {
        plan = default;
        BeginFit(job, p, shape);
        if (job.HeldPool >= 0 && _c.Pools[job.HeldPool].Partition.Index == p && TryPlaceIn(_c.Pools[job.HeldPool], shape, ref plan))
        {
            return true;
        }

        // Cheap filter: a pool needs at least one node's worth of the job free (a gang's GPUs per node, not the typical
        // node size, which on a partition of mixed sizes may be more than the nodes the gang can use).
        var minFree = shape.Kind == ShapeKind.Gang ? (long)shape.Amount * Milli : shape.HeldMilli;
        var pools = _c.ActivePools[p];
        for (var pass = 0; pass < 2; pass++)
        {
            for (var i = 0; i < pools.Count; i++)
            {
                var pool = _c.Pools[pools[i]];
                if (pool.Id == job.HeldPool || pool.FreeMilli < minFree || (pass == 0) == (pool.Kind == PoolKind.General))
                {
                    continue;
                }

                if (Eligible(pool, job, end) && TryPlaceIn(pool, shape, ref plan))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private bool TryPlaceIn(Pool pool, in Shape shape, ref Plan plan)
    {
        plan.Pool = pool.Id;
        return shape.Kind switch
        {
            ShapeKind.SingleNode => TrySingle(pool, shape.Amount, ref plan),
            ShapeKind.Share => TryShare(pool, shape.Amount, ref plan),
            _ => TryGang(pool, shape.Nodes, shape.Amount, ref plan),
        };
    }

    private bool TrySingle(Pool pool, int g, ref Plan plan)
    {
        if (_fitFgd)
        {
            return TrySingleFragmentationAware(pool, g, ref plan);
        }

        var partial = pool.Partial;
        for (var k = g; k < partial.Length; k++)
        {
            if (partial[k].Count > 0 && FirstFit(partial[k]) is var first and >= 0)
            {
                plan.Node = first;
                return true;
            }
        }

        var n = PickFullNode(pool, g);
        plan.Node = n;
        return n >= 0;
    }

    /// <summary>A fully free node with at least <paramref name="g"/> GPUs from the leaf with the fewest fully free nodes (keeps big free blocks for gangs).</summary>
    private int PickFullNode(Pool pool, int g)
    {
        if (pool.FullFree == 0)
        {
            return -1;
        }

        var p = pool.Partition.Index;
        var homogeneous = pool.Partition.MaxGpusPerNode == pool.Partition.TypicalGpusPerNode && _c.NodesAtLeast[p][pool.Partition.MaxGpusPerNode] == pool.Partition.Nodes.Count;
        var best = -1;
        var bestCount = int.MaxValue;
        var bestNode = -1;
        foreach (var leaf in _c.LeavesUnder[p][0])
        {
            var set = pool.FullByDomain[leaf];
            if (set is null || set.Count == 0 || set.Count >= bestCount)
            {
                continue;
            }

            if (homogeneous)
            {
                if (FirstFit(set) is var first and >= 0)
                {
                    best = leaf;
                    bestCount = set.Count;
                    bestNode = first;
                }

                continue;
            }

            // Mixed node sizes: the smallest node that holds g GPUs.
            var candidate = -1;
            for (var i = 0; i < set.Count; i++)
            {
                var n = set[i];
                var size = _fleet.Nodes[n].Gpus;
                if (size >= g && (candidate < 0 || size < _fleet.Nodes[candidate].Gpus) && NodeFits(n))
                {
                    candidate = n;
                }
            }

            if (candidate >= 0)
            {
                best = leaf;
                bestCount = set.Count;
                bestNode = candidate;
            }
        }

        return best >= 0 ? bestNode : -1;
    }

    private bool TryShare(Pool pool, int milli, ref Plan plan)
    {
        if (_fitFgd)
        {
            return TryShareFragmentationAware(pool, milli, ref plan);
        }

        var key = (long)milli << 32;
        if (pool.Shared.Count > 0 && pool.Shared.Max >= key)
        {
            if (!_fitCheck)
            {
                var best = pool.Shared.GetViewBetween(key, long.MaxValue).Min;
                plan.Gpu = (int)(best & 0xFFFFFFFF);
                plan.Node = NodeOfGpu(plan.Gpu);
                return true;
            }

            foreach (var entry in pool.Shared.GetViewBetween(key, long.MaxValue))
            {
                var gpu = (int)(entry & 0xFFFFFFFF);
                var node = NodeOfGpu(gpu);
                if (NodeFits(node))
                {
                    plan.Gpu = gpu;
                    plan.Node = node;
                    return true;
                }
            }
        }

        if (!TrySingle(pool, 1, ref plan))
        {
            return false;
        }

        plan.Gpu = FirstFreeGpu(plan.Node);
        return true;
    }

    private int FirstFreeGpu(int n)
    {
        var node = _fleet.Nodes[n];
        for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
        {
            if (_c.GpuUsed[g] == 0)
            {
                return g;
            }
        }

        throw new InvalidOperationException($"node {node.Name} has no free GPU");
    }

    private int NodeOfGpu(int gpu)
    {
        // Binary search over the nodes' first GPU numbers.
        int lo = 0, hi = _fleet.Nodes.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) >> 1;
            if (_fleet.Nodes[mid].FirstGpu <= gpu)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return lo;
    }

    /// <summary>Whole nodes inside the smallest topology domain that has enough of them, best fit within a level.</summary>
    private bool TryGang(Pool pool, int nodes, int perNode, ref Plan plan)
    {
        if (pool.FullFree < nodes)
        {
            return false;
        }

        var p = pool.Partition.Index;
        var levels = _c.DomainsByDepth[p];
        for (var depth = levels.Length - 1; depth >= 0; depth--)
        {
            var best = -1;
            var bestCount = int.MaxValue;
            foreach (var d in levels[depth])
            {
                var c = pool.DomainFull[d];
                if (c >= nodes && c < bestCount)
                {
                    best = d;
                    bestCount = c;
                }
            }

            if (best >= 0 && GatherFull(pool, best, nodes, perNode) is { } picked)
            {
                plan.Nodes = picked;
                plan.Node = picked[0];
                return true;
            }
        }

        return false;
    }

    /// <summary>Picks fully free nodes under a domain, from the fullest leaves first so the job spans few leaves.</summary>
    private int[]? GatherFull(Pool pool, int domain, int nodes, int perNode)
    {
        var p = pool.Partition.Index;
        _leafScratch.Clear();
        foreach (var leaf in _c.LeavesUnder[p][domain])
        {
            if (pool.FullByDomain[leaf] is { Count: > 0 })
            {
                _leafScratch.Add(leaf);
            }
        }

        _leafScratch.Sort((a, b) =>
        {
            var c = pool.FullByDomain[b]!.Count.CompareTo(pool.FullByDomain[a]!.Count);
            return c != 0 ? c : a.CompareTo(b);
        });
        var picked = new int[nodes];
        var count = 0;

        // A gang holds whole nodes: with mixed node sizes, take the smallest nodes that fit first (fewest stranded GPUs).
        var part = pool.Partition;
        var mixed = part.MaxGpusPerNode != part.TypicalGpusPerNode || _c.NodesAtLeast[p][part.MaxGpusPerNode] != part.Nodes.Count;
        for (var size = perNode; size <= part.MaxGpusPerNode; size++)
        {
            foreach (var leaf in _leafScratch)
            {
                var set = pool.FullByDomain[leaf]!;
                for (var i = 0; i < set.Count && count < nodes; i++)
                {
                    var gpus = _fleet.Nodes[set[i]].Gpus;
                    if ((mixed ? gpus == size : gpus >= perNode) && NodeFits(set[i]))
                    {
                        picked[count++] = set[i];
                    }
                }

                if (count == nodes)
                {
                    return picked;
                }
            }

            if (!mixed)
            {
                break;
            }
        }

        return null;
    }

    /// <summary>Capacity the plan will really hold: whole nodes for a gang, whatever their size.</summary>
    public long HeldBy(in Shape shape, in Plan plan)
    {
        if (shape.Kind != ShapeKind.Gang)
        {
            return shape.HeldMilli;
        }

        long held = 0;
        foreach (var n in plan.Nodes!)
        {
            held += (long)_fleet.Nodes[n].Gpus * Milli;
        }

        return held;
    }

    /// <summary>Sets up the fit checks for one placement of <paramref name="job"/> in partition <paramref name="p"/>.</summary>
    private void BeginFit(JobRecord job, int p, in Shape shape)
    {
        var part = _fleet.Partitions[p];
        _fitJob = job;
        _fitConstrained = job.Request.GpuModels is not null || job.Request.Features is not null;
        _fitCheck = _fitConstrained || Ledger.TrackedPartition[p];
        _fitDemand = _fitCheck ? ResourceLedger.DemandOf(job.Request, part, shape) : default;
        _fitFgd = !_explaining && _options.FragmentationAware && Ledger.TrackedPartition[p] && shape.Kind switch
        {
            ShapeKind.Share => true,
            ShapeKind.SingleNode => AsksForCoresOrMemory(job.Request) || _fitDemand.Cpus > (long)part.DefCpusPerGpu * shape.Amount || _fitDemand.MemoryMiB > part.DefMemoryMiBPerGpu * shape.Amount,
            _ => false,
        };
    }

    /// <summary>The job states its cores or memory (per GPU or per node) rather than taking the partition's defaults.</summary>
    private static bool AsksForCoresOrMemory(JobSpec spec) =>
        spec.CpusPerGpu is not null || spec.CpusPerNode is not null || spec.MemoryMiBPerGpu is not null || spec.MemoryMiBPerNode is not null;

    /// <summary>True when node <paramref name="n"/> has the cores and memory free that the job being placed needs, and the model and features it asks for.</summary>
    private bool NodeFits(int n) =>
        !_fitCheck || (_fitRelax == FitRelax.None
            ? Ledger.Fits(n, _fitDemand) && (!_fitConstrained || ResourceDemand.Eligible(_fitJob!.Request, _fleet.Nodes[n]))
            : NodeFitsRelaxed(n));

    // ---- Why a job waits for resources ---------------------------------------------------------------------------

    /// <summary>Checks left out of <see cref="NodeFits"/> while explaining a wait (<see cref="ExplainResources"/>).</summary>
    [Flags]
    private enum FitRelax
    {
        None = 0,
        GpuModel = 1,
        Features = 2,
        Cpus = 4,
        Memory = 8,
        All = GpuModel | Features | Cpus | Memory,
    }

    private FitRelax _fitRelax;

    /// <summary>Placement is being tried only to explain a wait: no fragmentation scoring.</summary>
    private bool _explaining;

    private bool NodeFitsRelaxed(int n)
    {
        var spec = _fitJob!.Request;
        var node = _fleet.Nodes[n];
        return ((_fitRelax & FitRelax.Cpus) != 0 || _fitDemand.Cpus <= Ledger.FreeCpus(n))
            && ((_fitRelax & FitRelax.Memory) != 0 || _fitDemand.MemoryMiB <= Ledger.FreeMemoryMiB(n))
            && ((_fitRelax & FitRelax.GpuModel) != 0 || spec.GpuModels is not { } models || models.Any(m => string.Equals(m, node.GpuModel, StringComparison.OrdinalIgnoreCase)))
            && ((_fitRelax & FitRelax.Features) != 0 || node.HasFeatures(spec.Features));
    }

    /// <summary>
    /// The reason of a job that found no room in the partitions of <paramref name="admissible"/>: when its GPUs would
    /// fit now if GPUs were all it asked for, the first check that leaves it no node, in the order GPU model, features,
    /// cores, memory (<see cref="PendingReason.GpuModel"/>, <see cref="PendingReason.Features"/>,
    /// <see cref="PendingReason.Cpus"/>, <see cref="PendingReason.Memory"/>); otherwise <paramref name="reason"/>.
    /// Placement is tried without fragmentation scoring: only whether some node fits matters.
    /// </summary>
    public PendingReason ExplainResources(JobRecord job, ulong admissible, long end, PendingReason reason)
    {
        var spec = job.Request;
        if (!Ledger.Tracked && spec.GpuModels is null && spec.Features is null)
        {
            return reason;
        }

        _explaining = true;
        try
        {
            // Each step checks one more resource; the first step where no partition holds the job names the reason.
            ReadOnlySpan<(FitRelax Relax, PendingReason Reason)> steps =
            [
                (FitRelax.All, reason),
                (FitRelax.Features | FitRelax.Cpus | FitRelax.Memory, PendingReason.GpuModel),
                (FitRelax.Cpus | FitRelax.Memory, PendingReason.Features),
                (FitRelax.Memory, PendingReason.Cpus),
                (FitRelax.None, PendingReason.Memory),
            ];
            foreach (var (relax, failed) in steps)
            {
                _fitRelax = relax;
                if (!FitsSomewhere(job, admissible, end))
                {
                    return failed;
                }
            }

            // It fits with every check: something other than resources holds it (a reservation).
            return reason;
        }
        finally
        {
            _fitRelax = FitRelax.None;
            _explaining = false;
        }
    }

    private bool FitsSomewhere(JobRecord job, ulong admissible, long end)
    {
        foreach (var p in _partitionOrder)
        {
            if ((admissible & (1UL << p)) != 0 && TryPlaceCore(job, p, job.Shapes[p], end, out _))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The first node of the set that fits the job being placed (-1: none): the set's first node on today's fast path.</summary>
    private int FirstFit(IndexedSet set)
    {
        if (!_fitCheck)
        {
            return set.Count > 0 ? set[0] : -1;
        }

        for (var i = 0; i < set.Count; i++)
        {
            if (NodeFits(set[i]))
            {
                return set[i];
            }
        }

        return -1;
    }

    // ---- Fragmentation-aware placement ---------------------------------------------------------------------------

    /// <summary>Rise of expected fragmentation of the last fragmentation-aware choice (NaN: the last placement was not one).</summary>
    private double _fgdScore = double.NaN;

    /// <summary>
    /// Tries the pools a job may use in partition <paramref name="p"/>. A fragmentation-aware placement that another
    /// partition the job may use, of the same rate and later in the order, would make with less fragmentation is
    /// declined: the walk then tries that partition. Partitions of different rates keep their order (cheapest first).
    /// </summary>
    public bool TryPlace(JobRecord job, int p, in Shape shape, long end, out Plan plan)
    {
        _fgdScore = double.NaN;
        if (!TryPlaceCore(job, p, shape, end, out plan))
        {
            return false;
        }

        if (!_fitFgd || double.IsNaN(_fgdScore) || job.PartitionFilter >= 0 || System.Numerics.BitOperations.PopCount(job.ShapeMask) < 2)
        {
            return true;
        }

        var score = _fgdScore;
        var rate = _fleet.Partitions[p].RatePerGpuHour;
        var later = false;
        var better = false;
        foreach (var q in _partitionOrder)
        {
            if (q == p)
            {
                later = true;
                continue;
            }

            if (!later || (job.ShapeMask & (1UL << q)) == 0 || _fleet.Partitions[q].RatePerGpuHour != rate)
            {
                continue;
            }

            ref readonly var other = ref job.Shapes[q];
            if (admitted(job, q, other.HeldMilli) && TryPlaceCore(job, q, other, end, out _) && _fitFgd && !double.IsNaN(_fgdScore) && _fgdScore < score - 1e-9)
            {
                better = true;
                break;
            }
        }

        BeginFit(job, p, shape);
        _fgdScore = score;
        return !better;
    }

    /// <summary>
    /// A share of a GPU: candidates in today's best-fit order (shared GPUs with the least room that holds it, then a
    /// free GPU on the partly used nodes with the fewest free GPUs, then a free node), at most
    /// <see cref="SchedulerOptions.FragmentationCandidates"/>, each on a node with the cores and memory left; the one
    /// that raises the node's expected fragmentation least wins (ties: the earlier).
    /// </summary>
    private bool TryShareFragmentationAware(Pool pool, int milli, ref Plan plan)
    {
        var cap = _options.FragmentationCandidates;
        _fgdCandidates.Clear();
        var key = (long)milli << 32;
        if (pool.Shared.Count > 0 && pool.Shared.Max >= key)
        {
            var limit = Math.Max(1, cap / 2);
            foreach (var entry in pool.Shared.GetViewBetween(key, long.MaxValue))
            {
                var gpu = (int)(entry & 0xFFFFFFFF);
                var node = NodeOfGpu(gpu);
                if (NodeFits(node))
                {
                    _fgdCandidates.Add((node, gpu));
                    if (_fgdCandidates.Count >= limit)
                    {
                        break;
                    }
                }
            }
        }

        AddPartialCandidates(pool, 1, cap);
        AddFullCandidates(pool, 1, whole: false);

        return PickLeastFragmenting(milli, 0, ref plan);
    }

    /// <summary>Whole GPUs on one node, asking for more cores or memory than the default: the same choice among nodes.</summary>
    private bool TrySingleFragmentationAware(Pool pool, int g, ref Plan plan)
    {
        _fgdCandidates.Clear();
        AddPartialCandidates(pool, g, _options.FragmentationCandidates);
        AddFullCandidates(pool, g, whole: true);

        return PickLeastFragmenting(0, g, ref plan);
    }

    private readonly HashSet<(int Gpus, long Cpus, long MemoryMiB)> _fullShapes = [];
    private bool[]? _uniformPartition;

    /// <summary>
    /// Fully free nodes that fit the job: first the one best fit takes (the leaf with the fewest free nodes, which keeps
    /// big free blocks for gangs), then one of each other size (GPUs, cores, memory) in the pool. FGD scores every node,
    /// and free nodes of one size score the same, so one of each size stands for all of them.
    /// </summary>
    private void AddFullCandidates(Pool pool, int g, bool whole)
    {
        var first = PickFullNode(pool, g);
        if (first < 0)
        {
            return;
        }

        _fgdCandidates.Add((first, whole ? -1 : FirstFreeGpu(first)));
        var p = pool.Partition.Index;
        if (IsUniform(p))
        {
            return;
        }

        _fullShapes.Clear();
        _fullShapes.Add((_fleet.Nodes[first].Gpus, Ledger.FreeCpus(first), Ledger.FreeMemoryMiB(first)));
        foreach (var leaf in _c.LeavesUnder[p][0])
        {
            var set = pool.FullByDomain[leaf];
            if (set is null)
            {
                continue;
            }

            for (var i = 0; i < set.Count; i++)
            {
                var n = set[i];
                if (_fleet.Nodes[n].Gpus >= g && NodeFits(n) && _fullShapes.Add((_fleet.Nodes[n].Gpus, Ledger.FreeCpus(n), Ledger.FreeMemoryMiB(n))))
                {
                    _fgdCandidates.Add((n, whole ? -1 : FirstFreeGpu(n)));
                }
            }
        }
    }

    /// <summary>Every node of the partition has the same GPUs, cores and memory.</summary>
    private bool IsUniform(int p)
    {
        if (_uniformPartition is null)
        {
            _uniformPartition = new bool[_fleet.Partitions.Count];
            for (var q = 0; q < _fleet.Partitions.Count; q++)
            {
                var nodes = _fleet.Partitions[q].Nodes;
                var a = nodes.Count > 0 ? _fleet.Nodes[nodes[0]] : null;
                _uniformPartition[q] = a is null || nodes.All(n => _fleet.Nodes[n].Gpus == a.Gpus && _fleet.Nodes[n].Cpus == a.Cpus && _fleet.Nodes[n].MemoryCapacityMiB == a.MemoryCapacityMiB);
            }
        }

        return _uniformPartition[p];
    }

    private void AddPartialCandidates(Pool pool, int g, int cap)
    {
        var partial = pool.Partial;
        for (var k = Math.Max(1, g); k < partial.Length && _fgdCandidates.Count < cap; k++)
        {
            var set = partial[k];
            for (var i = 0; i < set.Count && _fgdCandidates.Count < cap; i++)
            {
                if (NodeFits(set[i]))
                {
                    _fgdCandidates.Add((set[i], g == 1 && _fitJob!.Request.IsFractional ? FirstFreeGpu(set[i]) : -1));
                }
            }
        }
    }

    /// <summary>Scores the candidates: expected fragmentation of the node after the placement less before it.</summary>
    private bool PickLeastFragmenting(int shareMilli, int wholeGpus, ref Plan plan)
    {
        _fgdScore = double.NaN;
        if (_fgdCandidates.Count == 0)
        {
            return false;
        }

        var bestScore = double.PositiveInfinity;
        var best = -1;
        Span<int> free = stackalloc int[Core.Fleet.FleetBuilder.MaxGpusPerNode];
        for (var c = 0; c < _fgdCandidates.Count; c++)
        {
            var (n, gpu) = _fgdCandidates[c];
            var node = _fleet.Nodes[n];
            var f = free[..node.Gpus];
            for (var i = 0; i < node.Gpus; i++)
            {
                f[i] = Milli - _c.GpuUsed[node.FirstGpu + i];
            }

            var cpus = Ledger.FreeCpus(n);
            var mem = Ledger.FreeMemoryMiB(n);
            var before = _fragmentation.Expected(f, cpus, mem);
            if (shareMilli > 0)
            {
                f[gpu - node.FirstGpu] -= shareMilli;
            }
            else
            {
                // Commit takes the node's first free GPUs.
                var left = wholeGpus;
                for (var i = 0; i < node.Gpus && left > 0; i++)
                {
                    if (f[i] == Milli)
                    {
                        f[i] = 0;
                        left--;
                    }
                }
            }

            var after = _fragmentation.Expected(f, cpus - _fitDemand.Cpus, mem - _fitDemand.MemoryMiB);
            var score = after - before;
            if (score < bestScore - 1e-9)
            {
                bestScore = score;
                best = c;
            }
        }

        plan.Node = _fgdCandidates[best].Node;
        plan.Gpu = _fgdCandidates[best].Gpu;
        _fgdScore = bestScore;
        return true;
    }
}
