namespace GpuCommons.Core.Fleet;

/// <summary>
/// An immutable description of a GPU fleet: partitions, their topology trees and their nodes.
/// Build one with <see cref="FleetBuilder"/>, <see cref="FleetSpecLoader"/> or <see cref="BuiltInFleets"/>.
/// </summary>
public sealed class Fleet
{
    private readonly Dictionary<string, int> _nodeByName;
    private readonly Dictionary<string, int> _partitionByName;

    internal Fleet(string name, List<Partition> partitions, List<Node> nodes, List<TopologyDomain> domains)
    {
        Name = name;
        Partitions = partitions;
        Nodes = nodes;
        Domains = domains;
        _nodeByName = new Dictionary<string, int>(nodes.Count, StringComparer.Ordinal);
        foreach (var n in nodes)
        {
            _nodeByName[n.Name] = n.Index;
        }

        _partitionByName = partitions.ToDictionary(p => p.Name, p => p.Index, StringComparer.OrdinalIgnoreCase);
        TotalGpus = nodes.Sum(n => n.Gpus);
        MaxGpusPerNode = nodes.Count == 0 ? 0 : nodes.Max(n => n.Gpus);
    }

    /// <summary>The fleet's name (<c>national</c>, the spec's name, or the file name of a node list).</summary>
    public string Name { get; }
    /// <summary>The partitions, indexed by <see cref="Partition.Index"/>.</summary>
    public IReadOnlyList<Partition> Partitions { get; }
    /// <summary>Every node of every partition, indexed by <see cref="Node.Index"/>.</summary>
    public IReadOnlyList<Node> Nodes { get; }
    /// <summary>Every topology domain of every partition, indexed by <see cref="TopologyDomain.Index"/>.</summary>
    public IReadOnlyList<TopologyDomain> Domains { get; }
    /// <summary>GPUs in the whole fleet.</summary>
    public int TotalGpus { get; }
    /// <summary>The largest GPU count of one node in the fleet; 0 for a fleet without nodes.</summary>
    public int MaxGpusPerNode { get; }
    /// <summary>Total number of GPUs, which is also the size of the fleet-wide GPU numbering.</summary>
    public int GpuSlots => TotalGpus;

    /// <summary>The partition of that name, compared without case; <see langword="null"/> when there is none.</summary>
    public Partition? FindPartition(string name) =>
        _partitionByName.TryGetValue(name, out var i) ? Partitions[i] : null;

    /// <summary>The node of that exact name; <see langword="null"/> when there is none.</summary>
    public Node? FindNode(string name) => _nodeByName.TryGetValue(name, out var i) ? Nodes[i] : null;
}
