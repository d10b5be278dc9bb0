using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Backfill reservations ("holds") and advance reservations.
public sealed partial class SchedulerEngine
{
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
            _holdTries++;
            if (_shadow.Find(job, p, shape, now, bestT) is ({ } t, { } nodes) && t < bestT)
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
    /// What-if for tests: the earliest time and the nodes the shadow computation finds for this pending job on any of its
    /// partitions (as <see cref="MakeHold"/> would pick them), or null; holds nothing.
    /// </summary>
    internal (DateTimeOffset Time, int Partition, IReadOnlyList<int> Nodes)? ShadowForTests(long jobId)
    {
        var job = _jobs[jobId];
        var now = _time.GetUtcNow().UtcTicks;
        (long Time, int Partition, int[] Nodes)? best = null;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((job.ShapeMask & (1UL << p)) != 0 && _shadow.Find(job, p, job.Shapes[p], now, best?.Time ?? long.MaxValue) is ({ } t, { } nodes)
                && t < (best?.Time ?? long.MaxValue))
            {
                best = (t, p, nodes);
            }
        }

        return best is { } b ? (new DateTimeOffset(b.Time, TimeSpan.Zero), b.Partition, b.Nodes) : null;
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

    /// <summary>Dissolves the claims that expired and, with <paramref name="all"/>, every reservation; true when any went.</summary>
    private bool ExpireHolds(long now, bool all)
    {
        var any = false;
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
                if ((!sticky && all) || (sticky && now >= pool.StickyUntil))
                {
                    DissolveHold(pool);
                    any = true;
                }
            }
        }

        return any;
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
