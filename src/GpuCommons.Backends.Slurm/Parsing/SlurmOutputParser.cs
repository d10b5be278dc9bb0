using System.Globalization;

namespace GpuCommons.Backends.Slurm.Parsing;

/// <summary>
/// Parsers for the exact output formats the backend asks Slurm for. Every command is run with an explicit format,
/// no header and a <c>|</c> separator, with free text (job name, node reason) last so that a <c>|</c> inside it
/// cannot shift the columns. A line that does not fit is reported as a <see cref="SlurmParseError"/> and skipped.
/// </summary>
public static class SlurmOutputParser
{
    /// <summary><c>squeue -h -t all -o</c> format: id, state, reason, nodes, submit, start, end, name.</summary>
    public const string SqueueFormat = "%i|%T|%r|%N|%V|%S|%e|%j";
    private const int SqueueFields = 8;

    /// <summary><c>sacct -X -n -P --format</c> columns; job name last.</summary>
    public const string SacctFormat = "JobIDRaw,State,ExitCode,Submit,Start,End,ElapsedRaw,NodeList,AllocTRES,JobName";
    private const int SacctFields = 10;

    /// <summary><c>sinfo -h -N -o</c> format: node, partition, state, CPUs, memory (RealMemory, MiB), GRES, features, reason.</summary>
    public const string SinfoFormat = "%N|%P|%T|%c|%m|%G|%f|%E";
    private const int SinfoFields = 8;

    /// <param name="output">What squeue printed.</param>
    /// <param name="ourPrefix">Our job-name prefix: a row of ours whose name field holds a '|' has an extra column.</param>
    public static SlurmParseResult<SlurmJobRow> ParseSqueue(string output, string? ourPrefix = "gpuc-")
    {
        var rows = new List<SlurmJobRow>();
        var errors = new List<SlurmParseError>();
        var lineNo = 0;
        foreach (var raw in output.AsSpan().EnumerateLines())
        {
            lineNo++;
            if (raw.IsWhiteSpace())
            {
                continue;
            }

            var line = raw.ToString();
            if (!TryJobLine("squeue", lineNo, line, SqueueFields, errors, out var f, out var id, out var state))
            {
                continue;
            }

            if (!TryTime(f[4], out var submit) || !TryTime(f[5], out var start) || !TryTime(f[6], out var end))
            {
                errors.Add(new("squeue", lineNo, line, "unreadable time"));
                continue;
            }

            IReadOnlyList<string> nodes;
            try
            {
                nodes = HostList.Expand(f[3]);
            }
            catch (FormatException e)
            {
                errors.Add(new("squeue", lineNo, line, e.Message));
                continue;
            }

            // squeue prints the expected start of a pending job and the expected end of a running one: keep only facts.
            if (state == SlurmJobState.Pending)
            {
                start = null;
            }

            if (!state.IsTerminal())
            {
                end = null;
            }

            if (ExtraColumn(f[7], ourPrefix))
            {
                errors.Add(new("squeue", lineNo, line, "unexpected column after the job name"));
                continue;
            }

            rows.Add(new SlurmJobRow(id, f[7], state, NullIfNone(f[2]), nodes, submit, start, end, Source: "squeue"));
        }

        return new(rows, errors);
    }

