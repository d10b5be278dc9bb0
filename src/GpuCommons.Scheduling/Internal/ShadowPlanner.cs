using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// The shadow computation of backfill: for a blocked job, the earliest time the running jobs' walltimes free enough of a
/// partition for it, and the nodes it would start on then. It releases running jobs in end order into its own scratch
/// (per GPU and per node, and the resource ledger's shadow), never into the cluster state, so it leaves no trace: the
/// engine turns its answer into a hold pool.
/// </summary>
internal sealed class ShadowPlanner(Fleet fleet, ClusterState cluster, Dictionary<long, JobRecord> jobs, ResourceLedger ledger)
{
    private const int Milli = JobSpec.MilliPerGpu;
    private readonly Fleet _fleet = fleet;
    private readonly ClusterState _c = cluster;
    private readonly Dictionary<long, JobRecord> _jobs = jobs;

    private ResourceLedger Ledger { get; } = ledger;

    // What a shadow computation has released so far, per GPU (thousandths) and per node (whole GPUs), with the indexes
    // it touched, so that the next one resets only those instead of clearing arrays the size of the fleet.
    private int[] _relGpu = [];
    private int[] _relNode = [];
    private readonly List<int> _relGpuTouched = [];
    private readonly List<int> _relNodeTouched = [];
    private readonly List<int> _freedNodes = [];
    private int[] _domainCount = [];

    /// <summary>
    /// Walks running jobs of the partition by walltime end and releases their GPUs until the job fits: returns that time
    /// and the nodes it would start on.
    /// </summary>
    public (long? Time, int[]? Nodes) Find(JobRecord job, int p, in Shape shape, long now, long notAfter)
    {
        ResetShadowRelease();
        _freedNodes.Clear();
        var part = _fleet.Partitions[p];
        var gang = shape.Kind == ShapeKind.Gang;
        if (gang)
        {
            if (_domainCount.Length < part.Domains.Count)
            {
                _domainCount = new int[part.Domains.Count];
            }

            Array.Clear(_domainCount, 0, part.Domains.Count);
            var mixed = part.MaxGpusPerNode != part.TypicalGpusPerNode || _c.NodesAtLeast[p][part.MaxGpusPerNode] != part.Nodes.Count;
            foreach (var id in _c.ActivePools[p])
            {
                var pool = _c.Pools[id];
                if (ClusterState.PoolUsableFor(pool, job))
                {
                    if (!mixed)
                    {
                        for (var d = 0; d < part.Domains.Count; d++)
                        {
                            _domainCount[d] += pool.DomainFull[d];
                        }

                        continue;
                    }

                    // Mixed node sizes: a free node counts only if it is big enough for the gang's GPUs per node.
                    foreach (var leaf in _c.LeavesUnder[p][0])
                    {
                        if (pool.FullByDomain[leaf] is not { } set)
                        {
                            continue;
                        }

                        for (var i = 0; i < set.Count; i++)
                        {
                            if (_fleet.Nodes[set[i]].Gpus >= shape.Amount)
                            {
                                foreach (var d in _c.NodePath[set[i]])
                                {
                                    _domainCount[d]++;
                                }
                            }
                        }
                    }
                }
            }
        }

        foreach (var (end, id) in _c.RunningByEnd[p])
        {
            if (end >= notAfter)
            {
                break;
            }

            var running = _jobs[id];
            foreach (var n in running.Placement!.Nodes)
            {
                if (!_c.NodeUsableFor(n, job))
                {
                    continue;
                }

                var node = _fleet.Nodes[n];
                var wasFull = _c.IsFullyFree(n) || _relNode[n] + _c.Free[n] == node.Gpus && SharedAllReleased(n);
                ReleaseInShadow(running, n);
                Ledger.ReleaseInShadow(running, n);
                var freeThen = _c.Free[n] + _relNode[n];
                switch (shape.Kind)
                {
                    case ShapeKind.SingleNode when freeThen >= shape.Amount && ShadowFits(job, p, shape, n):
                        return (Math.Max(end, now), [n]);
                    case ShapeKind.Share when (freeThen >= 1 || ShareFitsAfterRelease(running, n, shape.Amount)) && ShadowFits(job, p, shape, n):
                        return (Math.Max(end, now), [n]);
                    case ShapeKind.Gang when !wasFull && freeThen == node.Gpus && SharedAllReleased(n) && node.Gpus >= shape.Amount && ShadowFits(job, p, shape, n):
                    {
                        _freedNodes.Add(n);
                        var path = _c.NodePath[n];
                        for (var k = 0; k < path.Length; k++)
                        {
                            _domainCount[path[k]]++;
                        }

                        for (var k = 0; k < path.Length; k++)
                        {
                            if (_domainCount[path[k]] >= shape.Nodes)
                            {
                                return (Math.Max(end, now), GatherForHold(job, p, path[k], shape));
                            }
                        }

                        break;
                    }
                }
            }
        }

        return (null, null);
    }

