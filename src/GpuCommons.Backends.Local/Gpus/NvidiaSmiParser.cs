using System.Globalization;
using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;

namespace GpuCommons.Backends.Local.Gpus;

/// <summary>
/// Parses the output of <c>nvidia-smi</c>: <c>--query-gpu … --format=csv</c> (with or without header and units),
/// <c>--query-compute-apps</c>, <c>-L</c> and <c>-q -x</c>. Output that does not parse throws
/// <see cref="NvidiaSmiFormatException"/> naming what was wrong.
/// </summary>
public static partial class NvidiaSmiParser
{
    /// <summary>The fields <see cref="QueryGpuArguments"/> asks for, in order (the order a header-less answer uses).</summary>
    public static readonly IReadOnlyList<string> QueryGpuFields =
    [
        "index", "uuid", "name", "pci.bus_id", "memory.total", "memory.used", "memory.free",
        "utilization.gpu", "utilization.memory", "temperature.gpu", "power.draw", "mig.mode.current",
    ];

    /// <summary>The fields <see cref="QueryComputeAppsArguments"/> asks for, in order.</summary>
    public static readonly IReadOnlyList<string> ComputeAppFields = ["pid", "gpu_uuid", "process_name", "used_memory"];

    /// <summary>Arguments for the GPU inventory and telemetry query (header kept so columns are checked by name).</summary>
    public static IReadOnlyList<string> QueryGpuArguments { get; } =
        ["--query-gpu=" + string.Join(',', QueryGpuFields), "--format=csv,nounits"];

    /// <summary>The fields every nvidia-smi knows: the fallback when an older driver refuses a field of <see cref="QueryGpuFields"/>.</summary>
    public static readonly IReadOnlyList<string> MinimalQueryGpuFields = ["index", "uuid", "name", "memory.total", "memory.used", "utilization.gpu"];

    /// <summary>Arguments for <see cref="MinimalQueryGpuFields"/>.</summary>
    public static IReadOnlyList<string> MinimalQueryGpuArguments { get; } =
        ["--query-gpu=" + string.Join(',', MinimalQueryGpuFields), "--format=csv,nounits"];

    /// <summary>Arguments for the per-process GPU memory query.</summary>
    public static IReadOnlyList<string> QueryComputeAppsArguments { get; } =
        ["--query-compute-apps=" + string.Join(',', ComputeAppFields), "--format=csv,nounits"];

