using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// What the fleet holds now: each node's state and free GPUs, each GPU's used share, the pools the nodes belong to with
/// their free-capacity indexes, and the running jobs by end time per partition. It owns every change to a node's free
/// capacity: <see cref="ChangeGpu"/> and <see cref="ChangeGpus"/> take or release GPUs, <see cref="Reassign"/> moves a
/// node between pools, <see cref="SetNodeState"/> takes it out of service or back, and each goes <see cref="Detach"/> → change → <see cref="Attach"/> so the pool indexes always agree
/// with the per-GPU state. <see cref="FreeVersion"/> moves on with every such change, so a cached answer about free
/// capacity knows when it is stale.
/// </summary>
/// <remarks>
/// The arrays are fields, read directly by the engine's hot paths (placement, the walk, the shadow computation); only
/// this type's methods change node capacity. The engine's invariant checker compares them with the jobs after each event.
/// </remarks>
internal sealed class ClusterState
{
    private const int Milli = JobSpec.MilliPerGpu;

    /// <summary>Each node's <see cref="NodeState"/>, as an int.</summary>
    public readonly int[] NodeState;
    /// <summary>Nodes up (taking new jobs) per partition.</summary>
    public readonly int[] UpNodes;
    /// <summary>Whole free GPUs per node.</summary>
    public readonly int[] Free;
    /// <summary>GPUs per node used in part (a share of one GPU).</summary>
    public readonly int[] Shared;
    /// <summary>Each GPU's used share, in thousandths.</summary>
    public readonly int[] GpuUsed;
    /// <summary>The pool each node is in now.</summary>
    public readonly int[] Assigned;
    /// <summary>The pool each node goes back to when a hold ends (its partition's general pool, or an advance reservation's).</summary>
    public readonly int[] Home;
    /// <summary>Position of each node in the pools' partial, full and member sets (shared by every pool: a node is in one pool).</summary>
    public readonly int[] PosPartial;
    public readonly int[] PosFull;
    public readonly int[] PosMember;
    /// <summary>Each node's domains, leaf first (partition-local indices).</summary>
    public readonly int[][] NodePath;
    /// <summary>The jobs on each node.</summary>
    public readonly List<JobRecord>[] NodeJobs;
    /// <summary>Every pool ever made (inactive holds are kept for reuse).</summary>
    public readonly List<Pool> Pools = [];
    /// <summary>Inactive hold pools per partition, for reuse.</summary>
    public readonly Stack<Pool>[] SpareHolds;
    /// <summary>Active pools per partition.</summary>
    public readonly List<int>[] ActivePools;
    /// <summary>Each partition's general pool.</summary>
    public readonly int[] GeneralPool;
    /// <summary>Per partition, the domains at each depth.</summary>
    public readonly List<int>[][] DomainsByDepth;
    /// <summary>Per partition, the leaf domains below each domain.</summary>
    public readonly List<int>[][] LeavesUnder;
    /// <summary>Per partition, the nodes with at least k GPUs.</summary>
    public readonly int[][] NodesAtLeast;
    /// <summary>Running jobs per partition by end time.</summary>
    public readonly SortedSet<(long End, long Id)>[] RunningByEnd;

    /// <summary>
    /// The preemptible-class subset of <see cref="RunningByEnd"/>: while no project borrows on a partition, they are the
    /// only possible victims there, and the preemption search need not walk every running job.
    /// </summary>
    public readonly SortedSet<(long End, long Id)>[] RunningPreemptible;

    /// <summary>GPUs in use per partition, in thousandths.</summary>
    public readonly long[] AllocatedByPartition;
    /// <summary>GPUs in use, in thousandths.</summary>
    public long AllocatedMilli;
    /// <summary>Free capacity of attached nodes, in thousandths.</summary>
    public long FreeMilliTotal;
    /// <summary>Moves on with every change to a pool's free capacity or to the set of active pools.</summary>
    public long FreeVersion;

    private readonly Fleet _fleet;

