using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Backfill reservations ("holds") and advance reservations.
public sealed partial class SchedulerEngine
{
    // What a shadow computation has released so far, per GPU (thousandths) and per node (whole GPUs), with the indexes
    // it touched, so that the next one resets only those instead of clearing arrays the size of the fleet.
    private int[] _relGpu = [];
    private int[] _relNode = [];
    private readonly List<int> _relGpuTouched = [];
    private readonly List<int> _relNodeTouched = [];
    private readonly List<int> _freedNodes = [];
    private int[] _domainCount = [];

    private bool NodeUsableFor(int n, JobRecord job)
    {
        if (!_c.IsAttached(n))
        {
            return false;
        }

        var pool = _c.Pools[_c.Assigned[n]];
        return pool.Kind switch
        {
            PoolKind.General => true,
            PoolKind.Hold => pool.HolderJob == job.Id,
            PoolKind.Advance => pool.UsableUntil == long.MinValue && pool.OwnerProject == job.Project && pool.OwnerProject >= 0,
            _ => false,
        };
    }

    /// <summary>Reserves, for the top blocked job, the nodes it will start on at the earliest time running jobs' walltimes allow.</summary>
    private bool MakeHold(JobRecord job, ulong partitions, long now)
    {
        var bestT = long.MaxValue;
        var bestP = -1;
        int[]? bestNodes = null;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((partitions & job.ShapeMask & (1UL << p)) == 0)
            {
                continue;
            }

            var shape = job.Shapes[p];

            _holdAttempts[p]++;
            if (Shadow(job, p, shape, now, bestT) is ({ } t, { } nodes) && t < bestT)
            {
                bestT = t;
                bestP = p;
                bestNodes = nodes;
            }
        }

        if (bestNodes is null)
        {
            return false;
        }

        var pool = _c.NewPool(Fleet.Partitions[bestP], PoolKind.Hold);
        pool.HolderJob = job.Id;
        pool.UsableUntil = bestT;
        foreach (var n in bestNodes)
        {
            _c.Reassign(n, pool.Id);
        }

