using GpuCommons.Core.Fleet;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Node capacity and the pool indexes. Every change to a node's free capacity goes Detach → change → Attach,
// so the indexes always agree with the per-GPU state.
public sealed partial class SchedulerEngine
{
    private Pool NewPool(Partition partition, PoolKind kind)
    {
        if (kind == PoolKind.Hold && _spareHolds[partition.Index].TryPop(out var spare))
        {
            spare.Active = true;
            spare.HolderJob = -1;
            spare.StickyUntil = -1;
            spare.HoldsReserved = false;
            spare.UsableUntil = long.MaxValue;
            _activePools[partition.Index].Add(spare.Id);
            _freeVersion++;
            return spare;
        }

        var pool = new Pool(_pools.Count, partition, kind, partition.MaxGpusPerNode, _posPartial, _posFull, _posMember);
        _pools.Add(pool);
        _activePools[partition.Index].Add(pool.Id);
        _freeVersion++;
        return pool;
    }

    private bool IsAttached(int n) => _nodeState[n] == (int)NodeState.Up;

    private bool IsFullyFree(int n) => _free[n] == Fleet.Nodes[n].Gpus && _shared[n] == 0;

    private void Attach(int n)
    {
        var pool = _pools[_assigned[n]];
        var node = Fleet.Nodes[n];
        long milli = (long)_free[n] * Milli;
        if (IsFullyFree(n))
        {
            var path = _nodePath[n];
            pool.FullSet(path[0]).Add(n);
            foreach (var d in path)
            {
                pool.DomainFull[d]++;
            }
        }
        else
        {
            pool.Partial[_free[n]].Add(n);
            if (_shared[n] > 0)
            {
                for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
                {
                    var used = _gpuUsed[g];
                    if (used > 0 && used < Milli)
                    {
                        pool.Shared.Add(((long)(Milli - used) << 32) | (uint)g);
                        milli += Milli - used;
                    }
                }
            }
        }

        pool.FreeMilli += milli;
        _freeVersion++;
        _freeMilliTotal += milli;
    }

    private void Detach(int n)
    {
        var pool = _pools[_assigned[n]];
        var node = Fleet.Nodes[n];
        long milli = (long)_free[n] * Milli;
        if (IsFullyFree(n))
        {
            var path = _nodePath[n];
            pool.FullSet(path[0]).Remove(n);
            foreach (var d in path)
            {
                pool.DomainFull[d]--;
            }
        }
        else
        {
            pool.Partial[_free[n]].Remove(n);
            if (_shared[n] > 0)
            {
                for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
                {
                    var used = _gpuUsed[g];
                    if (used > 0 && used < Milli)
                    {
                        pool.Shared.Remove(((long)(Milli - used) << 32) | (uint)g);
                        milli += Milli - used;
                    }
                }
            }
        }

        pool.FreeMilli -= milli;
        _freeVersion++;
        _freeMilliTotal -= milli;
    }

    /// <summary>Moves a node to another pool (keeping its capacity).</summary>
    private void Reassign(int n, int pool)
    {
        if (_assigned[n] == pool)
        {
            return;
        }

        var attached = IsAttached(n);
        if (attached)
        {
            Detach(n);
        }

        _pools[_assigned[n]].Members.Remove(n);
        _assigned[n] = pool;
        if (_pools[pool].Kind == PoolKind.Hold && _pools[_home[n]].Kind == PoolKind.Advance)
        {
            // A hold may take its holder's own reserved nodes, but must not open them to anyone else's backfill.
            _pools[pool].HoldsReserved = true;
        }

        _pools[pool].Members.Add(n);
        if (attached)
        {
            Attach(n);
        }
    }

    /// <summary>Changes one GPU's used share by <paramref name="delta"/> thousandths (positive: take, negative: release).</summary>
    private void ChangeGpu(int n, int gpu, int delta)
    {
        var attached = IsAttached(n);
        if (attached)
        {
            Detach(n);
        }

        var before = _gpuUsed[gpu];
        var after = before + delta;
        if (after < 0 || after > Milli)
        {
            throw new InvalidOperationException($"GPU {gpu} of node {Fleet.Nodes[n].Name} would be at {after / (double)Milli:0.###} of capacity");
        }

        _gpuUsed[gpu] = after;
        if (before == 0 && after > 0)
        {
            _free[n]--;
        }
        else if (before > 0 && after == 0)
        {
            _free[n]++;
        }

        var wasShared = before > 0 && before < Milli;
        var isShared = after > 0 && after < Milli;
        if (wasShared && !isShared)
        {
            _shared[n]--;
        }
        else if (!wasShared && isShared)
        {
            _shared[n]++;
        }

        _allocatedMilli += delta;
        _allocatedByPartition[Fleet.Nodes[n].PartitionIndex] += delta;
        if (attached)
        {
            Attach(n);
        }
    }

    /// <summary>Changes several GPUs of one node at once (one detach/attach).</summary>
    private void ChangeGpus(int n, ReadOnlySpan<int> gpus, int deltaEach)
    {
        var attached = IsAttached(n);
        if (attached)
        {
            Detach(n);
        }

        foreach (var gpu in gpus)
        {
            var before = _gpuUsed[gpu];
            var after = before + deltaEach;
            if (after < 0 || after > Milli || (before > 0 && before < Milli) || (after > 0 && after < Milli))
            {
                throw new InvalidOperationException($"GPU {gpu} of node {Fleet.Nodes[n].Name} is not in a whole state for a whole-GPU change");
            }

            _gpuUsed[gpu] = after;
            _free[n] += deltaEach > 0 ? -1 : 1;
            _allocatedMilli += deltaEach;
            _allocatedByPartition[Fleet.Nodes[n].PartitionIndex] += deltaEach;
        }

        if (attached)
        {
            Attach(n);
        }
    }
}
