namespace GpuCommons.Core.Fleet;

/// <summary>
/// A compute node: a number of GPUs in one NVLink domain, placed in one leaf topology domain, with its CPU cores,
/// memory, GPU model and features. <see cref="Cpus"/> or <see cref="MemoryMiB"/> of 0 means the fleet does not say:
/// that resource is not tracked on the node (no request is ever refused for it), as for every fleet before
/// cores and memory were modelled.
/// </summary>
public sealed class Node
{
    internal Node(int index, string name, int gpus, int partitionIndex, int domainIndex, NodeState state, int firstGpu)
        : this(index, name, gpus, partitionIndex, domainIndex, state, firstGpu, NodeResources.Untracked, "GPU")
    {
    }

    internal Node(int index, string name, int gpus, int partitionIndex, int domainIndex, NodeState state, int firstGpu, NodeResources resources, string gpuModel)
    {
        Index = index;
        Name = name;
        Gpus = gpus;
        PartitionIndex = partitionIndex;
        DomainIndex = domainIndex;
        InitialState = state;
        FirstGpu = firstGpu;
        Cpus = resources.Cpus;
        MemoryMiB = resources.MemoryMiB;
        Features = resources.Features;
        GpuModel = gpuModel;
    }

    /// <summary>Position of the node in <see cref="Fleet.Nodes"/>.</summary>
    public int Index { get; }
    /// <summary>The node's name, unique in the fleet (the name the backend knows it by).</summary>
    public string Name { get; }
    /// <summary>GPUs on the node.</summary>
    public int Gpus { get; }
    /// <summary>Index in <see cref="Fleet.Partitions"/> of the partition the node belongs to.</summary>
    public int PartitionIndex { get; }
    /// <summary>Index in <see cref="Fleet.Domains"/> of the leaf domain that holds the node.</summary>
    public int DomainIndex { get; }
    /// <summary>The state the fleet spec gives the node (up unless the spec says otherwise); the engine tracks later changes.</summary>
    public NodeState InitialState { get; }
    /// <summary>Index of the node's GPU 0 in a fleet-wide numbering of GPUs.</summary>
    public int FirstGpu { get; }
    /// <summary>CPU cores jobs may use (Slurm's CPUs); 0 when the fleet does not say (not tracked).</summary>
    public int Cpus { get; }
    /// <summary>Memory jobs may use, in MiB (Slurm's RealMemory); 0 when the fleet does not say (not tracked).</summary>
    public long MemoryMiB { get; }
    /// <summary>Node features a job can ask for with a constraint (Slurm's Features), sorted, without duplicates.</summary>
    public IReadOnlyList<string> Features { get; }
    /// <summary>The GPU model of this node (its partition's, unless the node says otherwise).</summary>
    public string GpuModel { get; }

    /// <summary>Cores a placement may use: <see cref="Cpus"/>, or <see cref="int.MaxValue"/> when not tracked.</summary>
    public int CpuCapacity => Cpus == 0 ? int.MaxValue : Cpus;

    /// <summary>Memory a placement may use: <see cref="MemoryMiB"/>, or <see cref="long.MaxValue"/> when not tracked.</summary>
    public long MemoryCapacityMiB => MemoryMiB == 0 ? long.MaxValue : MemoryMiB;

    /// <summary>True when the node has every feature in <paramref name="required"/> (compared without case).</summary>
    public bool HasFeatures(IReadOnlyList<string>? required)
    {
        if (required is null)
        {
            return true;
        }

        foreach (var f in required)
        {
            var found = false;
            foreach (var g in Features)
            {
                if (string.Equals(f, g, StringComparison.OrdinalIgnoreCase))
                {
                    found = true;
                    break;
                }
            }

            if (!found)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The node's name.</summary>
    public override string ToString() => Name;
}

/// <summary>Cores, memory and features of one node as a fleet spec gives them (0: not tracked).</summary>
public sealed record NodeResources(int Cpus, long MemoryMiB, IReadOnlyList<string> Features)
{
    /// <summary>Largest core count of one node the model accepts.</summary>
    public const int MaxCpus = 65_536;

    /// <summary>Largest memory of one node the model accepts: 64 TiB in MiB.</summary>
    public const long MaxMemoryMiB = 64L * 1024 * 1024;

    /// <summary>No cores, memory or features tracked: what a node gets when the fleet does not say.</summary>
    public static NodeResources Untracked { get; } = new(0, 0, []);

    /// <summary>
    /// Resources a backend discovered (sinfo, the machine itself): never refuses. A value out of range is not tracked
    /// and a feature that is not a valid name is left out, so one odd node cannot keep the server from starting.
    /// </summary>
    public static NodeResources FromDiscovery(int? cpus, long? memoryMiB, IEnumerable<string>? features) =>
        Create(
            cpus is > 0 and <= MaxCpus ? cpus : null,
            memoryMiB is > 0 and <= MaxMemoryMiB ? memoryMiB : null,
            features?.Select(f => f.Trim()).Where(Jobs.ResourceRequest.IsFeatureName),
            "node");

    /// <summary>Checks the values and normalises the features (trimmed, sorted, distinct); throws a <see cref="SpecException"/> naming <paramref name="field"/>.</summary>
    public static NodeResources Create(int? cpus, long? memoryMiB, IEnumerable<string>? features, string field)
    {
        if (cpus is < 0 or > MaxCpus)
        {
            throw new SpecException(field + ".cpus", $"must be between 1 and {MaxCpus}, or 0 or left out when not tracked, got {cpus}");
        }

        if (memoryMiB is < 0 or > MaxMemoryMiB)
        {
            throw new SpecException(field + ".memoryMiB", $"must be between 1 and {MaxMemoryMiB} MiB (64 TiB), or 0 or left out when not tracked, got {memoryMiB}");
        }

        var list = new List<string>();
        foreach (var raw in features ?? [])
        {
            var f = raw?.Trim() ?? "";
            if (!Jobs.ResourceRequest.IsFeatureName(f))
            {
                throw new SpecException(field + ".features", $"'{raw}' is not a feature name (letters, digits, '_', '-', '.', ':', '=', at most 64 characters)");
            }

            if (!list.Contains(f, StringComparer.OrdinalIgnoreCase))
            {
                list.Add(f);
            }
        }

        list.Sort(StringComparer.OrdinalIgnoreCase);
        return cpus is null or 0 && memoryMiB is null or 0 && list.Count == 0 ? Untracked : new NodeResources(cpus ?? 0, memoryMiB ?? 0, list);
    }
}