    public ClusterState(Fleet fleet)
    {
        _fleet = fleet;
        var n = fleet.Nodes.Count;
        NodeState = new int[n];
        Free = new int[n];
        Shared = new int[n];
        GpuUsed = new int[fleet.TotalGpus];
        Assigned = new int[n];
        Home = new int[n];
        PosPartial = new int[n];
        PosFull = new int[n];
        PosMember = new int[n];
        NodePath = new int[n][];
        NodeJobs = new List<JobRecord>[n];
        Array.Fill(PosPartial, -1);
        Array.Fill(PosFull, -1);
        Array.Fill(PosMember, -1);

        var parts = fleet.Partitions.Count;
        GeneralPool = new int[parts];
        UpNodes = new int[parts];
        SpareHolds = new Stack<Pool>[parts];
        ActivePools = new List<int>[parts];
        AllocatedByPartition = new long[parts];
        DomainsByDepth = new List<int>[parts][];
        LeavesUnder = new List<int>[parts][];
        NodesAtLeast = new int[parts][];
        RunningByEnd = new SortedSet<(long, long)>[parts];
        RunningPreemptible = new SortedSet<(long, long)>[parts];
        for (var p = 0; p < parts; p++)
        {
            var part = fleet.Partitions[p];
            SpareHolds[p] = new Stack<Pool>();
            ActivePools[p] = [];
            RunningByEnd[p] = [];
            RunningPreemptible[p] = [];
            var maxDepth = part.Domains.Max(d => d.Depth);
            DomainsByDepth[p] = new List<int>[maxDepth + 1];
            for (var d = 0; d <= maxDepth; d++)
            {
                DomainsByDepth[p][d] = [];
            }

            LeavesUnder[p] = new List<int>[part.Domains.Count];
            foreach (var d in part.Domains)
            {
                DomainsByDepth[p][d.Depth].Add(d.LocalIndex);
                LeavesUnder[p][d.LocalIndex] = [];
            }

            foreach (var d in part.Domains)
            {
                if (d.DirectNodes.Count == 0)
                {
                    continue;
                }

                for (var a = d; a is not null; a = a.Parent)
                {
                    LeavesUnder[p][a.LocalIndex].Add(d.LocalIndex);
                }
            }

            NodesAtLeast[p] = new int[FleetBuilder.MaxGpusPerNode + 1];
            foreach (var ni in part.Nodes)
            {
                for (var k = 1; k <= fleet.Nodes[ni].Gpus; k++)
                {
                    NodesAtLeast[p][k]++;
                }
            }

            var general = NewPool(part, PoolKind.General);
            GeneralPool[p] = general.Id;
        }

        for (var i = 0; i < n; i++)
        {
            var node = fleet.Nodes[i];
            Free[i] = node.Gpus;
            NodeJobs[i] = [];
            var path = new List<int>();
            for (var d = fleet.Domains[node.DomainIndex]; d is not null; d = d.Parent)
            {
                path.Add(d.LocalIndex);
            }

            NodePath[i] = [.. path];
            Home[i] = Assigned[i] = GeneralPool[node.PartitionIndex];
            NodeState[i] = (int)node.InitialState;
            Pools[Assigned[i]].Members.Add(i);
            if (node.InitialState == Core.Fleet.NodeState.Up)
            {
                UpNodes[node.PartitionIndex]++;
                Attach(i);
            }
        }
    }

    /// <summary>A new pool of <paramref name="kind"/> on <paramref name="partition"/> (a spare hold when there is one), active.</summary>
    public Pool NewPool(Partition partition, PoolKind kind)
    {
        if (kind == PoolKind.Hold && SpareHolds[partition.Index].TryPop(out var spare))
        {
            spare.Active = true;
            spare.HolderJob = -1;
            spare.StickyUntil = -1;
            spare.HoldsReserved = false;
            spare.UsableUntil = long.MaxValue;
            ActivePools[partition.Index].Add(spare.Id);
            FreeVersion++;
            return spare;
        }

        var pool = new Pool(Pools.Count, partition, kind, partition.MaxGpusPerNode, PosPartial, PosFull, PosMember);
        Pools.Add(pool);
        ActivePools[partition.Index].Add(pool.Id);
        FreeVersion++;
        return pool;
    }

    /// <summary>Whether the node is up, so its free capacity is in its pool's indexes.</summary>
    public bool IsAttached(int n) => NodeState[n] == (int)Core.Fleet.NodeState.Up;

    /// <summary>Changes a node's state: only an up node's free capacity is in its pool's indexes and counts as up.</summary>
    public void SetNodeState(int n, Core.Fleet.NodeState state)
    {
        var partition = _fleet.Nodes[n].PartitionIndex;
        if (NodeState[n] == (int)Core.Fleet.NodeState.Up)
        {
            Detach(n);
            UpNodes[partition]--;
        }

        NodeState[n] = (int)state;
        if (state == Core.Fleet.NodeState.Up)
        {
            UpNodes[partition]++;
            Attach(n);
        }
    }

    /// <summary>Whether a job may use the node once it is free (a shadow, a preemption): it is up, and its pool is one the job may use.</summary>
    public bool NodeUsableFor(int n, JobRecord job) => IsAttached(n) && PoolUsableFor(Pools[Assigned[n]], job);

    /// <summary>Whether a job may use a pool's nodes whenever they are free: the general pool, its own hold, or its project's reservation in its window.</summary>
    public static bool PoolUsableFor(Pool pool, JobRecord job) => pool.Kind switch
    {
        PoolKind.General => true,
        PoolKind.Hold => pool.HolderJob == job.Id,
        PoolKind.Advance => pool.UsableUntil == long.MinValue && pool.OwnerProject == job.Project && pool.OwnerProject >= 0,
        _ => false,
    };

