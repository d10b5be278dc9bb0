using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace GpuCommons.Cli;

/// <summary>
/// What a job asks for, from <c>#SBATCH</c> lines, <c>#GPUC</c> lines and command-line flags, in that order of
/// precedence (each later source overrides the earlier). Null: not given.
/// </summary>
internal sealed class JobOptions
{
    public string? Project { get; set; }
    public string? Name { get; set; }
    public string? Partition { get; set; }
    public double? Gpus { get; set; }
    public int? GpusPerNode { get; set; }
    public int? Nodes { get; set; }
    /// <summary>Walltime in the API's form (seconds, <c>2h</c>, <c>1-12:00:00</c>…).</summary>
    public string? Time { get; set; }
    public string? Priority { get; set; }
    public bool? Checkpointable { get; set; }
    public string? Output { get; set; }
    public string? Error { get; set; }
    public string? Chdir { get; set; }
    public JsonObject? Array { get; set; }
    public JsonArray? Dependency { get; set; }

    /// <summary>Takes every value <paramref name="other"/> gives.</summary>
    public void OverrideWith(JobOptions other)
    {
        Project = other.Project ?? Project;
        Name = other.Name ?? Name;
        Partition = other.Partition ?? Partition;
        Gpus = other.Gpus ?? Gpus;
        GpusPerNode = other.GpusPerNode ?? GpusPerNode;
        Nodes = other.Nodes ?? Nodes;
        Time = other.Time ?? Time;
        Priority = other.Priority ?? Priority;
        Checkpointable = other.Checkpointable ?? Checkpointable;
        Output = other.Output ?? Output;
        Error = other.Error ?? Error;
        Chdir = other.Chdir ?? Chdir;
        Array = other.Array ?? Array;
        Dependency = other.Dependency ?? Dependency;
    }
}

/// <summary>
/// A batch script as <c>sbatch</c> reads it: directives on <c>#SBATCH</c> lines (sbatch's options and meanings) and
/// <c>#GPUC</c> lines (<c>gpuc submit</c>'s own flags, which override them), from the top of the file up to its first
/// command, as sbatch stops there. The script's text is sent with the job, as sbatch copies it, so the job does not
/// need to read the file where it was submitted. See <c>docs/batch-scripts.md</c>.
/// </summary>
internal sealed class BatchScript
{
    public required string Path { get; init; }
    public required string Text { get; init; }
    /// <summary>The interpreter from the <c>#!</c> line (<c>/bin/sh</c> without one).</summary>
    public required IReadOnlyList<string> Interpreter { get; init; }
    public required JobOptions Sbatch { get; init; }
    public required JobOptions Gpuc { get; init; }
    /// <summary>Directives read but not applied (sbatch options gpuc has no use for), said once each.</summary>
    public List<string> Ignored { get; } = [];

    /// <summary>The largest script sent with a job: the kernel's limit for one argument (MAX_ARG_STRLEN), less a margin.</summary>
    public const int MaxBytes = 120 * 1024;

    /// <summary>True when <paramref name="text"/> looks like a batch script: a <c>#!</c> line or a directive.</summary>
    public static bool LooksLikeScript(string text) =>
        text.StartsWith("#!", StringComparison.Ordinal) || text.Contains("#SBATCH", StringComparison.Ordinal) || text.Contains("#GPUC", StringComparison.Ordinal);

    public static BatchScript Parse(string path, string text)
    {
        var sbatch = new JobOptions();
        var gpuc = new JobOptions();
        var ignored = new List<string>();
        var interpreter = new List<string> { "/bin/sh" };
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (i == 0 && line.StartsWith("#!", StringComparison.Ordinal))
            {
                var words = line[2..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (words.Length > 0)
                {
                    interpreter = [.. words];
                }

                continue;
            }

            if (line.Length == 0)
            {
                continue;
            }

            if (!line.StartsWith('#'))
            {
                break; // sbatch reads directives up to the first command
            }

            var where = $"{path}:{i + 1}";
            if (Directive(line, "#SBATCH") is { } s)
            {
                ApplySbatch(Words(s, where), sbatch, ignored, where);
            }
            else if (Directive(line, "#GPUC") is { } g)
            {
                ApplyGpuc(Words(g, where), gpuc, where);
            }
        }

        var script = new BatchScript { Path = path, Text = text, Interpreter = interpreter, Sbatch = sbatch, Gpuc = gpuc };
        script.Ignored.AddRange(ignored);
        return script;
    }

