namespace GpuCommons.Core.Fleet;

/// <summary>
/// A topology domain: a partition's root (pool/spine), a block/leaf switch, or any level in between.
/// Nodes hang off leaf domains; a multi-node job is placed inside the smallest domain that fits it.
/// </summary>
public sealed class TopologyDomain
{
    private readonly List<TopologyDomain> _children = [];
    private readonly List<int> _nodes = [];

    internal TopologyDomain(int index, string name, int partitionIndex, TopologyDomain? parent, int localIndex)
    {
        Index = index;
        Name = name;
        PartitionIndex = partitionIndex;
        Parent = parent;
        LocalIndex = localIndex;
        Depth = parent is null ? 0 : parent.Depth + 1;
        parent?._children.Add(this);
    }

    /// <summary>Position of the domain in <see cref="Fleet.Domains"/>.</summary>
    public int Index { get; }
    /// <summary>Index of the domain among the domains of its partition (0 is the partition root).</summary>
    public int LocalIndex { get; }
    /// <summary>The domain's name (a root domain bears its partition's name).</summary>
    public string Name { get; }
    /// <summary>Index in <see cref="Fleet.Partitions"/> of the partition the domain belongs to.</summary>
    public int PartitionIndex { get; }
    /// <summary>The domain one level up; <see langword="null"/> for the partition root.</summary>
    public TopologyDomain? Parent { get; }
    /// <summary>0 for the partition root, growing towards the leaves.</summary>
    public int Depth { get; }
    /// <summary>The domains one level down.</summary>
    public IReadOnlyList<TopologyDomain> Children => _children;
    /// <summary>Nodes directly under this domain.</summary>
    public IReadOnlyList<int> DirectNodes => _nodes;
    /// <summary>Number of nodes anywhere below this domain.</summary>
    public int NodeCount { get; internal set; }
    /// <summary>GPUs on the nodes anywhere below this domain.</summary>
    public int GpuCount { get; internal set; }

    internal void AddNode(int node) => _nodes.Add(node);

    /// <summary>The domain's name.</summary>
    public override string ToString() => Name;
}
