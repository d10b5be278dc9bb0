using System.Globalization;

namespace GpuCommons.Core.Jobs;

/// <summary>
/// Parsing and checking of the resource parts of a request: memory sizes (Slurm's <c>--mem</c> syntax), GPU model
/// lists and node-feature constraints. Every error is a <see cref="SpecException"/> naming the field.
/// </summary>
public static class ResourceRequest
{
    /// <summary>Most cores one job may ask for per GPU or per node.</summary>
    public const int MaxCpus = Fleet.NodeResources.MaxCpus;

    /// <summary>Most memory one job may ask for per GPU or per node, in MiB (64 TiB).</summary>
    public const long MaxMemoryMiB = Fleet.NodeResources.MaxMemoryMiB;

    /// <summary>Most GPU models or features in one request.</summary>
    public const int MaxNames = 16;

    /// <summary>
    /// Reads a memory size as Slurm does: a whole number with an optional unit K, M (default), G or T (powers of
    /// 1024; a trailing <c>B</c>, <c>iB</c> or lower case is accepted), to MiB, rounding K up.
    /// </summary>
    public static long ParseMemoryMiB(string text, string field)
    {
        var t = (text ?? "").Trim();
        var i = 0;
        while (i < t.Length && char.IsAsciiDigit(t[i]))
        {
            i++;
        }

        if (i == 0)
        {
            throw new SpecException(field, $"'{text}' is not a memory size (for example 16G, 500M, 2T; a number alone is MiB)");
        }

        var unit = t[i..].Trim().ToUpperInvariant();
        if (unit.EndsWith("IB", StringComparison.Ordinal))
        {
            unit = unit[..^2];
        }
        else if (unit.Length > 1 && unit.EndsWith('B'))
        {
            unit = unit[..^1];
        }

        if (!long.TryParse(t.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n > MaxMemoryMiB * 1024)
        {
            throw new SpecException(field, $"'{text}' is larger than {MaxMemoryMiB / (1024 * 1024)} TiB");
        }

        long mib = unit switch
        {
            "" or "M" => n,
            "K" => (n + 1023) / 1024,
            "G" => n * 1024,
            "T" => n * 1024 * 1024,
            _ => throw new SpecException(field, $"'{text}' has an unknown unit '{t[i..]}' (K, M, G or T)"),
        };
        if (mib < 1)
        {
            throw new SpecException(field, $"must be at least 1 MiB, got '{text}'");
        }

        if (mib > MaxMemoryMiB)
        {
            throw new SpecException(field, $"'{text}' is larger than {MaxMemoryMiB / (1024 * 1024)} TiB");
        }

        return mib;
    }

    /// <summary>Formats MiB the way Slurm reads it: <c>2G</c> when a whole number of GiB, else <c>1536M</c>.</summary>
    public static string FormatMemory(long mib) =>
        mib % (1024L * 1024) == 0 ? (mib / (1024 * 1024)).ToString(CultureInfo.InvariantCulture) + "T"
        : mib % 1024 == 0 ? (mib / 1024).ToString(CultureInfo.InvariantCulture) + "G"
        : mib.ToString(CultureInfo.InvariantCulture) + "M";

    /// <summary>
    /// Reads a node-feature constraint: features that must all be present, joined by <c>&amp;</c> or <c>,</c>
    /// (Slurm's AND). Slurm's OR, counts and brackets (<c>|</c>, <c>*</c>, <c>[</c>) are refused by name.
    /// </summary>
    public static IReadOnlyList<string> ParseConstraint(string text, string field)
    {
        var t = (text ?? "").Trim();
        foreach (var c in "|*[]()")
        {
            if (t.Contains(c, StringComparison.Ordinal))
            {
                throw new SpecException(field, $"'{text}': only features that must all be present are supported (joined by & or ,); '{c}' is not");
            }
        }

        return Names(t.Split('&', ','), field, "feature", IsFeatureName);
    }

    /// <summary>Reads allowed GPU models: one name or several joined by <c>,</c> (any of them will do).</summary>
    public static IReadOnlyList<string> ParseGpuModels(string text, string field) =>
        Names((text ?? "").Split(','), field, "GPU model", IsFeatureName);

    /// <summary>Checks and normalises a list of names (trimmed, distinct without case, in the order given).</summary>
    public static IReadOnlyList<string> Names(IEnumerable<string?> items, string field, string what, Func<string, bool> valid)
    {
        var list = new List<string>();
        foreach (var raw in items)
        {
            var s = raw?.Trim() ?? "";
            if (!valid(s))
            {
                throw new SpecException(field, $"'{raw}' is not a {what} name (letters, digits, '_', '-', '.', ':', '=', 1 to 64 characters)");
            }

            if (!list.Contains(s, StringComparer.OrdinalIgnoreCase))
            {
                list.Add(s);
            }
        }

        if (list.Count == 0)
        {
            throw new SpecException(field, $"names no {what}");
        }

        if (list.Count > MaxNames)
        {
            throw new SpecException(field, $"names {list.Count} of them; at most {MaxNames}");
        }

        return list;
    }

    /// <summary>A feature or GPU model name: 1–64 ASCII letters, digits, <c>_ - . : =</c>.</summary>
    public static bool IsFeatureName(string s) =>
        s.Length is >= 1 and <= 64 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or ':' or '=');
}
