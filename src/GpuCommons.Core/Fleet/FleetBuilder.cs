namespace GpuCommons.Core.Fleet;

/// <summary>
/// Builds a <see cref="Fleet"/> and checks it: unique names, known parents, no cycles, GPU counts in range.
/// Every error is a <see cref="SpecException"/> naming the field.
/// </summary>
public sealed class FleetBuilder
{
    /// <summary>Largest GPU count on one node that the engine supports.</summary>
    public const int MaxGpusPerNode = 64;

    /// <summary>Most nodes a fleet may have (the national center has 3,431): bounds what a spec can make the loader build.</summary>
    public const int MaxNodes = 100_000;

    private readonly string _name;
    private readonly List<PartitionDraft> _partitions = [];

    /// <summary>Starts an empty fleet named <paramref name="name"/>; a blank name is a <see cref="SpecException"/>.</summary>
    public FleetBuilder(string name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new SpecException("name", "a fleet needs a name");
        }

        _name = name;
    }

    /// <summary>Adds a partition; its root domain is named after it.</summary>
    public FleetBuilder AddPartition(string name, string gpuModel, decimal ratePerGpuHour, string? field = null)
    {
        field ??= $"partitions[{_partitions.Count}]";
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new SpecException(field + ".name", "a partition needs a name");
        }

        if (_partitions.Any(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase)))
        {
            throw new SpecException(field + ".name", $"duplicate partition name '{name}'");
        }

        if (ratePerGpuHour < 0)
        {
            throw new SpecException(field + ".ratePerGpuHour", "must not be negative");
        }

        _partitions.Add(new PartitionDraft(name, string.IsNullOrWhiteSpace(gpuModel) ? "GPU" : gpuModel, ratePerGpuHour, field));
        return this;
    }

    /// <summary>
    /// Sets a partition's defaults for jobs that ask for no cores or memory (Slurm's DefCpuPerGPU and DefMemPerGPU);
    /// null keeps the derived default (the least per-GPU share over its nodes).
    /// </summary>
    public FleetBuilder SetPartitionDefaults(string partition, int? defCpusPerGpu, long? defMemoryMiBPerGpu, string? field = null)
    {
        var p = Get(partition, field);
        field ??= p.Field;
        if (defCpusPerGpu is < 0 or > NodeResources.MaxCpus)
        {
            throw new SpecException(field + ".defCpusPerGpu", $"must be between 0 and {NodeResources.MaxCpus}, got {defCpusPerGpu}");
        }

        if (defMemoryMiBPerGpu is < 0 or > NodeResources.MaxMemoryMiB)
        {
            throw new SpecException(field + ".defMemoryMiBPerGpu", $"must be between 0 and {NodeResources.MaxMemoryMiB}, got {defMemoryMiBPerGpu}");
        }

        p.DefCpusPerGpu = defCpusPerGpu;
        p.DefMemoryMiBPerGpu = defMemoryMiBPerGpu;
        return this;
    }

    /// <summary>Adds a topology domain under <paramref name="parent"/> (null: under the partition root).</summary>
    public FleetBuilder AddDomain(string partition, string name, string? parent, string? field = null)
    {
        var p = Get(partition, field);
        field ??= $"{p.Field}.domains[{p.Domains.Count}]";
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new SpecException(field + ".name", "a domain needs a name");
        }

        if (p.Domains.Any(d => d.Name == name) || name == p.Name)
        {
            throw new SpecException(field + ".name", $"duplicate domain name '{name}' in partition '{p.Name}'");
        }

        p.Domains.Add((name, parent, field));
        return this;
    }