    public static SlurmParseResult<SlurmJobRow> ParseSacct(string output, string? ourPrefix = "gpuc-")
    {
        var rows = new List<SlurmJobRow>();
        var errors = new List<SlurmParseError>();
        var lineNo = 0;
        foreach (var raw in output.AsSpan().EnumerateLines())
        {
            lineNo++;
            if (raw.IsWhiteSpace())
            {
                continue;
            }

            var line = raw.ToString();
            if (!TryJobLine("sacct", lineNo, line, SacctFields, errors, out var f, out var id, out var state))
            {
                continue;
            }

            if (!TryExitCode(f[2], out var exit, out var signal))
            {
                errors.Add(new("sacct", lineNo, line, $"unreadable exit code '{f[2]}'"));
                continue;
            }

            if (!TryTime(f[3], out var submit) || !TryTime(f[4], out var start) || !TryTime(f[5], out var end))
            {
                errors.Add(new("sacct", lineNo, line, "unreadable time"));
                continue;
            }

            if (!long.TryParse(f[6], NumberStyles.None, CultureInfo.InvariantCulture, out var elapsed))
            {
                errors.Add(new("sacct", lineNo, line, $"unreadable elapsed seconds '{f[6]}'"));
                continue;
            }

            IReadOnlyList<string> nodes;
            try
            {
                nodes = HostList.Expand(f[7]);
            }
            catch (FormatException e)
            {
                errors.Add(new("sacct", lineNo, line, e.Message));
                continue;
            }

            if (!state.IsTerminal())
            {
                end = null;
            }

            if (ExtraColumn(f[9], ourPrefix))
            {
                errors.Add(new("sacct", lineNo, line, "unexpected column after the job name"));
                continue;
            }

            rows.Add(new SlurmJobRow(id, f[9], state, null, nodes, submit, start, end, exit, signal, elapsed, GpusFromTres(f[8]), "sacct"));
        }

        return new(rows, errors);
    }

    public static SlurmParseResult<SlurmNodeRow> ParseSinfo(string output)
    {
        var rows = new List<SlurmNodeRow>();
        var errors = new List<SlurmParseError>();
        var lineNo = 0;
        foreach (var raw in output.AsSpan().EnumerateLines())
        {
            lineNo++;
            if (raw.IsWhiteSpace())
            {
                continue;
            }

            var line = raw.ToString();
            var f = line.Split('|', SinfoFields);
            if (f.Length != SinfoFields)
            {
                errors.Add(new("sinfo", lineNo, line, $"expected {SinfoFields} '|'-separated fields, got {f.Length}"));
                continue;
            }

            if (f[0].Length == 0 || f[0].Contains('[', StringComparison.Ordinal) || f[0].Contains(' ', StringComparison.Ordinal))
            {
                errors.Add(new("sinfo", lineNo, line, $"'{f[0]}' is not one node name (sinfo must run with -N)"));
                continue;
            }

            if (!int.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var cpus)
                || !long.TryParse(f[4].TrimEnd('+'), NumberStyles.None, CultureInfo.InvariantCulture, out var mem))
            {
                errors.Add(new("sinfo", lineNo, line, "unreadable CPU or memory count"));
                continue;
            }

            if (!TryGres(f[5], out var gpus, out var type))
            {
                errors.Add(new("sinfo", lineNo, line, $"unreadable GRES '{f[5]}'"));
                continue;
            }

            if (f[2].Length == 0)
            {
                errors.Add(new("sinfo", lineNo, line, "empty node state"));
                continue;
            }

            var partition = f[1];
            var isDefault = partition.EndsWith('*');
            var features = f[6] is "" or "(null)" ? [] : f[6].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            rows.Add(new SlurmNodeRow(f[0], partition.TrimEnd('*'), isDefault, f[2], cpus, mem, gpus, type, NullIfNone(f[7])) { Features = features });
        }