    // nvidia-smi names some columns differently in the header than in the query (clocks.sm → clocks.current.sm,
    // used_memory → used_gpu_memory); both spellings map to one key.
    private static readonly Dictionary<string, string> HeaderAliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["clocks.current.sm"] = "clocks.sm",
        ["used_gpu_memory"] = "used_memory",
        ["gpu_name"] = "name",
        ["gpu_bus_id"] = "pci.bus_id",
    };

    /// <summary>
    /// Parses <c>nvidia-smi --query-gpu=… --format=csv[,noheader][,nounits]</c>. With a header the columns are found by
    /// name; without one, <paramref name="fields"/> gives the order that was queried. <c>index</c>, <c>uuid</c>,
    /// <c>name</c> and <c>memory.total</c> are required.
    /// </summary>
    public static IReadOnlyList<NvidiaSmiGpu> ParseQueryGpu(string output, IReadOnlyList<string>? fields = null)
    {
        const string what = "nvidia-smi --query-gpu";
        var table = ParseCsv(output, what, fields, "index");
        var index = table.Require("index");
        var uuid = table.Require("uuid");
        var name = table.Require("name");
        var memTotal = table.Require("memory.total");
        var bus = table.Optional("pci.bus_id");
        var memUsed = table.Optional("memory.used");
        var memFree = table.Optional("memory.free");
        var utilGpu = table.Optional("utilization.gpu");
        var utilMem = table.Optional("utilization.memory");
        var temp = table.Optional("temperature.gpu");
        var power = table.Optional("power.draw");
        var mig = table.Optional("mig.mode.current");

        var gpus = new List<NvidiaSmiGpu>(table.Rows.Count);
        foreach (var row in table.Rows)
        {
            var uuidValue = row.Text(uuid, required: true)!;
            if (!uuidValue.StartsWith("GPU-", StringComparison.Ordinal))
            {
                throw row.Error(uuid, "a GPU UUID starts with 'GPU-'");
            }

            gpus.Add(new NvidiaSmiGpu(
                Index: (int)row.Integer(index, null, required: true)!.Value,
                Uuid: uuidValue,
                Name: row.Text(name, required: true)!,
                MemoryTotalMiB: row.Integer(memTotal, "MiB", required: true)!.Value,
                PciBusId: row.Text(bus),
                MemoryUsedMiB: row.Integer(memUsed, "MiB"),
                MemoryFreeMiB: row.Integer(memFree, "MiB"),
                UtilizationGpuPercent: (int?)row.Integer(utilGpu, "%"),
                UtilizationMemoryPercent: (int?)row.Integer(utilMem, "%"),
                TemperatureC: (int?)row.Integer(temp, "C"),
                PowerDrawW: row.Real(power, "W"),
                MigMode: row.Text(mig)));
        }

        CheckUnique(gpus, what);
        return gpus;
    }

    /// <summary>Parses <c>nvidia-smi --query-compute-apps=pid,gpu_uuid,process_name,used_memory --format=csv[,…]</c>.</summary>
    public static IReadOnlyList<NvidiaSmiProcess> ParseComputeApps(string output, IReadOnlyList<string>? fields = null)
    {
        var table = ParseCsv(output, "nvidia-smi --query-compute-apps", fields, "pid");
        var pid = table.Require("pid");
        var uuid = table.Require("gpu_uuid");
        var name = table.Optional("process_name");
        var mem = table.Optional("used_memory");
        var apps = new List<NvidiaSmiProcess>(table.Rows.Count);
        foreach (var row in table.Rows)
        {
            apps.Add(new NvidiaSmiProcess(
                (int)row.Integer(pid, null, required: true)!.Value,
                row.Text(uuid, required: true)!,
                row.Text(name) ?? "",
                row.Integer(mem, "MiB")));
        }

        return apps;
    }

    /// <summary>Parses <c>nvidia-smi -L</c>: <c>GPU 0: NAME (UUID: GPU-…)</c>, with MIG device lines under a GPU ignored.</summary>
    public static IReadOnlyList<(int Index, string Name, string Uuid)> ParseList(string output)
    {
        var gpus = new List<(int, string, string)>();
        var lineNo = 0;
        foreach (var raw in SplitLines(output))
        {
            lineNo++;
            if (raw.Trim().Length == 0)
            {
                continue;
            }

            var gpu = ListGpuLine().Match(raw);
            if (gpu.Success)
            {
                gpus.Add((int.Parse(gpu.Groups[1].Value, CultureInfo.InvariantCulture), gpu.Groups[2].Value.Trim(), gpu.Groups[3].Value));
                continue;
            }

            if (ListMigLine().IsMatch(raw) && gpus.Count > 0)
            {
                continue;
            }

            throw new NvidiaSmiFormatException(
                $"nvidia-smi -L, line {lineNo}: expected 'GPU <index>: <name> (UUID: GPU-…)' but found '{Shorten(raw)}'.");
        }

        var seen = new HashSet<int>();
        foreach (var (index, _, _) in gpus)
        {
            if (!seen.Add(index))
            {
                throw new NvidiaSmiFormatException($"nvidia-smi -L: GPU index {index} appears twice.");
            }
        }

        return gpus;
    }

    /// <summary>
    /// Parses <c>nvidia-smi -q -x</c>. The index of a GPU is its position in the document (nvidia-smi lists GPUs in
    /// index order); processes come from each GPU's <c>processes</c> element.
    /// </summary>
    public static IReadOnlyList<NvidiaSmiGpu> ParseXml(string output)
    {
        const string what = "nvidia-smi -q -x";
        XDocument doc;
        try
        {
            using var reader = XmlReader.Create(new StringReader(output), new XmlReaderSettings { DtdProcessing = DtdProcessing.Ignore, XmlResolver = null });
            doc = XDocument.Load(reader);
        }
        catch (XmlException e)
        {
            throw new NvidiaSmiFormatException($"{what}: not well-formed XML ({e.Message}).", e);
        }

        var root = doc.Root;
        if (root is null || root.Name.LocalName != "nvidia_smi_log")
        {
            throw new NvidiaSmiFormatException($"{what}: the root element is '{root?.Name.LocalName}', expected 'nvidia_smi_log'.");
        }

        var gpus = new List<NvidiaSmiGpu>();
        var position = 0;
        foreach (var gpu in root.Elements("gpu"))
        {
            var where = $"{what}, <gpu> #{position}";
            var uuid = XText(gpu, "uuid") ?? throw new NvidiaSmiFormatException($"{where}: no <uuid>.");
            if (!uuid.StartsWith("GPU-", StringComparison.Ordinal))
            {
                throw new NvidiaSmiFormatException($"{where}: <uuid> is '{uuid}', a GPU UUID starts with 'GPU-'.");
            }

            var name = XText(gpu, "product_name") ?? throw new NvidiaSmiFormatException($"{where}: no <product_name>.");
            var total = XNumber(gpu, where, "fb_memory_usage", "total") ?? throw new NvidiaSmiFormatException($"{where}: no <fb_memory_usage><total>.");
            var processes = new List<NvidiaSmiProcess>();
            foreach (var p in gpu.Element("processes")?.Elements("process_info") ?? [])
            {
                var pid = XNumber(p, where + " <process_info>", "pid") ?? throw new NvidiaSmiFormatException($"{where}: a <process_info> has no <pid>.");
                processes.Add(new NvidiaSmiProcess((int)pid, uuid, XText(p, "process_name") ?? "", XNumber(p, where + " <process_info>", "used_memory")));
            }

            gpus.Add(new NvidiaSmiGpu(
                Index: position,
                Uuid: uuid,
                Name: name,
                MemoryTotalMiB: total,
                PciBusId: XText(gpu, "pci", "pci_bus_id") ?? gpu.Attribute("id")?.Value,
                MemoryUsedMiB: XNumber(gpu, where, "fb_memory_usage", "used"),
                MemoryFreeMiB: XNumber(gpu, where, "fb_memory_usage", "free"),
                UtilizationGpuPercent: (int?)XNumber(gpu, where, "utilization", "gpu_util"),
                UtilizationMemoryPercent: (int?)XNumber(gpu, where, "utilization", "memory_util"),
                TemperatureC: (int?)XNumber(gpu, where, "temperature", "gpu_temp"),
                PowerDrawW: null,
                MigMode: XText(gpu, "mig_mode", "current_mig"),
                Processes: processes));
            position++;
        }

        var attached = XText(root, "attached_gpus");
        if (attached is not null && int.TryParse(attached, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n != gpus.Count)
        {
            throw new NvidiaSmiFormatException($"{what}: <attached_gpus> says {n} but the document has {gpus.Count} <gpu> elements.");
        }

        CheckUnique(gpus, what);
        return gpus;
    }

    private static string? XText(XElement element, params string[] path)
    {
        var e = element;
        foreach (var step in path)
        {
            e = e.Element(step);
            if (e is null)
            {
                return null;
            }
        }

        var v = e.Value.Trim();
        return IsMissing(v) ? null : v;
    }

    private static long? XNumber(XElement element, string where, params string[] path)
    {
        var text = XText(element, path);
        if (text is null)
        {
            return null;
        }

        var number = text.Split(' ', 2)[0];
        return long.TryParse(number, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new NvidiaSmiFormatException($"{where}: <{string.Join("><", path)}> is '{Shorten(text)}', expected a whole number.");
    }

    private static void CheckUnique(IReadOnlyList<NvidiaSmiGpu> gpus, string what)
    {
        var indices = new HashSet<int>();
        var uuids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var g in gpus)
        {
            if (!indices.Add(g.Index))
            {
                throw new NvidiaSmiFormatException($"{what}: GPU index {g.Index} appears twice.");
            }

            if (!uuids.Add(g.Uuid))
            {
                throw new NvidiaSmiFormatException($"{what}: GPU UUID {g.Uuid} appears twice.");
            }
        }
    }

    internal static bool IsMissing(string value) =>
        value.Length == 0 || value is "N/A" or "[N/A]" or "[Not Supported]" or "Not Supported" or "[Unknown Error]" or "[Insufficient Permissions]";

    private static IEnumerable<string> SplitLines(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');

    private static string Shorten(string s) => s.Length <= 80 ? s : string.Concat(s.AsSpan(0, 77), "...");

    private static CsvTable ParseCsv(string output, string what, IReadOnlyList<string>? fields, string firstHeader)
    {
        ArgumentNullException.ThrowIfNull(output);
        var lines = new List<(int No, string Text)>();
        var no = 0;
        foreach (var line in SplitLines(output))
        {
            no++;
            if (line.Trim().Length > 0)
            {
                lines.Add((no, line));
            }
        }

        List<string> columns;
        var first = 0;
        if (lines.Count > 0 && IsHeader(lines[0].Text, firstHeader))
        {
            columns = [];
            foreach (var cell in lines[0].Text.Split(','))
            {
                var c = cell.Trim();
                var bracket = c.IndexOf('[', StringComparison.Ordinal);
                if (bracket >= 0)
                {
                    c = c[..bracket].Trim();
                }

                columns.Add(HeaderAliases.TryGetValue(c, out var alias) ? alias : c);
            }

            first = 1;
        }
        else if (fields is not null)
        {
            columns = [.. fields];
        }
        else
        {
            throw new NvidiaSmiFormatException(lines.Count == 0
                ? $"{what}: the output is empty (no header line and no rows)."
                : $"{what}, line {lines[0].No}: expected a header line starting with '{firstHeader}' but found '{Shorten(lines[0].Text)}' (for --format=csv,noheader pass the queried field list).");
        }

        var rows = new List<CsvRow>();
        for (var i = first; i < lines.Count; i++)
        {
            var (lineNo, text) = lines[i];
            if (text.StartsWith("No devices were found", StringComparison.OrdinalIgnoreCase) || text.Contains("has failed", StringComparison.OrdinalIgnoreCase))
            {
                throw new NvidiaSmiFormatException($"{what}, line {lineNo}: nvidia-smi reported an error: '{Shorten(text.Trim())}'.");
            }

            var cells = text.Split(',');
            if (cells.Length != columns.Count)
            {
                throw new NvidiaSmiFormatException(
                    $"{what}, line {lineNo}: {cells.Length} fields but {columns.Count} columns ({string.Join(", ", columns)}): '{Shorten(text)}'.");
            }

            rows.Add(new CsvRow(what, lineNo, columns, [.. cells.Select(c => c.Trim())]));
        }

        return new CsvTable(what, columns, rows);
    }

    private static bool IsHeader(string line, string firstHeader)
    {
        var firstCell = line.Split(',')[0].Trim();
        var bracket = firstCell.IndexOf('[', StringComparison.Ordinal);
        return (bracket >= 0 ? firstCell[..bracket].Trim() : firstCell).Equals(firstHeader, StringComparison.OrdinalIgnoreCase);
    }

    [GeneratedRegex(@"^GPU (\d+): (.+) \(UUID: (GPU-[0-9A-Za-z-]+)\)\s*$")]
    private static partial Regex ListGpuLine();

    [GeneratedRegex(@"^\s+MIG .*\(UUID: MIG-[^)]+\)\s*$")]
    private static partial Regex ListMigLine();

    private sealed record CsvTable(string What, IReadOnlyList<string> Columns, IReadOnlyList<CsvRow> Rows)
    {
        public int Require(string column)
        {
            var i = IndexOf(column);
            return i >= 0 ? i : throw new NvidiaSmiFormatException($"{What}: no '{column}' column (columns: {string.Join(", ", Columns)}).");
        }

        public int Optional(string column) => IndexOf(column);

        private int IndexOf(string column)
        {
            for (var i = 0; i < Columns.Count; i++)
            {
                if (Columns[i].Equals(column, StringComparison.OrdinalIgnoreCase))
                {
                    return i;
                }
            }

            return -1;
        }
    }

    private sealed record CsvRow(string What, int LineNo, IReadOnlyList<string> Columns, string[] Cells)
    {
        public NvidiaSmiFormatException Error(int column, string expected) =>
            new($"{What}, line {LineNo}, column '{Columns[column]}': '{Shorten(Cells[column])}' is not valid ({expected}).");

        public string? Text(int column, bool required = false)
        {
            if (column < 0)
            {
                return null;
            }

            var v = Cells[column];
            if (IsMissing(v))
            {
                return required ? throw Error(column, "a value is required") : null;
            }

            return v;
        }

        public long? Integer(int column, string? unit, bool required = false)
        {
            var v = Number(column, unit, required);
            if (v is null)
            {
                return null;
            }

            return long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)
                ? n
                : throw Error(column, unit is null ? "a whole number" : $"a whole number, optionally followed by '{unit}'");
        }

        public double? Real(int column, string unit)
        {
            var v = Number(column, unit, required: false);
            if (v is null)
            {
                return null;
            }

            return double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
                ? d
                : throw Error(column, $"a number, optionally followed by '{unit}'");
        }

        private string? Number(int column, string? unit, bool required)
        {
            var v = Text(column, required);
            if (v is null)
            {
                return null;
            }

            if (unit is not null && v.EndsWith(unit, StringComparison.Ordinal))
            {
                v = v[..^unit.Length].TrimEnd();
            }

            return v;
        }
    }
}
