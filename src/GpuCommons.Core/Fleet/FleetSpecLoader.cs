using System.Globalization;
using System.Text.Json;
using static GpuCommons.Core.JsonSpecReader;

namespace GpuCommons.Core.Fleet;

/// <summary>
/// Loads fleets from the JSON fleet spec (docs/fleet-spec.md), from a node-list CSV
/// (<c>node,gpus,model[,partition,block]</c>), or by the name of a shipped fleet.
/// </summary>
public static class FleetSpecLoader
{
    /// <summary>Loads a fleet from a shipped name (<c>national</c>, <c>small</c>, …) or from a .json or .csv file path.</summary>
    public static Fleet Load(string nameOrPath)
    {
        if (BuiltInFleets.Names.Contains(nameOrPath, StringComparer.OrdinalIgnoreCase))
        {
            return BuiltInFleets.Get(nameOrPath);
        }

        if (!File.Exists(nameOrPath))
        {
            throw new SpecException("fleet", $"'{nameOrPath}' is neither a shipped fleet ({string.Join(", ", BuiltInFleets.Names)}) nor an existing file");
        }

        var text = File.ReadAllText(nameOrPath);
        return nameOrPath.EndsWith(".csv", StringComparison.OrdinalIgnoreCase)
            ? FromCsv(text, Path.GetFileNameWithoutExtension(nameOrPath), nameOrPath)
            : FromJson(text, nameOrPath);
    }

    /// <summary>
    /// Reads a JSON fleet spec (docs/fleet-spec.md); <paramref name="source"/> names it in error messages. Every problem is a
    /// <see cref="SpecException"/> naming the field.
    /// </summary>
    public static Fleet FromJson(string json, string source = "fleet")
    {
        using var doc = Parse(json, source);
        var root = doc.RootElement;
        RequireObject(root, string.Empty, "name", "description", "partitions");
        var builder = new FleetBuilder(RequiredString(root, string.Empty, "name"));
        var any = false;
        foreach (var (p, pp) in OptionalArray(root, string.Empty, "partitions"))
        {
            any = true;
            RequireObject(p, pp, "name", "gpuModel", "ratePerGpuHour", "defCpusPerGpu", "defMemoryMiBPerGpu", "domains", "nodes", "nodeGroups");
            var name = RequiredString(p, pp, "name");
            var rate = OptionalDouble(p, pp, "ratePerGpuHour") ?? 0;
            if (Math.Abs(rate) >= 7.9e28)
            {
                throw new SpecException(Join(pp, "ratePerGpuHour"), $"{rate} is beyond any price");
            }
            builder.AddPartition(name, OptionalString(p, pp, "gpuModel") ?? "GPU", (decimal)rate, pp);
            builder.SetPartitionDefaults(name, OptionalInt(p, pp, "defCpusPerGpu"), OptionalLong(p, pp, "defMemoryMiBPerGpu"), pp);
            foreach (var (d, dp) in OptionalArray(p, pp, "domains"))
            {
                RequireObject(d, dp, "name", "parent");
                builder.AddDomain(name, RequiredString(d, dp, "name"), OptionalString(d, dp, "parent"), dp);
            }

            foreach (var (n, np) in OptionalArray(p, pp, "nodes"))
            {
                RequireObject(n, np, "name", "gpus", "domain", "state", "cpus", "memoryMiB", "features", "gpuModel");
                builder.AddNode(name, RequiredString(n, np, "name"), RequiredInt(n, np, "gpus"), OptionalString(n, np, "domain"), OptionalEnum(n, np, "state", NodeState.Up), Resources(n, np), OptionalString(n, np, "gpuModel"), np);
            }

            foreach (var (g, gp) in OptionalArray(p, pp, "nodeGroups"))
            {
                RequireObject(g, gp, "prefix", "count", "gpus", "blockSize", "domain", "digits", "cpus", "memoryMiB", "features");
                builder.AddNodeGroup(name, RequiredString(g, gp, "prefix"), RequiredInt(g, gp, "count"), RequiredInt(g, gp, "gpus"), OptionalInt(g, gp, "blockSize") ?? 32, OptionalString(g, gp, "domain"), OptionalInt(g, gp, "digits") ?? 4, Resources(g, gp), gp);
            }
        }

        if (!any)
        {
            throw new SpecException("partitions", "a fleet needs at least one partition");
        }

        return builder.Build();
    }

    private static NodeResources Resources(JsonElement e, string path) =>
        NodeResources.Create(OptionalInt(e, path, "cpus"), OptionalLong(e, path, "memoryMiB"), OptionalStringArray(e, path, "features"), path);