#pragma warning disable RS0026 // overloads with optional parameters: these predate the tracked surface, and callers use both
    /// <summary>Adds a node under <paramref name="domain"/> (null: under the partition root).</summary>
    public FleetBuilder AddNode(string partition, string name, int gpus, string? domain = null, NodeState state = NodeState.Up, string? field = null) =>
        AddNode(partition, name, gpus, domain, state, NodeResources.Untracked, null, field);

    /// <summary>Adds a node with its cores, memory and features, and its GPU model (null: the partition's).</summary>
    public FleetBuilder AddNode(string partition, string name, int gpus, string? domain, NodeState state, NodeResources resources, string? gpuModel, string? field = null)
    {
        ArgumentNullException.ThrowIfNull(resources);
        var p = Get(partition, field);
        field ??= $"{p.Field}.nodes[{p.Nodes.Count}]";
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new SpecException(field + ".name", "a node needs a name");
        }

        if (gpus < 1 || gpus > MaxGpusPerNode)
        {
            throw new SpecException(field + ".gpus", $"must be between 1 and {MaxGpusPerNode}, got {gpus}");
        }

        if (_partitions.Sum(x => x.Nodes.Count) >= MaxNodes)
        {
            throw new SpecException(field + ".name", $"a fleet may have at most {MaxNodes} nodes");
        }

        if (gpuModel is not null && !Jobs.ResourceRequest.IsFeatureName(gpuModel.Trim()))
        {
            throw new SpecException(field + ".gpuModel", $"'{gpuModel}' is not a GPU model name (letters, digits, '_', '-', '.', ':', '=', 1 to 64 characters)");
        }

        p.Nodes.Add((name, gpus, domain, state, field, resources, gpuModel?.Trim()));
        return this;
    }

    /// <summary>Adds <paramref name="count"/> nodes named prefix0001… in generated blocks of <paramref name="blockSize"/> nodes.</summary>
    public FleetBuilder AddNodeGroup(string partition, string prefix, int count, int gpus, int blockSize, string? domain = null, int digits = 4, string? field = null) =>
        AddNodeGroup(partition, prefix, count, gpus, blockSize, domain, digits, NodeResources.Untracked, field);

    /// <summary>Adds a node group whose nodes all have <paramref name="resources"/>.</summary>
    public FleetBuilder AddNodeGroup(string partition, string prefix, int count, int gpus, int blockSize, string? domain, int digits, NodeResources resources, string? field = null)
    {
        var p = Get(partition, field);
        field ??= $"{p.Field}.nodeGroups";
        if (count < 1 || count > MaxNodes)
        {
            throw new SpecException(field + ".count", $"must be between 1 and {MaxNodes}, got {count}");
        }

        if (gpus < 1 || gpus > MaxGpusPerNode)
        {
            throw new SpecException(field + ".gpus", $"must be between 1 and {MaxGpusPerNode}, got {gpus}");
        }

        if (blockSize < 0)
        {
            throw new SpecException(field + ".blockSize", "must not be negative");
        }

        if (digits is < 1 or > 9)
        {
            throw new SpecException(field + ".digits", "must be between 1 and 9");
        }

        var blocks = blockSize == 0 ? 1 : (count + blockSize - 1) / blockSize;
        for (var b = 0; b < blocks; b++)
        {
            var blockName = domain;
            if (blockSize > 0)
            {
                blockName = $"{prefix}-blk{b:D2}";
                AddDomain(partition, blockName, domain, $"{field}.block[{b}]");
            }

            var end = blockSize == 0 ? count : Math.Min(count, (b + 1) * blockSize);
            for (var i = b * Math.Max(blockSize, 0); i < end; i++)
            {
                AddNode(partition, prefix + (i + 1).ToString("D" + digits, System.Globalization.CultureInfo.InvariantCulture), gpus, blockName, NodeState.Up, resources, null, $"{field}.node[{i}]");
            }
        }

        return this;
    }