    private static string? Directive(string line, string tag) =>
        line.StartsWith(tag, StringComparison.Ordinal) && (line.Length == tag.Length || char.IsWhiteSpace(line[tag.Length])) ? line[tag.Length..].Trim() : null;

    /// <summary>
    /// The command that runs the script's text where the job runs: the interpreter with <c>-c TEXT</c> for the shells
    /// and Python (a shell also gets the script's name as <c>$0</c>); any other interpreter runs a private copy of
    /// the file written at the job's start.
    /// </summary>
    public List<string> Command(IReadOnlyList<string> args)
    {
        if (Encoding.UTF8.GetByteCount(Text) > MaxBytes)
        {
            throw new CliException($"{Path}: {Encoding.UTF8.GetByteCount(Text)} bytes is more than the {MaxBytes} a batch script may have; put the work in a file the job reads and keep the script short", CliRunner.Usage);
        }

        var prog = Interpreter.Count > 1 && System.IO.Path.GetFileName(Interpreter[0]) == "env" ? Interpreter[^1] : Interpreter[0];
        var name = System.IO.Path.GetFileName(prog);
        var cmd = new List<string>(Interpreter);
        if (name is "sh" or "bash" or "dash" or "zsh" or "ksh")
        {
            cmd.AddRange(["-c", Text, System.IO.Path.GetFileName(Path)]);
        }
        else if (name.StartsWith("python", StringComparison.Ordinal))
        {
            cmd.AddRange(["-c", Text]);
        }
        else
        {
            // Any other interpreter reads a file: write the text to a private one and run that.
            cmd =
            [
                "/bin/sh", "-c",
                "f=$(mktemp \"${TMPDIR:-/tmp}/gpuc-script.XXXXXX\") && printf '%s' \"$1\" > \"$f\" && chmod 700 \"$f\" && shift && exec \"$f\" \"$@\"",
                "gpuc-script", Text,
            ];
        }

        cmd.AddRange(args);
        return cmd;
    }

    /// <summary>
    /// Wraps a command so that its output also goes to the files sbatch's <c>-o</c>/<c>-e</c> name (relative to the
    /// job's working directory; <c>%j</c> job id, <c>%x</c> name, <c>%u</c> user, <c>%A</c>/<c>%a</c> array job and
    /// task, <c>%%</c> a percent sign). The server still keeps the output for <c>gpuc logs</c>.
    /// </summary>
    public static List<string> WithOutputFiles(List<string> command, string? output, string? error)
    {
        if (output is null && error is null)
        {
            return command;
        }

        const string wrap = """
            x() { p=$1; r=; while [ -n "$p" ]; do case $p in
              %%*) r=$r%; p=${p#%%};;
              %j*) r=$r${GPUC_JOB_ID:-${SLURM_JOB_ID:-0}}; p=${p#%j};;
              %x*) r=$r${GPUC_JOB_NAME:-${SLURM_JOB_NAME:-job}}; p=${p#%x};;
              %u*) r=$r${USER:-$(id -un)}; p=${p#%u};;
              %A*) r=$r${GPUC_ARRAY_JOB_ID:-${SLURM_ARRAY_JOB_ID:-${GPUC_JOB_ID:-0}}}; p=${p#%A};;
              %a*) r=$r${GPUC_ARRAY_TASK_ID:-${SLURM_ARRAY_TASK_ID:-0}}; p=${p#%a};;
              *) r=$r${p%"${p#?}"}; p=${p#?};;
            esac; done; printf '%s' "$r"; }
            o=$1; e=$2; shift 2
            if [ -n "$o" ]; then o=$(x "$o"); exec > >(exec tee -a -- "$o"); fi
            if [ -n "$e" ]; then e=$(x "$e"); exec 2> >(exec tee -a -- "$e" >&2); elif [ -n "$o" ]; then exec 2> >(exec tee -a -- "$o" >&2); fi
            exec "$@"
            """;
        return ["/bin/bash", "-c", wrap, "gpuc-output", output ?? "", error ?? "", .. command];
    }

    // ---- Directives --------------------------------------------------------------------------------------------

    /// <summary>Splits a directive's text as a shell would (quotes kept together); a <c>#</c> after a space starts a comment.</summary>
    internal static List<string> Words(string text, string where)
    {
        var words = new List<string>();
        var sb = new StringBuilder();
        var inWord = false;
        char quote = '\0';
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
                else
                {
                    sb.Append(c);
                }

                continue;
            }