        return new(rows, errors);
    }

    /// <summary><c>sbatch --parsable</c>: <c>123</c> or <c>123;cluster</c>.</summary>
    public static bool TryParseSbatch(string output, out long slurmJobId)
    {
        slurmJobId = 0;
        foreach (var raw in output.AsSpan().EnumerateLines())
        {
            var line = raw.Trim();
            if (line.IsEmpty)
            {
                continue;
            }

            var semi = line.IndexOf(';');
            if (semi >= 0)
            {
                line = line[..semi];
            }

            return long.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out slurmJobId) && slurmJobId > 0;
        }

        return false;
    }

    /// <summary>
    /// <c>scontrol show job -o</c> (one line per job, <c>Key=Value</c> pairs); used for exit codes where Slurm has no
    /// accounting database.
    /// </summary>
    public static SlurmParseResult<SlurmJobRow> ParseScontrolJobs(string output)
    {
        var rows = new List<SlurmJobRow>();
        var errors = new List<SlurmParseError>();
        var lineNo = 0;
        foreach (var raw in output.AsSpan().EnumerateLines())
        {
            lineNo++;
            if (raw.IsWhiteSpace())
            {
                continue;
            }

            var line = raw.ToString();
            var kv = ScontrolPairs(line);
            if (!kv.TryGetValue("JobId", out var idText) || !long.TryParse(idText, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
            {
                errors.Add(new("scontrol", lineNo, line, "no numeric JobId="));
                continue;
            }

            if (!kv.TryGetValue("JobState", out var st) || !SlurmJobStates.TryParse(st, out var state))
            {
                errors.Add(new("scontrol", lineNo, line, "missing or unknown JobState="));
                continue;
            }

            int? exit = null, signal = null;
            if (kv.TryGetValue("ExitCode", out var ec))
            {
                if (!TryExitCode(ec, out exit, out signal))
                {
                    errors.Add(new("scontrol", lineNo, line, $"unreadable ExitCode '{ec}'"));
                    continue;
                }
            }

            if (!TryTime(kv.GetValueOrDefault("SubmitTime"), out var submit) || !TryTime(kv.GetValueOrDefault("StartTime"), out var start)
                || !TryTime(kv.GetValueOrDefault("EndTime"), out var end))
            {
                errors.Add(new("scontrol", lineNo, line, "unreadable time"));
                continue;
            }

            IReadOnlyList<string> nodes;
            try
            {
                nodes = HostList.Expand(kv.GetValueOrDefault("NodeList"));
            }
            catch (FormatException e)
            {
                errors.Add(new("scontrol", lineNo, line, e.Message));
                continue;
            }

            if (state == SlurmJobState.Pending)
            {
                start = null;
            }

            if (!state.IsTerminal())
            {
                end = null;
            }

            rows.Add(new SlurmJobRow(id, kv.GetValueOrDefault("JobName") ?? "", state, NullIfNone(kv.GetValueOrDefault("Reason")), nodes, submit, start, end, exit, signal, Source: "scontrol"));
        }

        return new(rows, errors);
    }

    /// <summary>GPU count from a TRES string such as <c>cpu=1,mem=100M,node=1,billing=1,gres/gpu=2</c>.</summary>
    public static int? GpusFromTres(string tres)
    {
        int? total = null;
        foreach (var part in tres.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=');
            if (eq < 0)
            {
                continue;
            }

            var key = part.AsSpan(0, eq);
            // gres/gpu=2 (total) or gres/gpu:h100=2 (per type, also counted in the total line)
            if (key.SequenceEqual("gres/gpu") && int.TryParse(part.AsSpan(eq + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                total = n;
            }
        }

        return total;
    }

    /// <summary>GPUs from a GRES string: <c>gpu:8</c>, <c>gpu:h100:8(S:0-1)</c>, <c>gpu:a100:4,gpu:v100:2</c>, <c>(null)</c>.</summary>
    public static bool TryGres(string gres, out int gpus, out string? type)
    {
        gpus = 0;
        type = null;
        if (string.IsNullOrWhiteSpace(gres) || gres is "(null)")
        {
            return true;
        }

        foreach (var item in SplitOutsideParens(gres))
        {
            var paren = item.IndexOf('(');
            var spec = paren >= 0 ? item[..paren] : item;
            var parts = spec.Split(':');
            if (parts[0] != "gpu")
            {
                continue;
            }

            if (parts.Length is < 2 or > 3)
            {
                return false;
            }

            var count = parts[^1];
            var mult = 1;
            if (count.EndsWith('K'))
            {
                mult = 1024;
                count = count[..^1];
            }

            if (!int.TryParse(count, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                return false;
            }

            gpus = checked(gpus + (n * mult));
            if (parts.Length == 3 && type is null)
            {
                type = parts[1];
            }
        }

        return true;
    }

    /// <summary><c>3:0</c> → exit 3, signal 0.</summary>
    public static bool TryExitCode(string? text, out int? exit, out int? signal)
    {
        exit = null;
        signal = null;
        if (string.IsNullOrEmpty(text))
        {
            return true;
        }

        var colon = text.IndexOf(':');
        if (colon < 0
            || !int.TryParse(text.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var e)
            || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var s))
        {
            return false;
        }

        exit = e;
        signal = s;
        return true;
    }

    /// <summary>ISO times as printed with <c>SLURM_TIME_FORMAT=standard</c> and <c>TZ=UTC</c>; <c>N/A</c>/<c>Unknown</c>/<c>None</c> are null.</summary>
    /// <summary>
    /// The head every job line shares: the field count, a numeric job id and a known state. Array and heterogeneous
    /// job ids (123_4, 123+1) are not ours and are skipped silently; anything else wrong is an error for the line.
    /// </summary>
    private static bool TryJobLine(string tool, int lineNo, string line, int fields, List<SlurmParseError> errors, out string[] f, out long id, out SlurmJobState state)
    {
        state = default;
        id = 0;
        f = line.Split('|', fields);
        if (f.Length != fields)
        {
            errors.Add(new(tool, lineNo, line, $"expected {fields} '|'-separated fields, got {f.Length}"));
            return false;
        }

        if (!long.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out id))
        {
            if (!IsForeignJobId(f[0]))
            {
                errors.Add(new(tool, lineNo, line, $"job id '{f[0]}' is not a number"));
            }

            return false;
        }

        if (!SlurmJobStates.TryParse(f[1], out state))
        {
            errors.Add(new(tool, lineNo, line, $"unknown job state '{f[1]}'"));
            return false;
        }

        return true;
    }

    public static bool TryTime(string? text, out DateTimeOffset? time)
    {
        time = null;
        if (string.IsNullOrWhiteSpace(text) || text is "N/A" or "Unknown" or "None" or "NONE" or "(null)")
        {
            return true;
        }

        if (DateTime.TryParseExact(text, "yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.None, out var dt))
        {
            time = new DateTimeOffset(DateTime.SpecifyKind(dt, DateTimeKind.Unspecified), TimeSpan.Zero);
            return true;
        }

        return false;
    }

    /// <summary>Our names never hold '|': one that does means Slurm printed a column we did not ask for.</summary>
    private static bool ExtraColumn(string name, string? ourPrefix) =>
        ourPrefix is not null && name.StartsWith(ourPrefix, StringComparison.Ordinal) && name.Contains('|', StringComparison.Ordinal);

    private static bool IsForeignJobId(string id) =>
        id.Length > 0 && char.IsAsciiDigit(id[0]) && (id.Contains('_', StringComparison.Ordinal) || id.Contains('+', StringComparison.Ordinal));

    private static string? NullIfNone(string? s) => s is null or "" or "None" or "none" or "(null)" or "N/A" ? null : s;

    private static List<string> SplitOutsideParens(string s)
    {
        var items = new List<string>();
        var depth = 0;
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '(')
            {
                depth++;
            }
            else if (s[i] == ')')
            {
                depth--;
            }
            else if (s[i] == ',' && depth == 0)
            {
                items.Add(s[start..i]);
                start = i + 1;
            }
        }

        items.Add(s[start..]);
        return items;
    }

    private static Dictionary<string, string> ScontrolPairs(string line)
    {
        // Key=Value separated by spaces; a value may itself contain spaces (Reason, Command), so a token without '='
        // before the next key is appended to the previous value.
        var kv = new Dictionary<string, string>(StringComparer.Ordinal);
        string? lastKey = null;
        foreach (var token in line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = token.IndexOf('=');
            if (eq > 0 && char.IsAsciiLetter(token[0]))
            {
                lastKey = token[..eq];
                kv.TryAdd(lastKey, token[(eq + 1)..]);
            }
            else if (lastKey is not null)
            {
                kv[lastKey] = kv[lastKey] + " " + token;
            }
        }

        return kv;
    }
}