#pragma warning restore RS0026

    /// <summary>
    /// Checks what was added and builds the immutable <see cref="Fleet"/>: numbers nodes, GPUs and domains, and derives
    /// each partition's totals and defaults. A fleet without a partition, or a partition without a node, is a <see cref="SpecException"/>.
    /// </summary>
    public Fleet Build()
    {
        if (_partitions.Count == 0)
        {
            throw new SpecException("partitions", "a fleet needs at least one partition");
        }

        var partitions = new List<Partition>();
        var nodes = new List<Node>();
        var domains = new List<TopologyDomain>();
        var nodeNames = new HashSet<string>(StringComparer.Ordinal);
        var gpuCursor = 0;
        for (var pi = 0; pi < _partitions.Count; pi++)
        {
            var draft = _partitions[pi];
            if (draft.Nodes.Count == 0)
            {
                throw new SpecException(draft.Field + ".nodes", $"partition '{draft.Name}' has no nodes");
            }

            var partition = new Partition(pi, draft.Name, draft.GpuModel, draft.Rate);
            var local = new List<TopologyDomain>();
            var root = new TopologyDomain(domains.Count, draft.Name, pi, null, 0);
            domains.Add(root);
            local.Add(root);
            var byName = new Dictionary<string, TopologyDomain>(StringComparer.Ordinal) { [draft.Name] = root };

            // Resolve domains in dependency order; whatever is left unresolved is a cycle or an unknown parent.
            var remaining = new List<(string Name, string? Parent, string Field)>(draft.Domains);
            var declared = new HashSet<string>(draft.Domains.Select(d => d.Name), StringComparer.Ordinal);
            while (remaining.Count > 0)
            {
                var progressed = false;
                for (var i = 0; i < remaining.Count; i++)
                {
                    var (name, parent, field) = remaining[i];
                    if (parent is not null && !declared.Contains(parent) && parent != draft.Name)
                    {
                        throw new SpecException(field + ".parent", $"unknown parent domain '{parent}'");
                    }

                    var parentDomain = parent is null ? root : byName.GetValueOrDefault(parent);
                    if (parentDomain is null)
                    {
                        continue;
                    }

                    var d = new TopologyDomain(domains.Count, name, pi, parentDomain, local.Count);
                    domains.Add(d);
                    local.Add(d);
                    byName[name] = d;
                    remaining.RemoveAt(i);
                    i--;
                    progressed = true;
                }

                if (!progressed)
                {
                    var first = remaining[0];
                    throw new SpecException(first.Field + ".parent", $"domains form a cycle: {string.Join(" -> ", remaining.Select(r => r.Name))}");
                }
            }

            var nodeIdx = new List<int>();
            var sizes = new Dictionary<int, int>();
            foreach (var (name, gpus, domainName, state, field, resources, gpuModel) in draft.Nodes)
            {
                if (!nodeNames.Add(name))
                {
                    throw new SpecException(field + ".name", $"duplicate node name '{name}'");
                }

                TopologyDomain leaf;
                if (domainName is null)
                {
                    leaf = root;
                }
                else if (!byName.TryGetValue(domainName, out leaf!))
                {
                    throw new SpecException(field + ".domain", $"unknown domain '{domainName}'");
                }

                var node = new Node(nodes.Count, name, gpus, pi, leaf.Index, state, gpuCursor, resources, gpuModel ?? draft.GpuModel);
                gpuCursor = checked(gpuCursor + gpus);
                nodes.Add(node);
                leaf.AddNode(node.Index);
                nodeIdx.Add(node.Index);
                sizes[gpus] = sizes.GetValueOrDefault(gpus) + 1;
                for (var d = leaf; d is not null; d = d.Parent)
                {
                    d.NodeCount++;
                    d.GpuCount += gpus;
                }
            }

            partition.Root = root;
            partition.Nodes = nodeIdx;
            partition.Domains = local;
            partition.TotalGpus = root.GpuCount;
            partition.TypicalGpusPerNode = sizes.OrderByDescending(kv => kv.Value).ThenByDescending(kv => kv.Key).First().Key;
            partition.MaxGpusPerNode = sizes.Keys.Max();
            var own = nodes.Skip(nodes.Count - draft.Nodes.Count).ToList();
            partition.DefCpusPerGpu = draft.DefCpusPerGpu ?? (own.Any(n => n.Cpus > 0) ? own.Where(n => n.Cpus > 0).Min(n => n.Cpus / n.Gpus) : 0);
            partition.DefMemoryMiBPerGpu = draft.DefMemoryMiBPerGpu ?? (own.Any(n => n.MemoryMiB > 0) ? own.Where(n => n.MemoryMiB > 0).Min(n => n.MemoryMiB / n.Gpus) : 0);
            partitions.Add(partition);
        }

        return new Fleet(_name, partitions, nodes, domains);
    }

    private PartitionDraft Get(string partition, string? field)
    {
        var p = _partitions.FirstOrDefault(x => string.Equals(x.Name, partition, StringComparison.OrdinalIgnoreCase));
        return p ?? throw new SpecException(field ?? "partition", $"unknown partition '{partition}'");
    }

    private sealed class PartitionDraft(string name, string gpuModel, decimal rate, string field)
    {
        public string Name { get; } = name;
        public string GpuModel { get; } = gpuModel;
        public decimal Rate { get; } = rate;
        public string Field { get; } = field;
        public List<(string Name, string? Parent, string Field)> Domains { get; } = [];
        public List<(string Name, int Gpus, string? Domain, NodeState State, string Field, NodeResources Resources, string? GpuModel)> Nodes { get; } = [];
        public int? DefCpusPerGpu { get; set; }
        public long? DefMemoryMiBPerGpu { get; set; }
    }
}