    /// <summary>Whether no GPU of the node is used, not even in part.</summary>
    public bool IsFullyFree(int n) => Free[n] == _fleet.Nodes[n].Gpus && Shared[n] == 0;

    /// <summary>Puts the node's free capacity into its pool's indexes.</summary>
    public void Attach(int n)
    {
        var pool = Pools[Assigned[n]];
        var node = _fleet.Nodes[n];
        long milli = (long)Free[n] * Milli;
        if (IsFullyFree(n))
        {
            var path = NodePath[n];
            pool.FullSet(path[0]).Add(n);
            foreach (var d in path)
            {
                pool.DomainFull[d]++;
            }
        }
        else
        {
            pool.Partial[Free[n]].Add(n);
            if (Shared[n] > 0)
            {
                for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
                {
                    var used = GpuUsed[g];
                    if (used > 0 && used < Milli)
                    {
                        pool.Shared.Add(((long)(Milli - used) << 32) | (uint)g);
                        milli += Milli - used;
                    }
                }
            }
        }

        pool.FreeMilli += milli;
        FreeVersion++;
        FreeMilliTotal += milli;
    }

    /// <summary>Takes the node's free capacity out of its pool's indexes.</summary>
    public void Detach(int n)
    {
        var pool = Pools[Assigned[n]];
        var node = _fleet.Nodes[n];
        long milli = (long)Free[n] * Milli;
        if (IsFullyFree(n))
        {
            var path = NodePath[n];
            pool.FullSet(path[0]).Remove(n);
            foreach (var d in path)
            {
                pool.DomainFull[d]--;
            }
        }
        else
        {
            pool.Partial[Free[n]].Remove(n);
            if (Shared[n] > 0)
            {
                for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus; g++)
                {
                    var used = GpuUsed[g];
                    if (used > 0 && used < Milli)
                    {
                        pool.Shared.Remove(((long)(Milli - used) << 32) | (uint)g);
                        milli += Milli - used;
                    }
                }
            }
        }

        pool.FreeMilli -= milli;
        FreeVersion++;
        FreeMilliTotal -= milli;
    }

    /// <summary>Moves a node to another pool (keeping its capacity).</summary>
    public void Reassign(int n, int pool)
    {
        if (Assigned[n] == pool)
        {
            return;
        }

        var attached = IsAttached(n);
        if (attached)
        {
            Detach(n);
        }

        Pools[Assigned[n]].Members.Remove(n);
        Assigned[n] = pool;
        if (Pools[pool].Kind == PoolKind.Hold && Pools[Home[n]].Kind == PoolKind.Advance)
        {
            // A hold may take its holder's own reserved nodes, but must not open them to anyone else's backfill.
            Pools[pool].HoldsReserved = true;
        }

        Pools[pool].Members.Add(n);
        if (attached)
        {
            Attach(n);
        }
    }

    /// <summary>Changes one GPU's used share by <paramref name="delta"/> thousandths (positive: take, negative: release).</summary>
    public void ChangeGpu(int n, int gpu, int delta)
    {
        var attached = IsAttached(n);
        if (attached)
        {
            Detach(n);
        }

        var before = GpuUsed[gpu];
        var after = before + delta;
        if (after < 0 || after > Milli)
        {
            throw new InvalidOperationException($"GPU {gpu} of node {_fleet.Nodes[n].Name} would be at {after / (double)Milli:0.###} of capacity");
        }

        GpuUsed[gpu] = after;
        if (before == 0 && after > 0)
        {
            Free[n]--;
        }
        else if (before > 0 && after == 0)
        {
            Free[n]++;
        }

        var wasShared = before > 0 && before < Milli;
        var isShared = after > 0 && after < Milli;
        if (wasShared && !isShared)
        {
            Shared[n]--;
        }
        else if (!wasShared && isShared)
        {
            Shared[n]++;
        }

        AllocatedMilli += delta;
        AllocatedByPartition[_fleet.Nodes[n].PartitionIndex] += delta;
        if (attached)
        {
            Attach(n);
        }
    }

    /// <summary>Changes several GPUs of one node at once (one detach/attach).</summary>
    public void ChangeGpus(int n, ReadOnlySpan<int> gpus, int deltaEach)
    {
        var attached = IsAttached(n);
        if (attached)
        {
            Detach(n);
        }

        foreach (var gpu in gpus)
        {
            var before = GpuUsed[gpu];
            var after = before + deltaEach;
            if (after < 0 || after > Milli || (before > 0 && before < Milli) || (after > 0 && after < Milli))
            {
                throw new InvalidOperationException($"GPU {gpu} of node {_fleet.Nodes[n].Name} is not in a whole state for a whole-GPU change");
            }

            GpuUsed[gpu] = after;
            Free[n] += deltaEach > 0 ? -1 : 1;
            AllocatedMilli += deltaEach;
            AllocatedByPartition[_fleet.Nodes[n].PartitionIndex] += deltaEach;
        }

        if (attached)
        {
            Attach(n);
        }
    }
}
