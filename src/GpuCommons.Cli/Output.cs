using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using GpuCommons.Core;
using Spectre.Console;

namespace GpuCommons.Cli;

/// <summary>
/// How the client commands print, the way Slurm users expect: on a terminal, tables sized to it; piped, plain
/// tab-separated lines without a header (what <c>squeue --noheader</c> users script against), or tables sized to
/// <c>COLUMNS</c> when it is set. Every field goes through <see cref="Display"/>'s one escaping function.
/// </summary>
internal static class Output
{
    /// <summary>How a table is written.</summary>
    public enum Mode
    {
        /// <summary>A table as wide as <see cref="Table.Width"/>.</summary>
        Table,

        /// <summary>Tab-separated, no header, one line per row.</summary>
        Plain,
    }

    /// <summary>Terminal: a table; piped: plain, unless <c>COLUMNS</c> asks for a table of that width.</summary>
    public static (Mode Mode, int? Width) Detect(bool redirected, string? columns)
    {
        int? width = int.TryParse(columns, NumberStyles.None, CultureInfo.InvariantCulture, out var w) && w is >= 20 and <= 10_000 ? w : null;
        return redirected && width is null ? (Mode.Plain, null) : (Mode.Table, width);
    }

    private static (Mode Mode, int? Width) Current => Detect(Console.IsOutputRedirected, Environment.GetEnvironmentVariable("COLUMNS"));

    /// <summary>A table of server data: cells are raw text, escaped when written.</summary>
    public sealed class Sheet(params string[] headers)
    {
        private readonly List<string[]> _rows = [];

        public int Count => _rows.Count;

        public void Add(params string?[] cells) => _rows.Add(cells.Select(c => c ?? "").ToArray());

        public void Write() => Write(Console.Out, Current.Mode, Current.Width);

        public void Write(TextWriter to, Mode mode, int? width)
        {
            if (mode == Mode.Plain)
            {
                foreach (var row in _rows)
                {
                    // Display.Safe writes a tab inside a field as \t, so a field never splits a line.
                    to.WriteLine(string.Join('\t', row.Select(Display.Safe)));
                }

                return;
            }

            // squeue's look: no borders, two spaces between columns; only the last column wraps.
            var table = new Table().Border(TableBorder.None).AddColumns(headers.Select((h, i) =>
            {
                var column = new TableColumn(Markup.Escape(h)).PadLeft(0).PadRight(2);
                return i < headers.Length - 1 ? column.NoWrap() : column;
            }).ToArray());
            foreach (var row in _rows)
            {
                table.AddRow(row.Select(Display.Cell).ToArray());
            }

            ConsoleFor(to, width).Write(table);
        }
    }

