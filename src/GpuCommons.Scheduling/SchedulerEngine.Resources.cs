using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Cores, memory, GPU models and features (docs/scheduling.md, "Resources"): the fit checks placement makes at the
// candidates the GPU indexes return, and fragmentation-aware (FGD) placement of shares and of whole GPUs that ask for
// more than the partition's default cores or memory per GPU. The per-node state is in ResourceLedger.
public sealed partial class SchedulerEngine
{
    private ResourceLedger? _ledgerState;
    private readonly FragmentationModel _fragmentation = new();
    private readonly List<(int Node, int Gpu)> _fgdCandidates = [];

    /// <summary>Free cores and memory per node.</summary>
    private ResourceLedger Ledger => _ledgerState ??= new ResourceLedger(Fleet);

    // The job being placed: set by BeginFit for one TryPlace.
    private JobRecord? _fitJob;
    private ResourceDemand _fitDemand;
    /// <summary>False when every node passes (nothing tracked in the partition, no model or feature asked): today's fast path.</summary>
    private bool _fitCheck;
    private bool _fitConstrained;
    /// <summary>Place this job fragmentation-aware.</summary>
    private bool _fitFgd;

    private void BeginFit(JobRecord job, int p, in Shape shape)
    {
        var part = Fleet.Partitions[p];
        _fitJob = job;
        _fitConstrained = job.Request.GpuModels is not null || job.Request.Features is not null;
        _fitCheck = _fitConstrained || Ledger.TrackedPartition[p];
        _fitDemand = _fitCheck ? ResourceLedger.DemandOf(job.Request, part, shape) : default;
        _fitFgd = !_explaining && Options.FragmentationAware && Ledger.TrackedPartition[p] && shape.Kind switch
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
            ? Ledger.Fits(n, _fitDemand) && (!_fitConstrained || ResourceDemand.Eligible(_fitJob!.Request, Fleet.Nodes[n]))
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
        var node = Fleet.Nodes[n];
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
    private PendingReason ExplainResources(JobRecord job, ulong admissible, long end, PendingReason reason)
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

    /// <summary>
    /// The partitions a job may use are those with a node that is eligible for it and big enough for its demand when
    /// empty; a job that no partition can ever hold is refused at submit (naming the field, from <see cref="ResourceDemand.CheckFleet"/>).
    /// </summary>
    private SubmitResult? CheckResources(JobSpec spec)
    {
        var constrained = spec.GpuModels is not null || spec.Features is not null;
        if (!Ledger.Tracked && !constrained)
        {
            return null;
        }

        // Fast answer first (most jobs fit the first node looked at); the full check only to name what is wrong.
        foreach (var part in Fleet.Partitions)
        {
            if (spec.Partition is { } name && !string.Equals(name, part.Name, StringComparison.Ordinal))
            {
                continue;
            }

            var demand = ResourceDemand.For(spec, part);
            var needed = spec.IsFractional ? 1 : Math.Max(1, (int)Math.Ceiling(spec.GpuMilli / (double)Math.Max(1, demand.GpuMilli)));
            foreach (var n in part.Nodes)
            {
                var node = Fleet.Nodes[n];
                if (demand.GpuMilli <= node.Gpus * JobSpec.MilliPerGpu && demand.FitsOnEmpty(node) && (!constrained || ResourceDemand.Eligible(spec, node)) && --needed == 0)
                {
                    return null;
                }
            }
        }

        return ResourceDemand.CheckFleet(spec, Fleet) is { } error ? new SubmitResult(false, error) : null;
    }

    /// <summary>Clears the partitions where no node could ever hold the job (wrong model, features, or too few cores or memory).</summary>
    private void RestrictShapesToEligible(JobRecord job)
    {
        var spec = job.Request;
        var constrained = spec.GpuModels is not null || spec.Features is not null;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((job.ShapeMask & (1UL << p)) == 0 || (!constrained && !Ledger.TrackedPartition[p]))
            {
                continue;
            }

            var part = Fleet.Partitions[p];
            var demand = ResourceLedger.DemandOf(spec, part, job.Shapes[p]);
            var any = false;
            foreach (var n in part.Nodes)
            {
                var node = Fleet.Nodes[n];
                if (node.Gpus * JobSpec.MilliPerGpu >= demand.GpuMilli && demand.FitsOnEmpty(node) && (!constrained || ResourceDemand.Eligible(spec, node)))
                {
                    any = true;
                    break;
                }
            }

            if (!any)
            {
                job.ShapeMask &= ~(1UL << p);
            }
        }
    }

    /// <summary>Adds a new job's shape to the popularity window of fragmentation-aware placement.</summary>
    private void ObserveArrival(JobRecord job)
    {
        if (!Ledger.Tracked || !Options.FragmentationAware)
        {
            return;
        }

        foreach (var p in _partitionOrder)
        {
            if ((job.ShapeMask & (1UL << p)) != 0)
            {
                var shape = job.Shapes[p];
                if (shape.Kind != ShapeKind.Gang)
                {
                    _fragmentation.Observe(ResourceLedger.DemandOf(job.Request, Fleet.Partitions[p], shape));
                }

                return;
            }
        }
    }

    // ---- Fragmentation-aware placement ---------------------------------------------------------------------------

    /// <summary>Rise of expected fragmentation of the last fragmentation-aware choice (NaN: the last placement was not one).</summary>
    private double _fgdScore = double.NaN;

    /// <summary>
    /// Tries the pools a job may use in partition <paramref name="p"/>. A fragmentation-aware placement that another
    /// partition the job may use, of the same rate and later in the order, would make with less fragmentation is
    /// declined: the walk then tries that partition. Partitions of different rates keep their order (cheapest first).
    /// </summary>
    private bool TryPlace(JobRecord job, int p, in Shape shape, long end, out Plan plan)
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
        var rate = Fleet.Partitions[p].RatePerGpuHour;
        var later = false;
        var better = false;
        foreach (var q in _partitionOrder)
        {
            if (q == p)
            {
                later = true;
                continue;
            }

            if (!later || (job.ShapeMask & (1UL << q)) == 0 || Fleet.Partitions[q].RatePerGpuHour != rate)
            {
                continue;
            }

            ref readonly var other = ref job.Shapes[q];
            if (Admit(job, q, other.HeldMilli, _walkNow).Reason is null && TryPlaceCore(job, q, other, end, out _) && _fitFgd && !double.IsNaN(_fgdScore) && _fgdScore < score - 1e-9)
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
        var cap = Options.FragmentationCandidates;
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
        AddPartialCandidates(pool, g, Options.FragmentationCandidates);
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
        _fullShapes.Add((Fleet.Nodes[first].Gpus, Ledger.FreeCpus(first), Ledger.FreeMemoryMiB(first)));
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
                if (Fleet.Nodes[n].Gpus >= g && NodeFits(n) && _fullShapes.Add((Fleet.Nodes[n].Gpus, Ledger.FreeCpus(n), Ledger.FreeMemoryMiB(n))))
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
            _uniformPartition = new bool[Fleet.Partitions.Count];
            for (var q = 0; q < Fleet.Partitions.Count; q++)
            {
                var nodes = Fleet.Partitions[q].Nodes;
                var a = nodes.Count > 0 ? Fleet.Nodes[nodes[0]] : null;
                _uniformPartition[q] = a is null || nodes.All(n => Fleet.Nodes[n].Gpus == a.Gpus && Fleet.Nodes[n].Cpus == a.Cpus && Fleet.Nodes[n].MemoryCapacityMiB == a.MemoryCapacityMiB);
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
            var node = Fleet.Nodes[n];
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
