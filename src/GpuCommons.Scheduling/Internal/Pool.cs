using GpuCommons.Core.Fleet;

namespace GpuCommons.Scheduling.Internal;

internal enum PoolKind
{
    /// <summary>Nodes anyone may use.</summary>
    General,
    /// <summary>An advance reservation: before its window, usable by jobs that end before it starts; in the window, by its owner only.</summary>
    Advance,
    /// <summary>Nodes held for a blocked job (backfill shadow or preemption claim): usable by jobs that end before <see cref="Pool.UsableUntil"/>.</summary>
    Hold,
}

/// <summary>
/// A set of nodes of one partition with indexes of free capacity: partly free nodes by free GPU count,
/// fully free nodes per leaf domain, fully free node counts per domain, and shared GPUs by residual share.
/// A placement decision reads these indexes and never scans every node.
/// </summary>
internal sealed class Pool
{
    public Pool(int id, Partition partition, PoolKind kind, int maxGpus, int[] posPartial, int[] posFull, int[] posMember)
    {
        Id = id;
        Partition = partition;
        Kind = kind;
        Partial = new IndexedSet[maxGpus + 1];
        for (var k = 0; k <= maxGpus; k++)
        {
            Partial[k] = new IndexedSet(posPartial);
        }

        FullByDomain = new IndexedSet?[partition.Domains.Count];
        DomainFull = new int[partition.Domains.Count];
        PosFull = posFull;
        Members = new MemberList(posMember);
    }

    public int Id { get; }
    public Partition Partition { get; }
    public PoolKind Kind { get; }
    public bool Active { get; set; } = true;

    /// <summary>Jobs that end by this time may use the pool (Hold, and Advance before its window).</summary>
    public long UsableUntil { get; set; } = long.MaxValue;
    /// <summary>Hold pools: the job the nodes are held for.</summary>
    public long HolderJob { get; set; } = -1;
    /// <summary>Hold pools: some node is in an advance reservation (only its owner's holder may run there).</summary>
    public bool HoldsReserved { get; set; }
    /// <summary>Hold pools made for preemption outlive a cycle until this time.</summary>
    public long StickyUntil { get; set; } = -1;
    /// <summary>Advance pools: owner project index (-1: maintenance) and the window.</summary>
    public int OwnerProject { get; set; } = -1;
    public long WindowStart { get; set; }
    public long WindowEnd { get; set; }
    public string Name { get; set; } = "";
    public MemberList Members { get; }

    /// <summary>Partly free attached nodes by whole free GPUs (index 0 holds nodes with only shared capacity left).</summary>
    public IndexedSet[] Partial { get; }
    /// <summary>Fully free attached nodes, per leaf domain (partition-local index).</summary>
    public IndexedSet?[] FullByDomain { get; }
    /// <summary>Fully free attached nodes below each domain (partition-local index).</summary>
    public int[] DomainFull { get; }
    private int[] PosFull { get; }
    /// <summary>Shared GPUs: (residual milli &lt;&lt; 32) | global GPU index.</summary>
    public SortedSet<long> Shared { get; } = [];

    public long FreeMilli { get; set; }
    public int SigWhole { get; set; }
    public int SigShare { get; set; }
    public int FullFree => DomainFull[0];

    public IndexedSet FullSet(int localDomain) => FullByDomain[localDomain] ??= new IndexedSet(PosFull);
}
