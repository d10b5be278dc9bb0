using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Placement: fragmentation-aware best fit over the pool indexes.
public sealed partial class SchedulerEngine
{
    private readonly List<int> _leafScratch = [];
    private readonly List<int> _nodeScratch = [];

    private struct Plan
    {
        public int Pool;
        public int Node;
        public int Gpu;
        public int[]? Nodes;
    }

    private List<int> ActivePools(int p) => _c.ActivePools[p];

    private static bool Eligible(Pool pool, JobRecord job, long end) => pool.Kind switch
    {
        PoolKind.General => true,
        PoolKind.Hold => pool.HolderJob == job.Id || (end <= pool.UsableUntil && !pool.HoldsReserved),
        PoolKind.Advance => pool.UsableUntil == long.MinValue ? pool.OwnerProject == job.Project && pool.OwnerProject >= 0 : end <= pool.UsableUntil,
        _ => false,
    };

    /// <summary>Tries the pools a job may use, own hold and own reservation first, the general pool last.</summary>
    private bool TryPlaceCore(JobRecord job, int p, in Shape shape, long end, out Plan plan)
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
                var size = Fleet.Nodes[n].Gpus;
                if (size >= g && (candidate < 0 || size < Fleet.Nodes[candidate].Gpus) && NodeFits(n))
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
        var node = Fleet.Nodes[n];
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
        int lo = 0, hi = Fleet.Nodes.Count - 1;
        while (lo < hi)
        {
            var mid = (lo + hi + 1) >> 1;
            if (Fleet.Nodes[mid].FirstGpu <= gpu)
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
                    var gpus = Fleet.Nodes[set[i]].Gpus;
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
    private long HeldBy(in Shape shape, in Plan plan)
    {
        if (shape.Kind != ShapeKind.Gang)
        {
            return shape.HeldMilli;
        }

        long held = 0;
        foreach (var n in plan.Nodes!)
        {
            held += (long)Fleet.Nodes[n].Gpus * Milli;
        }

        return held;
    }

    /// <summary>Applies a plan: takes the GPUs and records the job as running.</summary>
    private JobStart Commit(JobRecord job, int p, in Shape shape, in Plan plan, int allocation, long now)
    {
        GpuSlot[] slots;
        int[] nodes;
        long held;
        Span<int> scratch = stackalloc int[Core.Fleet.FleetBuilder.MaxGpusPerNode];
        switch (shape.Kind)
        {
            case ShapeKind.Share:
                _c.ChangeGpu(plan.Node, plan.Gpu, shape.Amount);
                slots = [new GpuSlot(plan.Node, plan.Gpu - Fleet.Nodes[plan.Node].FirstGpu, shape.Amount)];
                nodes = [plan.Node];
                held = shape.Amount;
                break;
            case ShapeKind.SingleNode:
            {
                var node = Fleet.Nodes[plan.Node];
                var c = 0;
                slots = new GpuSlot[shape.Amount];
                for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus && c < shape.Amount; g++)
                {
                    if (_c.GpuUsed[g] == 0)
                    {
                        scratch[c] = g;
                        slots[c] = new GpuSlot(plan.Node, g - node.FirstGpu, Milli);
                        c++;
                    }
                }

                _c.ChangeGpus(plan.Node, scratch[..c], Milli);
                nodes = [plan.Node];
                held = (long)shape.Amount * Milli;
                break;
            }

            default:
            {
                nodes = plan.Nodes!;
                slots = new GpuSlot[nodes.Length * shape.Amount];
                held = 0;
                var s = 0;
                foreach (var n in nodes)
                {
                    var node = Fleet.Nodes[n];
                    for (var g = 0; g < node.Gpus; g++)
                    {
                        scratch[g] = node.FirstGpu + g;
                        if (g < shape.Amount)
                        {
                            slots[s++] = new GpuSlot(n, g, Milli);
                        }
                    }

                    _c.ChangeGpus(n, scratch[..node.Gpus], Milli);
                    held += (long)node.Gpus * Milli;
                }

                break;
            }
        }

        RemovePending(job);
        return MarkRunning(job, p, slots, nodes, held, shape.Kind == ShapeKind.Gang, allocation, now);
    }

    private JobStart MarkRunning(JobRecord job, int p, GpuSlot[] slots, int[] nodes, long held, bool exclusive, int allocation, long now)
    {
        job.State = JobState.Running;
        Decide(job, PendingReason.New, -1);
        job.Placement = new Placement(p, slots, nodes, checked((int)held));
        job.Partition = p;
        job.Allocation = allocation;
        job.StartTicks = now;
        job.EndByTicks = now + job.WalltimeTicks;
        job.Preempting = false;
        job.Exclusive = exclusive;
        Ledger.Take(job);
        foreach (var n in nodes)
        {
            _c.NodeJobs[n].Add(job);
        }

        _c.RunningByEnd[p].Add((job.EndByTicks, job.Id));
        if (job.PriorityClass == PriorityClass.Preemptible)
        {
            _c.RunningPreemptible[p].Add((job.EndByTicks, job.Id));
        }

        _admission.Quota.Apply(job.Project, p, held);
        _admission.Commit(allocation, held, job.WalltimeTicks);

        _fairShare.AddRunning(job.User, held);
        if (_lastFairShareTicks != long.MinValue && now > _lastFairShareTicks)
        {
            // The next decay step counts running jobs from the last step; this job only runs from now.
            _fairShare.AddUsage(job.User, -held * TimeSpan.FromTicks(now - _lastFairShareTicks).TotalSeconds);
        }

        _running++;
        var allocationId = allocation >= 0 ? _admission.Grants[allocation].Spec.Id : "";
        return new JobStart(job.Id, job.Placement, allocationId, new DateTimeOffset(now, TimeSpan.Zero));
    }

    private static double GpuHours(long milli, long ticks) => Admission.GpuHours(milli, ticks);
}
