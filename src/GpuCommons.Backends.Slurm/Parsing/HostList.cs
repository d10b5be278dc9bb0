using System.Globalization;
using System.Text;

namespace GpuCommons.Backends.Slurm.Parsing;

/// <summary>Slurm host lists: <c>n[1-3,5]</c>, <c>gpu[001-002]</c>, <c>rack[1-2]-n[01-02]</c>, <c>a,b</c>.</summary>
public static class HostList
{
    /// <summary>Largest expansion accepted, so that a corrupt range cannot allocate without bound.</summary>
    public const int MaxHosts = 100_000;

    /// <summary>Expands a host list; throws <see cref="FormatException"/> on a malformed one.</summary>
    public static IReadOnlyList<string> Expand(string? list)
    {
        var result = new List<string>();
        if (string.IsNullOrWhiteSpace(list) || list is "(null)" or "None assigned" or "N/A")
        {
            return result;
        }

        if (list.AsSpan().IndexOfAny('[', ',', ']') < 0 && list.AsSpan().IndexOfAny(' ', '\t') < 0)
        {
            result.Add(list); // one plain name: the common case in squeue output
            return result;
        }

        foreach (var item in SplitTopLevel(list.Trim()))
        {
            ExpandItem(item, result);
        }

        return result;
    }

    /// <summary>Compresses names to a list Slurm accepts (<c>--nodelist</c>); plain comma-joined, which Slurm always accepts.</summary>
    public static string Join(IEnumerable<string> nodes) => string.Join(',', nodes);

    private static List<string> SplitTopLevel(string s)
    {
        var items = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            switch (s[i])
            {
                case '[':
                    depth++;
                    break;
                case ']':
                    depth--;
                    if (depth < 0)
                    {
                        throw new FormatException($"unbalanced ']' in host list '{s}'");
                    }

                    break;
                case ',' when depth == 0:
                    items.Add(s[start..i]);
                    start = i + 1;
                    break;
            }
        }

        if (depth != 0)
        {
            throw new FormatException($"unbalanced '[' in host list '{s}'");
        }

        items.Add(s[start..]);
        foreach (var item in items)
        {
            if (item.Length == 0)
            {
                throw new FormatException($"empty host name in host list '{s}'");
            }
        }

        return items;
    }

    private static void ExpandItem(string item, List<string> into)
    {
        var open = item.IndexOf('[');
        if (open < 0)
        {
            Add(into, item);
            return;
        }

        var close = item.IndexOf(']', open);
        var prefix = item[..open];
        var body = item[(open + 1)..close];
        var rest = item[(close + 1)..];
        var tails = new List<string>();
        ExpandItem(rest.Length == 0 ? "\0" : rest, tails);
        foreach (var range in body.Split(','))
        {
            var dash = range.IndexOf('-');
            var lo = dash < 0 ? range : range[..dash];
            var hi = dash < 0 ? range : range[(dash + 1)..];
            if (!long.TryParse(lo, NumberStyles.None, CultureInfo.InvariantCulture, out var a)
                || !long.TryParse(hi, NumberStyles.None, CultureInfo.InvariantCulture, out var b) || b < a)
            {
                throw new FormatException($"bad range '{range}' in host list item '{item}'");
            }

            if (b - a >= MaxHosts)
            {
                throw new FormatException($"range '{range}' is larger than {MaxHosts} hosts");
            }

            var width = lo.Length;
            var sb = new StringBuilder();
            for (var n = a; n <= b; n++)
            {
                foreach (var tail in tails)
                {
                    sb.Clear().Append(prefix).Append(n.ToString(CultureInfo.InvariantCulture).PadLeft(width, '0'));
                    if (tail != "\0")
                    {
                        sb.Append(tail);
                    }

                    Add(into, sb.ToString());
                }
            }
        }
    }

    private static void Add(List<string> into, string host)
    {
        if (into.Count >= MaxHosts)
        {
            throw new FormatException($"host list expands to more than {MaxHosts} hosts");
        }

        into.Add(host);
    }
}