    private void ResetShadowRelease()
    {
        Ledger.ResetShadow();
        if (_relGpu.Length != _c.GpuUsed.Length || _relNode.Length != _fleet.Nodes.Count)
        {
            _relGpu = new int[_c.GpuUsed.Length];
            _relNode = new int[_fleet.Nodes.Count];
            _relGpuTouched.Clear();
            _relNodeTouched.Clear();
            return;
        }

        foreach (var g in _relGpuTouched)
        {
            _relGpu[g] = 0;
        }

        foreach (var n in _relNodeTouched)
        {
            _relNode[n] = 0;
        }

        _relGpuTouched.Clear();
        _relNodeTouched.Clear();
    }

    private bool SharedAllReleased(int n)
    {
        if (_c.Shared[n] == 0)
        {
            return true;
        }

        var node = _fleet.Nodes[n];
        for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
        {
            var used = _c.GpuUsed[g];
            if (used > 0 && used < Milli && _relGpu[g] < used)
            {
                return false;
            }
        }

        return true;
    }

    private void ReleaseInShadow(JobRecord running, int n)
    {
        var node = _fleet.Nodes[n];
        if (running.Exclusive)
        {
            for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
            {
                ReleaseGpuInShadow(n, g, Milli);
            }

            return;
        }

        foreach (var s in running.Placement!.Slots)
        {
            if (s.Node == n)
            {
                ReleaseGpuInShadow(n, node.FirstGpu + s.Gpu, s.Milli);
            }
        }
    }

    private void ReleaseGpuInShadow(int n, int gpu, int milli)
    {
        if (_relGpu[gpu] == 0)
        {
            _relGpuTouched.Add(gpu);
        }

        var rel = _relGpu[gpu] + milli;
        _relGpu[gpu] = rel;
        if (rel == _c.GpuUsed[gpu])
        {
            if (_relNode[n] == 0)
            {
                _relNodeTouched.Add(n);
            }

            _relNode[n]++;
        }
    }

    private bool ShareFitsAfterRelease(JobRecord running, int n, int milli)
    {
        var node = _fleet.Nodes[n];
        foreach (var s in running.Placement!.Slots)
        {
            if (s.Node == n)
            {
                var g = node.FirstGpu + s.Gpu;
                if (Milli - (_c.GpuUsed[g] - _relGpu[g]) >= milli)
                {
                    return true;
                }
            }
        }

        return false;
    }

    private int[] GatherForHold(JobRecord job, int p, int domain, in Shape shape)
    {
        var picked = new List<int>(shape.Nodes);
        foreach (var leaf in _c.LeavesUnder[p][domain])
        {
            foreach (var id in _c.ActivePools[p])
            {
                var pool = _c.Pools[id];
                if (pool.FullByDomain[leaf] is not { Count: > 0 } set)
                {
                    continue;
                }

                for (var i = 0; i < set.Count && picked.Count < shape.Nodes; i++)
                {
                    var n = set[i];
                    if (_c.NodeUsableFor(n, job) && _fleet.Nodes[n].Gpus >= shape.Amount)
                    {
                        picked.Add(n);
                    }
                }
            }
        }

        for (var i = 0; i < _freedNodes.Count && picked.Count < shape.Nodes; i++)
        {
            var n = _freedNodes[i];
            if (Array.IndexOf(_c.NodePath[n], domain) >= 0 && !picked.Contains(n))
            {
                picked.Add(n);
            }
        }

        return [.. picked];
    }

    /// <summary>Backfill reservations: node <paramref name="n"/> will have the job's cores and memory once the shadow's releases are done, and is eligible.</summary>
    private bool ShadowFits(JobRecord job, int p, in Shape shape, int n)
    {
        var constrained = job.Request.GpuModels is not null || job.Request.Features is not null;
        if (!constrained && !Ledger.TrackedPartition[p])
        {
            return true;
        }

        var demand = ResourceLedger.DemandOf(job.Request, _fleet.Partitions[p], shape);
        return Ledger.FitsAfterRelease(n, demand) && (!constrained || ResourceDemand.Eligible(job.Request, _fleet.Nodes[n]));
    }
}