        Materialize(job);
        job.HeldPool = pool.Id;
        job.HoldPartition = bestP;
        SetEstimate(job, bestT);
        RefreshCapacitySignature(bestP);
        _holdCount[bestP]++;
        return true;
    }

    /// <summary>
    /// Walks running jobs of the partition by walltime end and releases their GPUs until the job fits: returns that time
    /// and the nodes it would start on.
    /// </summary>
    private (long? Time, int[]? Nodes) Shadow(JobRecord job, int p, in Shape shape, long now, long notAfter)
    {
        ResetShadowRelease();
        _freedNodes.Clear();
        var part = Fleet.Partitions[p];
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
                if (pool.Kind == PoolKind.General || pool.HolderJob == job.Id || (pool.Kind == PoolKind.Advance && pool.UsableUntil == long.MinValue && pool.OwnerProject == job.Project))
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
                            if (Fleet.Nodes[set[i]].Gpus >= shape.Amount)
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
                if (!NodeUsableFor(n, job))
                {
                    continue;
                }

                var node = Fleet.Nodes[n];
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
        if (_relGpu.Length != _c.GpuUsed.Length || _relNode.Length != Fleet.Nodes.Count)
        {
            _relGpu = new int[_c.GpuUsed.Length];
            _relNode = new int[Fleet.Nodes.Count];
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

        var node = Fleet.Nodes[n];
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
        var node = Fleet.Nodes[n];
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
        var node = Fleet.Nodes[n];
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
                    if (NodeUsableFor(n, job) && Fleet.Nodes[n].Gpus >= shape.Amount)
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

    private void DissolveHold(Pool pool)
    {
        if (!pool.Active)
        {
            return;
        }

        foreach (var n in pool.Members.ToArray())
        {
            _c.Reassign(n, _c.Home[n]);
        }

        if (pool.HolderJob >= 0 && _jobs.TryGetValue(pool.HolderJob, out var holder) && holder.HeldPool == pool.Id)
        {
            holder.HeldPool = -1;
            if (holder.State == JobState.Pending)
            {
                SetEstimate(holder, -1);
            }
        }

        if (pool.StickyUntil < 0)
        {
            _holdCount[pool.Partition.Index]--;
        }

        pool.Active = false;
        _c.ActivePools[pool.Partition.Index].Remove(pool.Id);
        _c.FreeVersion++;
        _c.SpareHolds[pool.Partition.Index].Push(pool);
        _capacityDirty = true;
    }

    private void ExpireHolds(long now, bool full)
    {
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            var pools = _c.ActivePools[p];
            for (var i = pools.Count - 1; i >= 0; i--)
            {
                if (i >= pools.Count)
                {
                    continue;
                }

                var pool = _c.Pools[pools[i]];
                if (pool.Kind != PoolKind.Hold)
                {
                    continue;
                }

                var sticky = pool.StickyUntil >= 0;
                if ((!sticky && full) || (sticky && now >= pool.StickyUntil))
                {
                    DissolveHold(pool);
                }
            }
        }
    }

    // ---- Advance reservations ----------------------------------------------------------------------------------

    /// <summary>Adds an advance reservation of nodes for a window, for a project or (no project) for maintenance.</summary>
    public void AddReservation(AdvanceReservation reservation)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        if (string.IsNullOrWhiteSpace(reservation.Name))
        {
            throw new Core.SpecException("name", "a reservation needs a name");
        }

        if (_advance.ContainsKey(reservation.Name))
        {
            throw new Core.SpecException("name", $"a reservation named '{reservation.Name}' already exists");
        }

        if (reservation.End <= reservation.Start)
        {
            throw new Core.SpecException("end", "must be after start");
        }

        if (reservation.Nodes.Count == 0)
        {
            throw new Core.SpecException("nodes", "a reservation needs at least one node");
        }

        var owner = -1;
        if (reservation.Project is not null && !_projectIndex.TryGetValue(reservation.Project, out owner))
        {
            throw new Core.SpecException("project", $"unknown project '{reservation.Project}'");
        }

        var nodes = new List<int>();
        foreach (var name in reservation.Nodes)
        {
            var node = Fleet.FindNode(name) ?? throw new Core.SpecException("nodes", $"unknown node '{name}'");
            if (_c.Pools[_c.Home[node.Index]].Kind == PoolKind.Advance)
            {
                throw new Core.SpecException("nodes", $"node '{name}' is already in reservation '{_c.Pools[_c.Home[node.Index]].Name}'");
            }

            if (nodes.Contains(node.Index))
            {
                throw new Core.SpecException("nodes", $"node '{name}' is listed twice");
            }

            nodes.Add(node.Index);
        }

        var now = _time.GetUtcNow().UtcTicks;
        var pools = new List<Pool>();
        foreach (var group in nodes.GroupBy(n => Fleet.Nodes[n].PartitionIndex))
        {
            var pool = _c.NewPool(Fleet.Partitions[group.Key], PoolKind.Advance);
            pool.Name = reservation.Name;
            pool.OwnerProject = owner;
            pool.WindowStart = reservation.Start.UtcTicks;
            pool.WindowEnd = reservation.End.UtcTicks;
            pool.UsableUntil = now >= pool.WindowStart ? long.MinValue : pool.WindowStart;
            foreach (var n in group)
            {
                var wasHome = _c.Assigned[n] == _c.Home[n];
                _c.Home[n] = pool.Id;
                if (wasHome)
                {
                    _c.Reassign(n, pool.Id);
                }
                else
                {
                    // The node is held for a blocked job, whose hold would let it in regardless of the window:
                    // give the hold up (its nodes go home, this one into the reservation); the next cycle plans the job again.
                    DissolveHold(_c.Pools[_c.Assigned[n]]);
                }
            }

            pools.Add(pool);
        }

        _advance[reservation.Name] = pools;
        _capacityDirty = true;
    }

    /// <summary>Removes an advance reservation; its nodes return to the general pool.</summary>
    public bool RemoveReservation(string name)
    {
        if (!_advance.Remove(name, out var pools))
        {
            return false;
        }

        foreach (var pool in pools)
        {
            foreach (var n in Fleet.Partitions[pool.Partition.Index].Nodes)
            {
                if (_c.Home[n] == pool.Id)
                {
                    _c.Home[n] = _c.GeneralPool[pool.Partition.Index];
                }
            }

            foreach (var n in pool.Members.ToArray())
            {
                _c.Reassign(n, _c.Home[n]);
            }

            pool.Active = false;
            _c.ActivePools[pool.Partition.Index].Remove(pool.Id);
            _c.FreeVersion++;
        }

        _capacityDirty = true;
        return true;
    }

    /// <summary>Names of the advance reservations in force or to come.</summary>
    public IReadOnlyCollection<string> Reservations => _advance.Keys;

    private void UpdateAdvanceWindows(long now)
    {
        if (_advance.Count == 0)
        {
            return;
        }

        List<string>? ended = null;
        foreach (var (name, pools) in _advance)
        {
            foreach (var pool in pools)
            {
                if (now >= pool.WindowEnd)
                {
                    (ended ??= []).Add(name);
                    break;
                }

                if (now >= pool.WindowStart && pool.UsableUntil != long.MinValue)
                {
                    pool.UsableUntil = long.MinValue;
                    _capacityDirty = true;
                }
            }
        }

        if (ended is not null)
        {
            foreach (var name in ended)
            {
                RemoveReservation(name);
            }
        }
    }
}
