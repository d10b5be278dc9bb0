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

    public string Name { get; }
    public IReadOnlyList<Partition> Partitions { get; }
    public IReadOnlyList<Node> Nodes { get; }
    public IReadOnlyList<TopologyDomain> Domains { get; }
    public int TotalGpus { get; }
    public int MaxGpusPerNode { get; }
    /// <summary>Total number of GPUs, which is also the size of the fleet-wide GPU numbering.</summary>
    public int GpuSlots => TotalGpus;

    public Partition? FindPartition(string name) =>
        _partitionByName.TryGetValue(name, out var i) ? Partitions[i] : null;

    public Node? FindNode(string name) => _nodeByName.TryGetValue(name, out var i) ? Nodes[i] : null;
}
