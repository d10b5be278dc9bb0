using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Self-checks for tests: recompute everything the engine caches from first principles and compare.
// Slow (O(nodes × GPUs + jobs)); never called by the engine itself.
public sealed partial class SchedulerEngine
{
    /// <summary>
    /// Recomputes per-GPU usage, node counts, pool indexes, quota sums, grant commitments and job states from the running
    /// jobs' placements and compares them to the engine's own state. Returns the first difference found, or null.
    /// </summary>
    /// <summary>The queue order the next incremental pass walks (pending entries only), for tests.</summary>
    internal IReadOnlyList<long> OrderForTests()
    {
        _queue.SortTail();
        return [.. _queue.Order.Where(j => j.State == JobState.Pending).Select(j => j.Id)];
    }

    internal string? VerifyInvariants()
    {
        return VerifyJobs() ?? VerifyGpus() ?? VerifyPools() ?? VerifyQuota() ?? VerifyGrants() ?? Ledger.Verify(_jobs.Values.Where(j => j.State == JobState.Running));
    }

    /// <summary>Active backfill and preemption holds: the pending job they are for, until when others may use them, and their nodes.</summary>
    internal IReadOnlyList<(long Holder, long UsableUntil, bool Sticky, int[] Nodes)> HoldsForTests()
    {
        var holds = new List<(long, long, bool, int[])>();
        foreach (var pool in _c.Pools)
        {
            if (pool.Active && pool.Kind == PoolKind.Hold)
            {
                holds.Add((pool.HolderJob, pool.UsableUntil, pool.StickyUntil >= 0, [.. pool.Members]));
            }
        }

        return holds;
    }

    /// <summary>
    /// The engine's whole decision state as text: per-GPU use, node and pool indexes, quota sums, grants, and every job's
    /// state, reason, estimate and hold. Two equal fingerprints: nothing a decision reads differs.
    /// </summary>
    internal string StateFingerprintForTests()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendJoin(',', _c.GpuUsed).Append('\n').AppendJoin(',', _c.Free).Append('\n').AppendJoin(',', _c.Shared).Append('\n')
            .AppendJoin(',', _c.Assigned).Append('\n').AppendJoin(',', _c.Home).Append('\n').AppendJoin(',', _c.NodeState).Append('\n');
        foreach (var pool in _c.Pools)
        {
            sb.Append($"pool {pool.Id} {pool.Kind} active {pool.Active} free {pool.FreeMilli} full {pool.FullFree} members {string.Join(',', pool.Members)} holder {pool.HolderJob} until {pool.UsableUntil} sticky {pool.StickyUntil}\n");
        }

        sb.Append(_admission.Quota.Fingerprint()).Append('\n');
        for (var i = 0; i < _admission.Grants.Count; i++)
        {
            sb.Append($"grant {i} spent {_admission.Grants[i].Spent:R} committed {_admission.Grants[i].Committed:R}\n");
        }