            if (c is '"' or '\'')
            {
                quote = c;
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(sb.ToString());
                    sb.Clear();
                    inWord = false;
                }
            }
            else if (c == '#' && !inWord)
            {
                break;
            }
            else
            {
                sb.Append(c);
                inWord = true;
            }
        }

        if (quote != '\0')
        {
            throw new CliException($"{where}: an unclosed {quote}", CliRunner.Usage);
        }

        if (inWord)
        {
            words.Add(sb.ToString());
        }

        return words;
    }

    /// <summary>(option, value) pairs from <c>--opt=v</c>, <c>--opt v</c>, <c>-X v</c>, <c>-Xv</c>; flags get a null value.</summary>
    private static List<(string Option, string? Value)> Pairs(List<string> words, Func<string, bool> takesValue, string where)
    {
        var pairs = new List<(string, string?)>();
        for (var i = 0; i < words.Count; i++)
        {
            var w = words[i];
            if (w.StartsWith("--", StringComparison.Ordinal))
            {
                var eq = w.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    pairs.Add((w[..eq], w[(eq + 1)..]));
                }
                else if (takesValue(w))
                {
                    pairs.Add((w, i + 1 < words.Count ? words[++i] : throw new CliException($"{where}: {w} needs a value", CliRunner.Usage)));
                }
                else
                {
                    pairs.Add((w, null));
                }
            }
            else if (w.StartsWith('-') && w.Length >= 2)
            {
                var opt = w[..2];
                if (w.Length > 2)
                {
                    pairs.Add((opt, w[2] == '=' ? w[3..] : w[2..]));
                }
                else if (takesValue(opt))
                {
                    pairs.Add((opt, i + 1 < words.Count ? words[++i] : throw new CliException($"{where}: {opt} needs a value", CliRunner.Usage)));
                }
                else
                {
                    pairs.Add((opt, null));
                }
            }
            else
            {
                throw new CliException($"{where}: '{Display.Safe(w)}' is not an option", CliRunner.Usage);
            }
        }

        return pairs;
    }

    private static readonly HashSet<string> SbatchFlags = new(StringComparer.Ordinal)
    {
        "--exclusive", "--requeue", "--no-requeue", "--hold", "--wait", "--parsable", "--quiet", "-Q", "-H", "-W", "--overcommit", "-O",
        "--contiguous", "--spread-job", "--test-only", "--use-min-nodes", "-v", "--verbose", "--get-user-env", "--ignore-pbs",
    };

    private static void ApplySbatch(List<string> words, JobOptions o, List<string> ignored, string where)
    {
        foreach (var (opt, value) in Pairs(words, w => !SbatchFlags.Contains(w), where))
        {
            var what = $"{where}: #SBATCH {opt}";
            string V() => value ?? throw new CliException($"{what} needs a value", CliRunner.Usage);
            switch (opt)
            {
                case "-A" or "--account":
                    o.Project = V();
                    break;
                case "-J" or "--job-name":
                    o.Name = V();
                    break;
                case "-p" or "--partition":
                    o.Partition = V().Contains(',', StringComparison.Ordinal)
                        ? throw new CliException($"{what}={Display.Safe(value)}: give one partition (gpuc picks any that fits when none is given)", CliRunner.Usage)
                        : value;
                    break;
                case "-N" or "--nodes":
                    o.Nodes = Int(V().Split('-')[0], what); // a min-max range: the minimum, as sbatch starts with it
                    break;
                case "-t" or "--time":
                    o.Time = SlurmTimeSeconds(V(), what).ToString(CultureInfo.InvariantCulture);
                    break;
                case "-G" or "--gpus":
                    o.Gpus = GpuCount(V(), what);
                    break;
                case "--gpus-per-node":
                    o.GpusPerNode = (int)GpuCount(V(), what);
                    break;
                case "--gres":
                    o.GpusPerNode = Gres(V(), what) ?? o.GpusPerNode;
                    break;
                case "-o" or "--output":
                    o.Output = V();
                    break;
                case "-e" or "--error":
                    o.Error = V();
                    break;
                case "-D" or "--chdir":
                    o.Chdir = V();
                    break;
                case "-a" or "--array":
                    o.Array = ParseArray(V(), what);
                    break;
                case "-d" or "--dependency":
                    o.Dependency = ParseDependency(V(), what);
                    break;
                case "--requeue":
                    break; // gpuc requeues after a node failure by default
                default:
                    ignored.Add($"{what}{(value is null ? "" : "=" + value)}");
                    break;
            }
        }
    }

    private static void ApplyGpuc(List<string> words, JobOptions o, string where)
    {
        foreach (var (opt, value) in Pairs(words, w => w is not "--checkpointable", where))
        {
            var what = $"{where}: #GPUC {opt}";
            string V() => value ?? throw new CliException($"{what} needs a value", CliRunner.Usage);
            switch (opt)
            {
                case "-p" or "--project":
                    o.Project = V();
                    break;
                case "-J" or "--name":
                    o.Name = V();
                    break;
                case "--partition":
                    o.Partition = V();
                    break;
                case "-g" or "--gpus":
                    o.Gpus = double.TryParse(V(), NumberStyles.Float, CultureInfo.InvariantCulture, out var g) && g > 0 && double.IsFinite(g)
                        ? g : throw new CliException($"{what}: '{Display.Safe(value)}' is not a number of GPUs", CliRunner.Usage);
                    break;
                case "--gpus-per-node":
                    o.GpusPerNode = Int(V(), what);
                    break;
                case "-N" or "--nodes":
                    o.Nodes = Int(V(), what);
                    break;
                case "-t" or "--time":
                    o.Time = V();
                    break;
                case "--priority":
                    o.Priority = V();
                    break;
                case "--checkpointable":
                    o.Checkpointable = value is null || value is "true" or "yes" or "1";
                    break;
                case "-o" or "--output":
                    o.Output = V();
                    break;
                case "-e" or "--error":
                    o.Error = V();
                    break;
                case "-D" or "--chdir":
                    o.Chdir = V();
                    break;
                case "--array":
                    o.Array = ParseArray(V(), what);
                    break;
                case "--dependency":
                    o.Dependency = ParseDependency(V(), what);
                    break;
                default:
                    throw new CliException($"{what}: not a gpuc submit option (see gpuc submit --help; sbatch's options go on #SBATCH lines)", CliRunner.Usage);
            }
        }
    }

    private static int Int(string text, string what) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0
            ? v : throw new CliException($"{what}: '{Display.Safe(text)}' is not a positive whole number", CliRunner.Usage);

    /// <summary><c>N</c> or <c>TYPE:N</c> (the type is for the partition to decide; gpuc counts).</summary>
    private static double GpuCount(string text, string what)
    {
        var n = text.Contains(':', StringComparison.Ordinal) ? text[(text.LastIndexOf(':') + 1)..] : text;
        return Int(n, what);
    }

    /// <summary>GPUs per node from a gres list: <c>gpu</c> (1), <c>gpu:4</c>, <c>gpu:a100:4</c>; null when no gpu gres.</summary>
    private static int? Gres(string text, string what)
    {
        foreach (var item in text.Split(','))
        {
            var parts = item.Split(':');
            if (parts[0] != "gpu")
            {
                continue;
            }

            return parts.Length == 1 ? 1
                : int.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n
                : parts.Length == 2 ? 1 // gpu:TYPE
                : throw new CliException($"{what}={Display.Safe(text)}: '{Display.Safe(item)}' is not gpu[:TYPE][:COUNT]", CliRunner.Usage);
        }

        return null;
    }

    /// <summary>
    /// Slurm's time limits in seconds: <c>minutes</c>, <c>minutes:seconds</c>, <c>hours:minutes:seconds</c>,
    /// <c>days-hours</c>, <c>days-hours:minutes</c>, <c>days-hours:minutes:seconds</c>.
    /// </summary>
    public static long SlurmTimeSeconds(string text, string what)
    {
        var bad = new CliException($"{what}: '{Display.Safe(text)}' is not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)", CliRunner.Usage);
        text = text.Trim();
        if (text is "UNLIMITED" or "INFINITE" or "-1")
        {
            throw new CliException($"{what}: jobs need a time limit at this center; give one (for example 1-00:00:00)", CliRunner.Usage);
        }

        long days = 0;
        var rest = text;
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash >= 0)
        {
            days = long.TryParse(text[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out var d) ? d : throw bad;
            rest = text[(dash + 1)..];
        }

        var parts = rest.Split(':');
        var n = new long[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!long.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out n[i]) || n[i] > 10_000_000)
            {
                throw bad;
            }
        }

        var seconds = dash >= 0
            ? parts.Length switch { 1 => n[0] * 3600, 2 => n[0] * 3600 + n[1] * 60, 3 => n[0] * 3600 + n[1] * 60 + n[2], _ => throw bad }
            : parts.Length switch { 1 => n[0] * 60, 2 => n[0] * 60 + n[1], 3 => n[0] * 3600 + n[1] * 60 + n[2], _ => throw bad };
        seconds += days * 86400;
        return seconds > 0 ? seconds : throw new CliException($"{what}: a time limit must be more than zero", CliRunner.Usage);
    }

    /// <summary>
    /// <c>--array</c> as the API's <c>array</c> field: <c>0-999%50</c> → <c>{"indices": "0-999", "maxRunning": 50}</c>.
    /// Indices: comma-separated <c>N</c>, <c>A-B</c> or <c>A-B:STEP</c>, each 0 … 4,000,000.
    /// </summary>
    public static JsonObject ParseArray(string text, string what)
    {
        var spec = text.Trim();
        int? max = null;
        var pct = spec.IndexOf('%', StringComparison.Ordinal);
        if (pct >= 0)
        {
            max = int.TryParse(spec[(pct + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var m) && m > 0
                ? m : throw new CliException($"{what}={Display.Safe(text)}: after % comes how many tasks may run at once (a positive number)", CliRunner.Usage);
            spec = spec[..pct];
        }

        const long limit = 4_000_000;
        long count = 0;
        foreach (var item in spec.Split(','))
        {
            var bad = new CliException($"{what}={Display.Safe(text)}: '{Display.Safe(item)}' is not N, A-B or A-B:STEP (0 … {limit:N0})", CliRunner.Usage);
            var step = 1L;
            var range = item;
            var colon = item.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                step = long.TryParse(item[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : throw bad;
                range = item[..colon];
            }

            var ends = range.Split('-');
            if (ends.Length is < 1 or > 2 || !long.TryParse(ends[0], NumberStyles.None, CultureInfo.InvariantCulture, out var a)
                || !long.TryParse(ends[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var b) || a > b || b > limit || (colon >= 0 && ends.Length == 1))
            {
                throw bad;
            }

            count += (b - a) / step + 1;
        }

        var o = new JsonObject { ["indices"] = spec };
        if (max is { } mr)
        {
            o["maxRunning"] = mr;
        }

        return count > 0 ? o : throw new CliException($"{what}: an array needs at least one task", CliRunner.Usage);
    }

    /// <summary>
    /// <c>--dependency</c> as the API's <c>dependency</c> field, every condition required (Slurm's <c>,</c>):
    /// <c>afterok:12:13,singleton</c> → <c>[{"type": "afterok", "jobs": [12, 13]}, {"type": "singleton"}]</c>.
    /// </summary>
    public static JsonArray ParseDependency(string text, string what)
    {
        if (text.Contains('?', StringComparison.Ordinal))
        {
            throw new CliException($"{what}={Display.Safe(text)}: '?' (any one of) is not supported; conditions joined by ',' must all hold", CliRunner.Usage);
        }

        var list = new JsonArray();
        foreach (var item in text.Split(',', StringSplitOptions.TrimEntries))
        {
            var parts = item.Split(':');
            var type = parts[0];
            if (type == "singleton")
            {
                if (parts.Length > 1)
                {
                    throw new CliException($"{what}: singleton takes no job ids", CliRunner.Usage);
                }

                list.Add(new JsonObject { ["type"] = "singleton" });
                continue;
            }

            if (type is not ("afterok" or "afterany" or "afternotok"))
            {
                throw new CliException($"{what}={Display.Safe(text)}: '{Display.Safe(type)}' is not afterok, afterany, afternotok or singleton", CliRunner.Usage);
            }

            if (parts.Length < 2)
            {
                throw new CliException($"{what}: {type} needs job ids ({type}:ID[:ID…])", CliRunner.Usage);
            }

            var jobs = new JsonArray();
            foreach (var id in parts.Skip(1))
            {
                jobs.Add(long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var j) && j > 0
                    ? j : throw new CliException($"{what}: '{Display.Safe(id)}' is not a job id", CliRunner.Usage));
            }

            list.Add(new JsonObject { ["type"] = type, ["jobs"] = jobs });
        }

        return list;
    }
}