    /// <summary>A console writing to <paramref name="to"/>, as wide as asked (else the terminal's width).</summary>
    public static IAnsiConsole ConsoleFor(TextWriter to, int? width)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(to),
            Ansi = ReferenceEquals(to, System.Console.Out) && !System.Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ReferenceEquals(to, System.Console.Out) && !System.Console.IsOutputRedirected ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        });
        if (width is { } w)
        {
            console.Profile.Width = w;
        }

        return console;
    }

    /// <summary>
    /// JSON as scripts read it: indented, non-ASCII text and <c>+</c>, <c>&lt;</c>, <c>'</c> written as themselves, not
    /// <c>\u002B</c>; characters a terminal must not receive raw (controls, bidirectional overrides) still escaped.
    /// </summary>
    public static string Json(JsonNode? node)
    {
        if (node is null)
        {
            return "null";
        }

        var text = node.ToJsonString(JsonOptions);
        // The serializer escapes every control character inside a string, so a raw newline is indentation.
        static bool Unsafe(char c) => c is not ('\n' or '\r') && TextSafety.IsUnsafe(c);
        if (!text.Any(Unsafe))
        {
            return text;
        }

        // Only inside strings can such characters occur (JSON's own syntax is ASCII): \uXXXX is the same string.
        var sb = new StringBuilder(text.Length + 16);
        foreach (var c in text)
        {
            if (Unsafe(c))
            {
                sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    // ---- Slurm's formats -------------------------------------------------------------------------------------

    /// <summary>A duration as squeue prints it: <c>M:SS</c>, <c>H:MM:SS</c>, <c>D-HH:MM:SS</c>.</summary>
    public static string SlurmTime(long seconds)
    {
        if (seconds < 0)
        {
            seconds = 0;
        }

        long d = seconds / 86400, h = seconds / 3600 % 24, m = seconds / 60 % 60, s = seconds % 60;
        return d > 0 ? FormattableString.Invariant($"{d}-{h:00}:{m:00}:{s:00}")
            : h > 0 ? FormattableString.Invariant($"{h}:{m:00}:{s:00}")
            : FormattableString.Invariant($"{m}:{s:00}");
    }

    /// <summary>
    /// Where a job runs, short: one node as <c>local-1:0-7</c> (its GPUs as ranges; a share as <c>local-1:3(0.5)</c>),
    /// several as a Slurm host list <c>n[1-4]</c>. From the API's <c>NODE:GPU[:FRACTION];…</c>.
    /// </summary>
    public static string Where(string? placement)
    {
        if (string.IsNullOrEmpty(placement))
        {
            return "";
        }

        var nodes = new List<string>();
        var gpus = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var shares = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var item in placement.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = item.Split(':');
            var node = parts[0];
            if (!gpus.ContainsKey(node))
            {
                nodes.Add(node);
                gpus[node] = [];
                shares[node] = [];
            }

            if (parts.Length >= 2 && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var g))
            {
                gpus[node].Add(g);
                if (parts.Length >= 3)
                {
                    shares[node].Add($"{g}({parts[2]})");
                }
            }
        }

        if (nodes.Count == 1)
        {
            var n = nodes[0];
            return shares[n].Count > 0 && shares[n].Count == gpus[n].Count ? n + ":" + string.Join(',', shares[n]) : n + ":" + Ranges(gpus[n]);
        }

        return HostList(nodes);
    }

    /// <summary>Integers as ranges: <c>0-3,5,7-8</c>.</summary>
    public static string Ranges(IEnumerable<int> values) => GpuCommons.Backends.IntegerRanges.Format(values);

    /// <summary>
    /// Node names as a Slurm host list: <c>n[1-4,7]</c>, <c>gpu[001-003]</c> (zero padding kept), several prefixes
    /// joined by commas; names without a number as they are.
    /// </summary>
    public static string HostList(IEnumerable<string> names)
    {
        var groups = new List<(string Prefix, int Width, List<long> Numbers)>();
        var plain = new List<string>();
        foreach (var name in names.Distinct(StringComparer.Ordinal))
        {
            var k = name.Length;
            while (k > 0 && char.IsAsciiDigit(name[k - 1]))
            {
                k--;
            }

            if (k == name.Length || name.Length - k > 18)
            {
                plain.Add(name);
                continue;
            }

            var prefix = name[..k];
            var digits = name[k..];
            var width = digits.Length > 1 && digits[0] == '0' ? digits.Length : 0;
            var number = long.Parse(digits, CultureInfo.InvariantCulture);
            var group = groups.FirstOrDefault(x => x.Prefix == prefix && x.Width == width);
            if (group.Numbers is null)
            {
                group = (prefix, width, []);
                groups.Add(group);
            }

            group.Numbers.Add(number);
        }

        var parts = new List<string>(plain);
        foreach (var (prefix, width, numbers) in groups)
        {
            string N(long v) => width > 0 ? v.ToString(new string('0', width), CultureInfo.InvariantCulture) : v.ToString(CultureInfo.InvariantCulture);
            numbers.Sort();
            if (numbers.Count == 1)
            {
                parts.Add(prefix + N(numbers[0]));
                continue;
            }

            var ranges = new List<string>();
            for (var i = 0; i < numbers.Count;)
            {
                var j = i;
                while (j + 1 < numbers.Count && numbers[j + 1] == numbers[j] + 1)
                {
                    j++;
                }

                ranges.Add(j > i ? N(numbers[i]) + "-" + N(numbers[j]) : N(numbers[i]));
                i = j + 1;
            }

            parts.Add(prefix + "[" + string.Join(',', ranges) + "]");
        }

        return string.Join(',', parts);
    }

    /// <summary>A number the way people read amounts: <c>1,234.5</c>, no trailing zeros.</summary>
    public static string Number(double v) => v.ToString("#,0.##", CultureInfo.InvariantCulture);

    /// <summary>GPUs with the unit: <c>1 GPU</c>, <c>0.5 GPU</c>, <c>8 GPUs</c>.</summary>
    public static string Gpus(double v) => Number(v) + (v == 1 || v < 1 ? " GPU" : " GPUs");

    /// <summary>GPU-hours with the unit.</summary>
    public static string GpuHours(double v) => Number(v) + " GPU-h";

    /// <summary>
    /// An error from the server said once: a problem's detail usually starts with its field already
    /// (<c>gpus: 16 GPUs need …</c>); a detail that repeats it (<c>gpus: gpus: …</c>) loses the copy.
    /// </summary>
    public static string Once(string message)
    {
        var colon = message.IndexOf(": ", StringComparison.Ordinal);
        while (colon > 0)
        {
            var head = message[..(colon + 2)];
            if (!message.AsSpan(colon + 2).StartsWith(head, StringComparison.Ordinal))
            {
                break;
            }

            message = message[(colon + 2)..];
            colon = message.IndexOf(": ", StringComparison.Ordinal);
        }

        return message;
    }
}