        foreach (var (id, j) in _jobs.OrderBy(kv => kv.Key))
        {
            sb.Append($"job {id} {j.State} {ReasonOf(j)} est {EstimateOf(j)} priority {PriorityOf(j):R} held {j.HeldPool} preempting {j.Preempting} kill {j.PreemptKillTicks}\n");
        }

        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            sb.Append($"partition {p} running {string.Join(',', _c.RunningByEnd[p])} holds {_holdCount[p]}\n");
        }

        return sb.Append($"free {_c.FreeMilliTotal} running {_running} preempting {_preempting}").ToString();
    }

    private string? VerifyJobs()
    {
        int pending = 0, running = 0, preempting = 0;
        foreach (var (id, j) in _jobs)
        {
            if (j.Id != id)
            {
                return $"job {j.Id} is filed under id {id}";
            }

            switch (j.State)
            {
                case JobState.Pending:
                    pending++;
                    if (j.PendingSlot < 0 || j.PendingSlot >= _queue.Count || !ReferenceEquals(_queue[j.PendingSlot], j))
                    {
                        return $"pending job {id} is not in the pending list at its slot {j.PendingSlot}";
                    }

                    if (j.Placement is not null || j.Preempting)
                    {
                        return $"pending job {id} has a placement or is being preempted";
                    }

                    if (j.HeldPool >= 0 && (!_c.Pools[j.HeldPool].Active || _c.Pools[j.HeldPool].Kind != PoolKind.Hold || _c.Pools[j.HeldPool].HolderJob != id))
                    {
                        return $"pending job {id} points at hold {j.HeldPool}, which is not its own active hold";
                    }

                    break;
                case JobState.Running:
                    running++;
                    if (j.Preempting)
                    {
                        preempting++;
                    }

                    if (j.PendingSlot != -1 || j.HeldPool != -1)
                    {
                        return $"running job {id} still has a pending slot or a hold";
                    }

                    if (j.Placement is null || j.Partition < 0)
                    {
                        return $"running job {id} has no placement";
                    }

                    if (j.StartTicks < j.SubmitTicks)
                    {
                        return $"running job {id} started at {j.StartTicks}, before it was submitted at {j.SubmitTicks}";
                    }

                    if (j.EndByTicks != j.StartTicks + j.WalltimeTicks)
                    {
                        return $"running job {id} has end-by {j.EndByTicks}, not start + walltime";
                    }

                    if (!_c.RunningByEnd[j.Partition].Contains((j.EndByTicks, j.Id)))
                    {
                        return $"running job {id} is missing from the running-by-end index";
                    }

                    if (_c.RunningPreemptible[j.Partition].Contains((j.EndByTicks, j.Id)) != (j.PriorityClass == PriorityClass.Preemptible))
                    {
                        return $"running job {id} is wrongly in or out of the preemptible index";
                    }

                    break;
                default:
                    return $"job {id} is {j.State} but still held by the engine";
            }
        }

        if (pending != _queue.Count)
        {
            return $"{pending} jobs are pending, but the pending list has {_queue.Count}";
        }

        if (running != _running)
        {
            return $"{running} jobs are running, but the running count is {_running}";
        }

        if (preempting != _preempting)
        {
            return $"{preempting} jobs are being preempted, but the count is {_preempting}";
        }

        var byEnd = 0;
        foreach (var set in _c.RunningByEnd)
        {
            byEnd += set.Count;
        }

        for (var p = 0; p < _c.RunningPreemptible.Length; p++)
        {
            if (!_c.RunningPreemptible[p].IsSubsetOf(_c.RunningByEnd[p]))
            {
                return $"the preemptible index of partition {p} holds jobs that are not running there";
            }
        }

        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if (_admission.Quota.AnyBorrowing(p) != _admission.Quota.CountBorrowing(p))
            {
                return $"the borrower count of partition {p} is wrong";
            }
        }

        return byEnd != running ? $"the running-by-end index has {byEnd} entries for {running} running jobs" : null;
    }

    private string? VerifyGpus()
    {
        var used = new int[_c.GpuUsed.Length];
        var jobsOn = new int[Fleet.Nodes.Count];
        foreach (var j in _jobs.Values)
        {
            if (j.State != JobState.Running)
            {
                continue;
            }

            var placement = j.Placement!;
            if (placement.Partition != j.Partition)
            {
                return $"job {j.Id} has partition {j.Partition} but its placement says {placement.Partition}";
            }

            long held = 0;
            var nodes = new HashSet<int>();
            foreach (var n in placement.Nodes)
            {
                var node = Fleet.Nodes[n];
                if (!nodes.Add(n))
                {
                    return $"job {j.Id} lists node {node.Name} twice";
                }

                if (node.PartitionIndex != j.Partition)
                {
                    return $"job {j.Id} on partition {j.Partition} has node {node.Name} of partition {node.PartitionIndex}";
                }

                if ((NodeState)_c.NodeState[n] == NodeState.Down)
                {
                    return $"job {j.Id} runs on node {node.Name}, which is down";
                }

                if (!_c.NodeJobs[n].Contains(j))
                {
                    return $"job {j.Id} is missing from the job list of node {node.Name}";
                }

                jobsOn[n]++;
                if (j.Exclusive)
                {
                    for (var g = 0; g < node.Gpus; g++)
                    {
                        used[node.FirstGpu + g] += Milli;
                    }

                    held += (long)node.Gpus * Milli;
                }
            }

            var slotKeys = new HashSet<(int, int)>();
            foreach (var s in placement.Slots)
            {
                if (!nodes.Contains(s.Node))
                {
                    return $"job {j.Id} has a GPU on node {s.Node}, which is not among its nodes";
                }

                if (s.Gpu < 0 || s.Gpu >= Fleet.Nodes[s.Node].Gpus || s.Milli <= 0 || s.Milli > Milli)
                {
                    return $"job {j.Id} has an impossible slot {s}";
                }

                if (!slotKeys.Add((s.Node, s.Gpu)))
                {
                    return $"job {j.Id} holds GPU {s.Gpu} of node {Fleet.Nodes[s.Node].Name} twice";
                }

                if (!j.Exclusive)
                {
                    used[Fleet.Nodes[s.Node].FirstGpu + s.Gpu] += s.Milli;
                    held += s.Milli;
                }
            }

            if (held != placement.HeldGpuMilli)
            {
                return $"job {j.Id} holds {held} milli-GPUs but its placement says {placement.HeldGpuMilli}";
            }
        }

        long allocated = 0;
        for (var g = 0; g < used.Length; g++)
        {
            if (used[g] > Milli)
            {
                return $"GPU {g} is given {used[g]} thousandths, more than one GPU";
            }

            if (used[g] != _c.GpuUsed[g])
            {
                return $"GPU {g}: running jobs use {used[g]} thousandths, the engine records {_c.GpuUsed[g]}";
            }

            allocated += used[g];
        }

        if (allocated != _c.AllocatedMilli)
        {
            return $"running jobs hold {allocated} thousandths, the engine records {_c.AllocatedMilli}";
        }

        for (var n = 0; n < Fleet.Nodes.Count; n++)
        {
            var node = Fleet.Nodes[n];
            int free = 0, shared = 0;
            for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
            {
                if (used[g] == 0)
                {
                    free++;
                }
                else if (used[g] < Milli)
                {
                    shared++;
                }
            }

            if (free != _c.Free[n] || shared != _c.Shared[n])
            {
                return $"node {node.Name}: {free} free and {shared} shared GPUs, the engine records {_c.Free[n]} and {_c.Shared[n]}";
            }

            if (jobsOn[n] != _c.NodeJobs[n].Count)
            {
                return $"node {node.Name}: {jobsOn[n]} running jobs, its job list has {_c.NodeJobs[n].Count}";
            }
        }

        return null;
    }

    private string? VerifyPools()
    {
        if (_freeCapacityVersion == _c.FreeVersion && ComputeFreeCapacity(_freeCapacityPartitions) != _freeCapacity)
        {
            return $"the kept free capacity of partitions {_freeCapacityPartitions:x} is {_freeCapacity}, the pools have {ComputeFreeCapacity(_freeCapacityPartitions)}";
        }

        var members = 0;
        long freeTotal = 0;
        var holds = new int[_holdCount.Length];
        foreach (var pool in _c.Pools)
        {
            members += pool.Members.Count;
            var listed = _c.ActivePools[pool.Partition.Index].Contains(pool.Id);
            if (pool.Active != listed)
            {
                return $"pool {pool.Id} is {(pool.Active ? "active" : "inactive")} but {(listed ? "is" : "is not")} listed as active";
            }

            if (!pool.Active)
            {
                if (pool.Members.Count != 0 || pool.FreeMilli != 0)
                {
                    return $"inactive pool {pool.Id} still has nodes or capacity";
                }

                continue;
            }

            if (pool.Kind == PoolKind.Hold)
            {
                if (pool.StickyUntil < 0)
                {
                    holds[pool.Partition.Index]++;
                }

                if (!_jobs.TryGetValue(pool.HolderJob, out var holder) || holder.State != JobState.Pending || holder.HeldPool != pool.Id)
                {
                    return $"hold {pool.Id} is for job {pool.HolderJob}, which is not a pending job holding it";
                }
            }

            // Recompute the pool's indexes from its attached members.
            var domainFull = new int[pool.Partition.Domains.Count];
            var shared = new SortedSet<long>();
            long freeMilli = 0;
            var indexed = 0;
            foreach (var n in pool.Members)
            {
                var node = Fleet.Nodes[n];
                if (node.PartitionIndex != pool.Partition.Index)
                {
                    return $"node {node.Name} is in pool {pool.Id} of another partition";
                }

                if (_c.Assigned[n] != pool.Id)
                {
                    return $"node {node.Name} is a member of pool {pool.Id} but assigned to pool {_c.Assigned[n]}";
                }

                if (!_c.IsAttached(n))
                {
                    if (_c.PosFull[n] >= 0 || _c.PosPartial[n] >= 0)
                    {
                        return $"node {node.Name} is {(NodeState)_c.NodeState[n]} but still indexed as free capacity";
                    }

                    continue;
                }

                indexed++;
                if (_c.IsFullyFree(n))
                {
                    if (pool.FullByDomain[_c.NodePath[n][0]]?.Contains(n) != true)
                    {
                        return $"fully free node {node.Name} is missing from the free-node index of pool {pool.Id}";
                    }

                    foreach (var d in _c.NodePath[n])
                    {
                        domainFull[d]++;
                    }

                    freeMilli += (long)node.Gpus * Milli;
                }
                else
                {
                    if (!pool.Partial[_c.Free[n]].Contains(n))
                    {
                        return $"partly used node {node.Name} ({_c.Free[n]} free) is missing from the partial index of pool {pool.Id}";
                    }

                    freeMilli += (long)_c.Free[n] * Milli;
                    for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
                    {
                        if (_c.GpuUsed[g] > 0 && _c.GpuUsed[g] < Milli)
                        {
                            shared.Add(((long)(Milli - _c.GpuUsed[g]) << 32) | (uint)g);
                            freeMilli += Milli - _c.GpuUsed[g];
                        }
                    }
                }
            }

            var inIndexes = 0;
            foreach (var set in pool.Partial)
            {
                inIndexes += set.Count;
            }

            foreach (var set in pool.FullByDomain)
            {
                inIndexes += set?.Count ?? 0;
            }

            if (inIndexes != indexed)
            {
                return $"pool {pool.Id} indexes {inIndexes} nodes but has {indexed} attached members";
            }

            for (var d = 0; d < domainFull.Length; d++)
            {
                if (domainFull[d] != pool.DomainFull[d])
                {
                    return $"pool {pool.Id}: domain {pool.Partition.Domains[d].Name} has {domainFull[d]} fully free nodes, the index says {pool.DomainFull[d]}";
                }
            }

            if (!shared.SetEquals(pool.Shared))
            {
                return $"pool {pool.Id}: the shared-GPU index does not match the GPUs' use";
            }

            if (freeMilli != pool.FreeMilli)
            {
                return $"pool {pool.Id}: {freeMilli} thousandths free, the pool records {pool.FreeMilli}";
            }

            freeTotal += freeMilli;
        }

        if (members != Fleet.Nodes.Count)
        {
            return $"pools have {members} members for {Fleet.Nodes.Count} nodes";
        }

        for (var n = 0; n < Fleet.Nodes.Count; n++)
        {
            var home = _c.Pools[_c.Home[n]];
            if (!home.Active || home.Kind == PoolKind.Hold || home.Partition.Index != Fleet.Nodes[n].PartitionIndex)
            {
                return $"node {Fleet.Nodes[n].Name} has home pool {home.Id}, which is not an active general or reservation pool of its partition";
            }

            if (_c.Assigned[n] != _c.Home[n] && _c.Pools[_c.Assigned[n]].Kind != PoolKind.Hold)
            {
                return $"node {Fleet.Nodes[n].Name} is away from its home pool in pool {_c.Assigned[n]}, which is not a hold";
            }
        }

        var up = new int[Fleet.Partitions.Count];
        for (var n = 0; n < Fleet.Nodes.Count; n++)
        {
            if (_c.IsAttached(n))
            {
                up[Fleet.Nodes[n].PartitionIndex]++;
            }
        }

        if (!up.AsSpan().SequenceEqual(_c.UpNodes))
        {
            return "the count of up nodes per partition is out of date";
        }

        if (!holds.AsSpan().SequenceEqual(_holdCount))
        {
            return $"backfill holds per partition are {string.Join(",", holds)}, but the counts are {string.Join(",", _holdCount)}";
        }

        return freeTotal != _c.FreeMilliTotal ? $"pools have {freeTotal} thousandths free, the engine records {_c.FreeMilliTotal}" : null;
    }

    private string? VerifyQuota()
    {
        var usage = new Dictionary<(int Project, int Partition), long>();
        foreach (var j in _jobs.Values)
        {
            if (j.State == JobState.Running)
            {
                usage[(j.Project, j.Partition)] = usage.GetValueOrDefault((j.Project, j.Partition)) + j.Placement!.HeldGpuMilli;
            }
        }

        for (var project = 0; project < _projectNames.Count; project++)
        {
            for (var p = 0; p < Fleet.Partitions.Count; p++)
            {
                var u = usage.GetValueOrDefault((project, p));
                if (_admission.Quota.Project(project).Usage[p] != u)
                {
                    return $"project {_projectNames[project]} uses {u} thousandths on partition {p}, the quota tracker records {_admission.Quota.Project(project).Usage[p]}";
                }
            }
        }

        return _admission.Quota.Verify();
    }

    private string? VerifyGrants()
    {
        var committed = new double[_admission.Grants.Count];
        foreach (var j in _jobs.Values)
        {
            if (j.State == JobState.Running && j.Allocation >= 0)
            {
                committed[j.Allocation] += GpuHours(j.Placement!.HeldGpuMilli, j.WalltimeTicks);
            }
        }

        for (var i = 0; i < _admission.Grants.Count; i++)
        {
            var g = _admission.Grants[i];
            if (Math.Abs(g.Committed - committed[i]) > 1e-6 * Math.Max(1, committed[i]))
            {
                return $"allocation {g.Spec.Id}: running jobs commit {committed[i]} GPU-hours, the tracker records {g.Committed}";
            }
        }

        return null;
    }
}
