using System.Globalization;
using System.Text.RegularExpressions;

namespace GpuCommons.Backends.Local.Gpus;

/// <summary>A GPU row of <c>nvidia-smi topo -m</c>: its link to every other GPU (<c>NV18</c>, <c>SYS</c>, …) and CPU/NUMA affinity.</summary>
public sealed record NvidiaSmiTopologyGpu(string Gpu, IReadOnlyDictionary<string, string> Links, string? CpuAffinity, string? NumaAffinity);

/// <summary>A GPU instance profile of <c>nvidia-smi mig -lgip</c>.</summary>
public sealed record NvidiaSmiMigProfile(int Gpu, string Name, int ProfileId, int FreeInstances, int TotalInstances, double MemoryGiB);

public static partial class NvidiaSmiParser
{
    /// <summary>Parses <c>nvidia-smi topo -m</c> (terminal escape codes allowed); GPU rows only, up to the legend.</summary>
    public static IReadOnlyList<NvidiaSmiTopologyGpu> ParseTopology(string output)
    {
        const string what = "nvidia-smi topo -m";
        var text = AnsiEscape().Replace(output, "");
        List<string>? header = null;
        var gpus = new List<NvidiaSmiTopologyGpu>();
        var lineNo = 0;
        foreach (var line in SplitLines(text))
        {
            lineNo++;
            var trimmed = line.Trim();
            if (trimmed.StartsWith("Legend", StringComparison.Ordinal))
            {
                break;
            }

            if (trimmed.Length == 0)
            {
                continue;
            }

            var cells = line.Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (header is null)
            {
                if (!cells[0].StartsWith("GPU", StringComparison.Ordinal))
                {
                    throw new NvidiaSmiFormatException($"{what}, line {lineNo}: expected the header (GPU0 … CPU Affinity) but found '{Shorten(trimmed)}'.");
                }

                header = [.. cells];
                continue;
            }

            if (!TopoGpuLabel().IsMatch(cells[0]))
            {
                continue; // NIC rows and the like
            }

            if (cells.Length - 1 != header.Count)
            {
                throw new NvidiaSmiFormatException($"{what}, line {lineNo}: {cells.Length - 1} values but {header.Count} columns ({string.Join(", ", header)}).");
            }

            var links = new Dictionary<string, string>(StringComparer.Ordinal);
            string? cpu = null, numa = null;
            for (var i = 0; i < header.Count; i++)
            {
                var value = cells[i + 1];
                if (header[i] == "CPU Affinity")
                {
                    cpu = IsMissing(value) ? null : value;
                }
                else if (header[i] == "NUMA Affinity")
                {
                    numa = IsMissing(value) ? null : value;
                }
                else if (TopoGpuLabel().IsMatch(header[i]) && header[i] != cells[0])
                {
                    links[header[i]] = value;
                }
            }

            gpus.Add(new NvidiaSmiTopologyGpu(cells[0], links, cpu, numa));
        }

        return header is null ? throw new NvidiaSmiFormatException($"{what}: no header line.") : gpus;
    }

    /// <summary>Parses <c>nvidia-smi mig -lgip</c> (the boxed table); continuation, border and header lines are skipped.</summary>
    public static IReadOnlyList<NvidiaSmiMigProfile> ParseMigProfiles(string output)
    {
        const string what = "nvidia-smi mig -lgip";
        var profiles = new List<NvidiaSmiMigProfile>();
        var lineNo = 0;
        foreach (var line in SplitLines(output))
        {
            lineNo++;
            var m = MigProfileLine().Match(line);
            if (m.Success)
            {
                profiles.Add(new NvidiaSmiMigProfile(
                    int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
                    m.Groups[2].Value,
                    int.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture),
                    int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture),
                    int.Parse(m.Groups[5].Value, CultureInfo.InvariantCulture),
                    double.Parse(m.Groups[6].Value, CultureInfo.InvariantCulture)));
            }
            else if (line.Contains("MIG ", StringComparison.Ordinal) && MigRowStart().IsMatch(line))
            {
                throw new NvidiaSmiFormatException($"{what}, line {lineNo}: a profile row that does not parse: '{Shorten(line.Trim())}'.");
            }
        }

        return profiles;
    }

    [GeneratedRegex(@"\x1b\[[0-9;]*[A-Za-z]")]
    private static partial Regex AnsiEscape();

    [GeneratedRegex(@"^GPU\d+$")]
    private static partial Regex TopoGpuLabel();

    [GeneratedRegex(@"^\|\s+(\d+)\s+(MIG \S+)\s+(\d+)\s+(\d+)/(\d+)\s+([\d.]+)\s+\S+\s+\d+\s+\d+\s+\d+\s+\|\s*$")]
    private static partial Regex MigProfileLine();

    [GeneratedRegex(@"^\|\s+\d+\s+MIG ")]
    private static partial Regex MigRowStart();
}