    /// <summary>
    /// Reads a node list: header <c>node,gpus,model</c> with optional <c>partition</c>, <c>block</c>, <c>cpus</c>,
    /// <c>memory_mib</c> and <c>features</c> (separated by <c>;</c> or <c>&amp;</c>) columns.
    /// </summary>
    public static Fleet FromCsv(string csv, string name, string source = "fleet.csv")
    {
        var lines = csv.Replace("\r", string.Empty, StringComparison.Ordinal).Split('\n');
        if (lines.Length == 0 || string.IsNullOrWhiteSpace(lines[0]))
        {
            throw new SpecException($"{source}:1", "empty node list; expected a header node,gpus,model[,partition,block]");
        }

        var header = lines[0].Split(',').Select(h => h.Trim().ToLowerInvariant()).ToArray();
        int Col(string c, bool required)
        {
            var i = Array.IndexOf(header, c);
            if (i < 0 && required)
            {
                throw new SpecException($"{source}:1", $"missing column '{c}' in header (need node,gpus,model; optional partition,block,cpus,memory_mib,features)");
            }

            return i;
        }

        int cNode = Col("node", true), cGpus = Col("gpus", true), cModel = Col("model", true), cPart = Col("partition", false), cBlock = Col("block", false);
        int cCpus = Col("cpus", false), cMem = Col("memory_mib", false), cFeat = Col("features", false);
        for (var hi = 0; hi < header.Length; hi++)
        {
            var h = header[hi];
            if (h is not ("node" or "gpus" or "model" or "partition" or "block" or "cpus" or "memory_mib" or "features"))
            {
                throw new SpecException($"{source}:1", $"unknown column '{h}'");
            }

            if (Array.IndexOf(header, h) != hi)
            {
                throw new SpecException($"{source}:1", $"duplicate column '{h}'");
            }
        }

        var builder = new FleetBuilder(name);
        var partitions = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var blocks = new HashSet<(string, string)>();
        var nodes = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 1; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
            {
                continue;
            }

            var cells = lines[i].Split(',');
            var where = $"{source}:{i + 1}";
            if (cells.Length != header.Length)
            {
                throw new SpecException(where, $"expected {header.Length} columns, got {cells.Length}");
            }

            var node = cells[cNode].Trim();
            var model = cells[cModel].Trim();
            if (!int.TryParse(cells[cGpus].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var gpus))
            {
                throw new SpecException($"{where} column gpus", $"'{cells[cGpus]}' is not a whole number");
            }

            var part = cPart >= 0 && !string.IsNullOrWhiteSpace(cells[cPart]) ? cells[cPart].Trim() : (cPart >= 0 ? throw new SpecException($"{where} column partition", "is empty") : "default");
            if (partitions.Add(part))
            {
                builder.AddPartition(part, model, 0, $"{where} column partition");
            }

            string? block = null;
            if (cBlock >= 0 && !string.IsNullOrWhiteSpace(cells[cBlock]))
            {
                block = cells[cBlock].Trim();
                if (blocks.Add((part, block)))
                {
                    builder.AddDomain(part, block, null, $"{where} column block");
                }
            }

            if (string.IsNullOrWhiteSpace(node) || !nodes.Add(node))
            {
                throw new SpecException($"{where} column node", string.IsNullOrWhiteSpace(node) ? "is empty" : $"duplicate node name '{node}'");
            }

            if (gpus is < 1 or > FleetBuilder.MaxGpusPerNode)
            {
                throw new SpecException($"{where} column gpus", $"must be between 1 and {FleetBuilder.MaxGpusPerNode}, got {gpus}");
            }

            long? Number(int col, string what)
            {
                if (col < 0 || string.IsNullOrWhiteSpace(cells[col]))
                {
                    return null;
                }

                return long.TryParse(cells[col].Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0
                    ? v
                    : throw new SpecException($"{where} column {what}", $"'{cells[col]}' is not a whole number of 0 or more");
            }

            var cpus = Number(cCpus, "cpus");
            var mem = Number(cMem, "memory_mib");
            if (cpus > NodeResources.MaxCpus)
            {
                throw new SpecException($"{where} column cpus", $"must be at most {NodeResources.MaxCpus}, got {cpus}");
            }

            if (mem > NodeResources.MaxMemoryMiB)
            {
                throw new SpecException($"{where} column memory_mib", $"must be at most {NodeResources.MaxMemoryMiB} (64 TiB), got {mem}");
            }

            NodeResources resources;
            try
            {
                var features = cFeat < 0 || string.IsNullOrWhiteSpace(cells[cFeat]) ? null : cells[cFeat].Split(';', '&');
                resources = NodeResources.Create((int?)cpus, mem, features, where);
            }
            catch (SpecException e)
            {
                throw new SpecException($"{where} column features", e.Reason);
            }

            builder.AddNode(part, node, gpus, block, NodeState.Up, resources, string.IsNullOrWhiteSpace(model) ? null : model, $"{where} column node");
        }

        return builder.Build();
    }
}
