namespace GpuCommons.Core.Fleet;

/// <summary>A compute node: a number of GPUs in one NVLink domain, placed in one leaf topology domain.</summary>
public sealed class Node
{
    internal Node(int index, string name, int gpus, int partitionIndex, int domainIndex, NodeState state, int firstGpu)
    {
        Index = index;
        Name = name;
        Gpus = gpus;
        PartitionIndex = partitionIndex;
        DomainIndex = domainIndex;
        InitialState = state;
        FirstGpu = firstGpu;
    }

    /// <summary>Position of the node in <see cref="Fleet.Nodes"/>.</summary>
    public int Index { get; }
    public string Name { get; }
    public int Gpus { get; }
    public int PartitionIndex { get; }
    /// <summary>Index in <see cref="Fleet.Domains"/> of the leaf domain that holds the node.</summary>
    public int DomainIndex { get; }
    public NodeState InitialState { get; }
    /// <summary>Index of the node's GPU 0 in a fleet-wide numbering of GPUs.</summary>
    public int FirstGpu { get; }

    public override string ToString() => Name;
}
