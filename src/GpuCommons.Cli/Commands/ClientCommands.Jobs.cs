using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using Spectre.Console;

namespace GpuCommons.Cli.Commands;

/// <summary>Jobs: <c>submit</c> (sbatch), <c>queue</c> (squeue), <c>show</c> (scontrol show job), <c>logs</c>.</summary>
internal static partial class ClientCommands
{
    private static Command Submit()
    {
        var project = new Option<string?>("--project", "-p") { Description = "Project to charge (default: your only project); #SBATCH -A" };
        var gpus = new Option<double?>("--gpus", "-g") { Description = "GPUs (a fraction below 1 shares one GPU); #SBATCH --gpus, --gres=gpu:N" };
        var time = new Option<string?>("--time", "-t") { Description = "Walltime: 90m, 2h, 1d, 1-12:00:00; #SBATCH -t" };
        var name = new Option<string?>("--name", "-J") { Description = "Job name; #SBATCH -J" };
        var partition = new Option<string?>("--partition") { Description = "Partition (default: any that fits); #SBATCH -p" };
        var nodes = new Option<int?>("--nodes", "-N") { Description = "Nodes (multi-node jobs take whole nodes); #SBATCH -N" };
        var priority = new Option<string?>("--priority") { Description = "preemptible, normal or high" };
        var file = new Option<string?>("--file", "-f") { Description = "Job file (JSON with the API's fields); flags override it" };
        var key = new Option<string?>("--idempotency-key") { Description = "Makes a retried submission safe (default: a new one per call)" };
        var checkpointable = new Option<bool>("--checkpointable") { Description = "The job handles SIGUSR1 and can be preempted with a grace period" };
        var output = new Option<string?>("--output", "-o") { Description = "Also write the job's output to this file (%j job id, %x name); #SBATCH -o" };
        var error = new Option<string?>("--error", "-e") { Description = "Also write the job's standard error to this file; #SBATCH -e" };
        var chdir = new Option<string?>("--chdir", "-D") { Description = "Directory the job starts in (default: this one, when the job's account can enter it; else its home)" };
        var array = new Option<string?>("--array", "-a") { Description = "Job array: 0-999, 1,3,5-7, 0-15:4; %N runs at most N at once; #SBATCH --array" };
        var dependency = new Option<string?>("--dependency", "-d") { Description = "afterok:ID[:ID], afterany:ID, afternotok:ID, singleton (joined by ,); #SBATCH -d" };
        var command = new Argument<string[]>("command")
        {
            Description = "A batch script (its #SBATCH and #GPUC lines are read, as sbatch does) and its arguments, or a command after --",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var c = new Command("submit", "Submit a job: gpuc submit job.sh, or gpuc submit --project P --gpus 8 --time 2h -- python train.py")
        {
            project, gpus, time, name, partition, nodes, priority, file, key, checkpointable, output, error, chdir, array, dependency, command,
        };
        var common = AddCommon(c);
        var resources = SubmitResourceOptions.AddTo(c);
        var container = ContainerOptions.AddTo(c);
        c.SetAction(async (parse, ct) =>
        {
            var body = parse.GetValue(file) is { } path ? await ReadJobFileAsync(path, ct) : new SubmitJobRequest();

            // sbatch's rule: a script's #SBATCH lines, then its #GPUC lines, then the command line; each overrides the one before.
            var cmd = parse.GetValue(command) ?? [];
            var script = await ReadScriptAsync(cmd, parse.Tokens.Any(t => t.Type == TokenType.DoubleDash), ct);
            var opts = new JobOptions();
            if (script is not null)
            {
                opts.OverrideWith(script.Sbatch);
                opts.OverrideWith(script.Gpuc);
                foreach (var ignored in script.Ignored)
                {
                    await Console.Error.WriteLineAsync($"note: {Display.Safe(ignored)} ignored: gpuc does not use it");
                }
            }

            opts.OverrideWith(new JobOptions
            {
                Project = parse.GetValue(project),
                Gpus = parse.GetValue(gpus),
                Time = parse.GetValue(time),
                Name = parse.GetValue(name),
                Partition = parse.GetValue(partition),
                Nodes = parse.GetValue(nodes),
                Priority = parse.GetValue(priority),
                Checkpointable = parse.GetValue(checkpointable) ? true : null,
                Output = parse.GetValue(output),
                Error = parse.GetValue(error),
                Chdir = parse.GetValue(chdir),
                Array = parse.GetValue(array) is { } a ? BatchScript.ParseArray(a, "--array") : null,
                Dependency = parse.GetValue(dependency) is { } d ? BatchScript.ParseDependency(d, "--dependency") : null,
            });

            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            UserDto? me = null;
            try
            {
                me = Read(await api.SendAsync(HttpMethod.Get, "/api/me", null, ct), ContractsJson.Default.UserDto);
            }
            catch (CliException e) when (e.ExitCode is CliRunner.NotFound)
            {
                // An older server: no defaults from it.
            }

            if (opts.Project is null && body.Project is null && me?.Projects is { Count: 1 } only)
            {
                opts.Project = only.First().Key;
            }

            if (opts.Gpus is null && opts.GpusPerNode is { } perNode)
            {
                opts.Gpus = perNode * (opts.Nodes ?? 1);
            }

            body.Project = opts.Project ?? body.Project;
            body.Gpus = opts.Gpus ?? body.Gpus;
            body.Walltime = opts.Time ?? body.Walltime;
            body.Name = opts.Name ?? body.Name;
            body.Partition = opts.Partition ?? body.Partition;
            body.Nodes = opts.Nodes ?? body.Nodes;
            body.GpusPerNode = (opts.Nodes > 1 ? opts.GpusPerNode : null) ?? body.GpusPerNode;
            body.Priority = opts.Priority ?? body.Priority;
            resources.Apply(parse, body);
            body.Array = opts.Array?.Deserialize(ContractsJson.Default.ArrayRequest) ?? body.Array;
            body.Dependency = opts.Dependency?.Deserialize(ContractsJson.Default.ListDependencyRequest) ?? body.Dependency;
            if (opts.Checkpointable == true)
            {
                body.Checkpointable = true;
            }

            foreach (var (field, given, how) in new[]
            {
                ("project", body.Project is not null, "--project P (#SBATCH -A P)"), ("gpus", body.Gpus is not null, "--gpus N (#SBATCH --gpus=N)"),
                ("walltime", body.Walltime is not null, "--time 2h (#SBATCH -t 2:00:00)"),
            })
            {
                if (!given)
                {
                    throw new CliException($"{field} is required: give {how}", CliRunner.Usage);
                }
            }

            var run = script is not null ? script.Command(cmd[1..]) : [.. cmd];
            if (run.Count == 0 && body.Command is null)
            {
                throw new CliException("no command: give a batch script (gpuc submit job.sh) or a command after -- (gpuc submit … -- python train.py)", CliRunner.Usage);
            }

            if (run.Count > 0)
            {
                body.Command = BatchScript.WithOutputFiles(run, opts.Output, opts.Error);
            }

            // In a container the working directory is a path inside the image: the host's is not sent.
            var inContainer = container.Apply(parse, body);
            if (opts.Chdir is { } dir)
            {
                body.WorkingDirectory = inContainer ? dir : Path.GetFullPath(dir);
            }
            else if (!inContainer && body.WorkingDirectory is null)
            {
                var here = Environment.CurrentDirectory;
                if (WorkingDirectoryFor(me, here) is { } why)
                {
                    await Console.Error.WriteLineAsync($"note: {Display.Safe(why)}");
                }
                else
                {
                    body.WorkingDirectory = here;
                }
            }

            var headers = new Dictionary<string, string> { { "Idempotency-Key", parse.GetValue(key) ?? Guid.NewGuid().ToString("N") } };
            var request = Body(body, ContractsJson.Default.SubmitJobRequest);
            JsonNode? job;
            try
            {
                job = await api.SendAsync(HttpMethod.Post, "/api/jobs", request, ct, headers);
            }
            catch (ApiProblem p) when (p.Status == 400 && p.Field is "array" or "dependency" && p.Message.Contains("not a known field", StringComparison.Ordinal))
            {
                var what = p.Field == "array" ? "job arrays (--array)" : "job dependencies (--dependency)";
                throw new CliException($"{what} are not yet supported by this server; submit the jobs one by one", CliRunner.Usage);
            }

            for (var tries = 0; Read(job, ContractsJson.Default.SubmitReply).IsAcceptedOnly && tries < 60; tries++)
            {
                // Taken by a standby while no leader was there to number it: the same key again learns its id.
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
                job = await api.SendAsync(HttpMethod.Post, "/api/jobs", request, ct, headers);
            }

            if (parse.GetValue(common.Json))
            {
                Print(job);
            }
            else
            {
                Console.WriteLine($"Submitted job {Read(job, ContractsJson.Default.SubmitReply).Id}");
            }

            return 0;
        });
        return c;
    }

    /// <summary>
    /// A job file (<c>--file</c>): a <see cref="SubmitJobRequest"/> in JSON. A field this CLI does not know is an error here,
    /// naming it, rather than dropped.
    /// </summary>
    private static async Task<SubmitJobRequest> ReadJobFileAsync(string path, CancellationToken ct)
    {
        try
        {
            return JsonSerializer.Deserialize(await File.ReadAllTextAsync(path, ct), StrictSubmit) ?? throw new CliException($"{path}: a JSON object is needed", CliRunner.Usage);
        }
        catch (JsonException e)
        {
            throw new CliException($"{path}: {e.Message}", CliRunner.Usage);
        }
    }

    /// <summary><see cref="SubmitJobRequest"/> read as the server reads it: unknown fields are errors.</summary>
    private static readonly JsonTypeInfo<SubmitJobRequest> StrictSubmit = (JsonTypeInfo<SubmitJobRequest>)new JsonSerializerOptions(ContractsJson.Default.Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    }.GetTypeInfo(typeof(SubmitJobRequest));

    /// <summary>
    /// The batch script the command names, as sbatch reads one: the first word is a file (and no <c>--</c> came
    /// before it) holding a <c>#!</c> line or directives, or ending in .sh or .py. Null for a plain command.
    /// </summary>
    private static async Task<BatchScript?> ReadScriptAsync(string[] cmd, bool afterDoubleDash, CancellationToken ct)
    {
        if (cmd.Length == 0 || afterDoubleDash || !File.Exists(cmd[0]))
        {
            return null;
        }

        var info = new FileInfo(cmd[0]);
        if (info.Length > 4 * BatchScript.MaxBytes)
        {
            return null; // a program, not a script
        }

        var bytes = await File.ReadAllBytesAsync(cmd[0], ct);
        if (bytes.AsSpan().IndexOf((byte)0) >= 0)
        {
            return null; // binary
        }

        var text = Encoding.UTF8.GetString(bytes);
        var ext = Path.GetExtension(cmd[0]);
        if (!BatchScript.LooksLikeScript(text) && ext is not (".sh" or ".py"))
        {
            return null;
        }

        var script = BatchScript.Parse(cmd[0], text);
        if (!text.StartsWith("#!", StringComparison.Ordinal) && ext == ".py")
        {
            script = new BatchScript { Path = script.Path, Text = text, Interpreter = ["/usr/bin/env", "python3"], Sbatch = script.Sbatch, Gpuc = script.Gpuc };
        }

        return script;
    }

    /// <summary>
    /// Null when the job should start in <paramref name="dir"/> (sbatch's default, the submission directory); else why
    /// not, and the job starts in its account's home. On a center where jobs run as accounts of their own (a server run
    /// as root maps the demo's people to <c>gpuc-NAME</c>), a directory only its owner can enter (root's home) cannot be
    /// a job's: sending it would fail the job at start.
    /// </summary>
    internal static string? WorkingDirectoryFor(UserDto? me, string dir)
    {
        if (me?.Uid is not { } jobUid || OperatingSystem.IsWindows() || jobUid == Posix.EffectiveUid)
        {
            return null; // the job runs as this account (single-user, or a researcher's own login)
        }

        // Another account: it enters the directory when every directory on the way lets others search it.
        for (var d = new DirectoryInfo(dir); d is not null; d = d.Parent)
        {
            try
            {
                if ((File.GetUnixFileMode(d.FullName) & UnixFileMode.OtherExecute) == 0)
                {
                    return $"the job runs as {me.PosixName}, who cannot enter {dir} ({d.FullName} is closed to other accounts); it starts in that account's home (give --chdir DIR to choose)";
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        return null;
    }

    private static Command Queue()
    {
        var project = new Option<string?>("--project", "-p") { Description = "Only this project" };
        var state = new Option<string?>("--state") { Description = "pending,running and jobs ended in the last 5 minutes (default); finished, failed, cancelled; 'all' for every state" };
        var user = new Option<string?>("--user", "-u") { Description = "Only this user's jobs" };
        var limit = new Option<int>("--limit") { Description = "Most jobs to show", DefaultValueFactory = _ => 1000 };
        var c = new Command("queue", "List jobs (squeue). Piped: tab-separated without a header, like squeue --noheader (COLUMNS=N: a table that wide)")
        {
            project, state, user, limit,
        };
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var st = parse.GetValue(state);
            var items = new List<(JsonNode Raw, JobDto Job)>();
            string? after = null;
            var want = Math.Max(1, parse.GetValue(limit));
            string Filters()
            {
                var q = new StringBuilder();
                if (parse.GetValue(project) is { } p)
                {
                    q.Append("&project=").Append(Uri.EscapeDataString(p));
                }

                if (parse.GetValue(user) is { } u)
                {
                    q.Append("&user=").Append(Uri.EscapeDataString(u));
                }

                return q.ToString();
            }

            do
            {
                var q = new StringBuilder($"/api/jobs?limit={Math.Min(1000, want - items.Count)}");
                if (st != "all")
                {
                    q.Append("&state=").Append(Uri.EscapeDataString(st ?? "pending,running"));
                }

                q.Append(Filters());
                if (after is not null)
                {
                    q.Append("&after=").Append(after);
                }

                var page = await api.SendAsync(HttpMethod.Get, q.ToString(), null, ct);
                items.AddRange(Jobs(page, out after));
            }
            while (after is not null && items.Count < want);

            var now = TimeProvider.System.GetUtcNow();
            if (st is null && items.Count < want)
            {
                // As squeue keeps a job a few minutes after it ends: what just ended, so a job that failed at once is seen, and why.
                try
                {
                    var recent = await api.SendAsync(HttpMethod.Get, "/api/jobs?state=finished,failed,cancelled&order=desc&limit=100" + Filters(), null, ct);
                    var ended = Jobs(recent, out _).Where(j => j.Job.EndTime is { } e && now - e < TimeSpan.FromMinutes(5));
                    items.AddRange(ended.Take(want - items.Count).Reverse());
                }
                catch (ApiProblem p) when (p.Field == "order")
                {
                    // An older server: pending and running only.
                }
            }

            var sorted = items.OrderBy(j => j.Job.Id).ToList();
            if (parse.GetValue(common.Json))
            {
                Print(new JsonArray(sorted.Select(j => j.Raw).ToArray()));
                return 0;
            }

            var t = new Output.Sheet("JOBID", "NAME", "USER", "PROJECT", "STATE", "TIME", "TIME_LIMIT", "GPUS", "WHERE", "REASON");
            foreach (var (_, j) in sorted)
            {
                if (QueueId(j) is not { } jobId)
                {
                    continue; // an array whose tasks are all expanded: its tasks have lines of their own
                }

                t.Add(jobId, Display.Safe(j.Name), Display.Safe(j.User), Display.Safe(j.Project), j.State.ToWire(), Output.SlurmTime(Elapsed(j, now)),
                    Output.SlurmTime(j.WalltimeSeconds), Output.Number(j.Gpus), Output.Where(Display.Safe(j.Placement)), Reason(j));
            }

            t.Write();
            return 0;
        });
        return c;
    }

    /// <summary>
    /// A job's id as squeue shows it: <c>12_7</c> for a task of array 12; <c>12_[8-999%50]</c> for the tasks of array 12
    /// not yet expanded; null for a pending array with none left to expand (its tasks are listed on their own).
    /// </summary>
    internal static string? QueueId(JobDto job)
    {
        var id = job.Id.ToString(CultureInfo.InvariantCulture);
        if (job is { ArrayJobId: { } a, ArrayTaskId: { } t })
        {
            return a.ToString(CultureInfo.InvariantCulture) + "_" + t.ToString(CultureInfo.InvariantCulture);
        }

        if (job is { Array: { } array, State: JobState.Pending })
        {
            if (array.PendingTasks is not { } rest)
            {
                return id + "_[" + Display.Safe(array.Indices) + "]";
            }

            var remainder = Display.Safe(rest);
            if (remainder.Length == 0)
            {
                return null;
            }

            var limit = array.MaxRunning is { } m ? "%" + m.ToString(CultureInfo.InvariantCulture) : "";
            return id + "_[" + remainder + limit + "]";
        }

        return id;
    }

    /// <summary>A page of jobs: each as the server sent it (for <c>--json</c>) and as read; <paramref name="next"/> the next page's cursor.</summary>
    private static List<(JsonNode Raw, JobDto Job)> Jobs(JsonNode? page, out string? next)
    {
        var typed = Read(page, ContractsJson.Default.PageJobDto);
        next = typed.Next;
        var raw = RawItems(page);
        var jobs = typed.Items ?? [];
        if (raw.Count != jobs.Count || raw.Any(r => r is null) || jobs.Any(j => j is null))
        {
            throw new CliException("the server's page of jobs holds a null", CliRunner.Failure);
        }

        return [.. raw.Zip(jobs, (r, j) => (r!, j))];
    }

    /// <summary>A job id as given on the command line: <c>12</c>, or <c>12_7</c> for task 7 of array 12.</summary>
    internal static (long Id, long? Task) JobRef(string text)
    {
        var parts = text.Split('_');
        if (parts.Length is 1 or 2 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0)
        {
            if (parts.Length == 1)
            {
                return (id, null);
            }

            if (long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var task))
            {
                return (id, task);
            }
        }

        throw new CliException($"'{Display.Safe(text)}' is not a job id (ID, or ARRAYID_TASK for one task of an array)", CliRunner.Usage);
    }

    private static string JobPath((long Id, long? Task) r) =>
        r.Task is { } t ? $"/api/jobs/{r.Id}/tasks/{t}" : $"/api/jobs/{r.Id}";

    /// <summary>Seconds a job has run: 0 while pending, until now while running, start to end once ended.</summary>
    private static long Elapsed(JobDto job, DateTimeOffset now) =>
        job.StartTime is { } start ? Math.Max(0, (long)((job.EndTime ?? now) - start).TotalSeconds) : 0;

    /// <summary>squeue's REASON: why a pending job waits; how an ended one ended (<c>exit code 2</c>); empty while running.</summary>
    private static string Reason(JobDto job) => job.State switch
    {
        JobState.Pending => Display.Safe(job.Reason),
        JobState.Running => "",
        _ => job.Outcome is { Length: > 0 } o ? Display.Safe(o) : job.ExitCode is { } code ? "exit code " + code.ToString(CultureInfo.InvariantCulture) : "",
    };

    private static Command Show()
    {
        var id = new Argument<string>("id") { Description = "Job id (ARRAYID_TASK: one task of an array)" };
        var c = new Command("show", "A job in detail, with why it waits and when it should start") { id };
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            var which = JobRef(parse.GetValue(id)!);
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var job = await api.SendAsync(HttpMethod.Get, JobPath(which), null, ct);
            if (parse.GetValue(common.Json))
            {
                Print(job);
                return 0;
            }

            WriteFields(JobFields(job!.AsObject(), TimeProvider.System.GetUtcNow()));
            return 0;
        });
        return c;
    }

    /// <summary>
    /// A job's fields as people read them: labels, Slurm times, amounts with units. Read through <see cref="JobDto"/>;
    /// fields this CLI does not know (a newer server's) keep their name and the server's text.
    /// </summary>
    internal static List<(string Label, string Value)> JobFields(JsonObject raw, DateTimeOffset now)
    {
        var job = Read(raw, ContractsJson.Default.JobDto);
        var f = new List<(string, string)>();
        static string N(long? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "";
        void Add(string label, string? value)
        {
            if (!string.IsNullOrEmpty(value))
            {
                f.Add((label, value));
            }
        }

        Add("Job", N(job.Id));
        Add("Name", job.Name);
        Add("Project", job.Project);
        Add("User", job.User);
        Add("State", job.State.ToWire() + (job.CancelRequested == true ? " (cancel requested)" : ""));
        Add("Reason", job.Reason is null ? null : job.ReasonText is null ? job.Reason : $"{job.Reason}: {job.ReasonText}");
        Add("Outcome", job.Outcome);
        Add("Exit code", N(job.ExitCode));
        Add("Partition", job.Partition ?? (job.State == JobState.Pending ? "any that fits" : null));
        Add("GPUs", Output.Gpus(job.Gpus));
        Add("Nodes", N(job.Nodes));
        Add("GPUs per node", N(job.GpusPerNode));
        Add("Time limit", Output.SlurmTime(job.WalltimeSeconds));
        Add("Run time", job.StartTime is not null ? Output.SlurmTime(Elapsed(job, now)) : null);
        Add("Priority", job.Priority);
        Add("Submitted", When(job.SubmitTime));
        Add("Expected start", When(job.EstimatedStart));
        Add("Started", When(job.StartTime));
        Add("Ended", When(job.EndTime));
        Add("Where", job.Placement is { } placement ? Output.Where(placement) : null);
        Add("GPUs held", job.Placement is { } pl && pl.Contains(';', StringComparison.Ordinal) ? pl.Replace(';', ' ') : null);
        Add("Allocation", job.Allocation);
        Add("Attempt", job.Attempt > 0 ? $"{job.Attempt} (requeued {job.Attempt} time{(job.Attempt == 1 ? "" : "s")})" : null);
        Add("Command", string.Join(' ', job.Command.Select(Quote)));
        foreach (var (k, v) in raw)
        {
            if (!ShownFields.Contains(k) && v is not null)
            {
                Add(Words(k), v is JsonValue ? v.ToString() : v.ToJsonString(Output.JsonOptions));
            }
        }

        return f;
    }

    /// <summary>The <see cref="JobDto"/> fields <see cref="JobFields"/> labels itself; the others are listed by name.</summary>
    private static readonly HashSet<string> ShownFields = new(StringComparer.Ordinal)
    {
        "id", "name", "project", "user", "state", "cancelRequested", "reason", "reasonText", "outcome", "exitCode", "partition", "gpus",
        "nodes", "gpusPerNode", "walltimeSeconds", "priority", "submitTime", "estimatedStart", "startTime", "endTime", "placement",
        "allocation", "attempt", "command",
    };

    /// <summary>A time, short: <c>2026-11-27 20:47:36Z</c>; null for none.</summary>
    private static string? When(DateTimeOffset? t) => t?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>A word as a shell would need it: as is when plain, else in single quotes; long text shortened.</summary>
    private static string Quote(string s)
    {
        if (s.Length > 200)
        {
            s = s[..200] + "…";
        }

        return s.Length > 0 && s.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/' or ':' or '=' or ',' or '+' or '@' or '%')
            ? s : "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary><c>gpusPerNode</c> → <c>Gpus per node</c>.</summary>
    private static string Words(string camel)
    {
        var sb = new StringBuilder();
        foreach (var c in camel)
        {
            if (char.IsUpper(c) && sb.Length > 0)
            {
                sb.Append(' ').Append(char.ToLowerInvariant(c));
            }
            else
            {
                sb.Append(sb.Length == 0 ? char.ToUpperInvariant(c) : c);
            }
        }

        return sb.ToString();
    }

    /// <summary>Label and value lines: aligned on a terminal, <c>LABEL\tVALUE</c> when piped.</summary>
    private static void WriteFields(List<(string Label, string Value)> fields)
    {
        var (mode, width) = Output.Detect(Console.IsOutputRedirected, Environment.GetEnvironmentVariable("COLUMNS"));
        if (mode == Output.Mode.Plain)
        {
            foreach (var (label, value) in fields)
            {
                Console.WriteLine(Display.Safe(label) + "\t" + Display.Safe(value));
            }

            return;
        }

        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        foreach (var (label, value) in fields)
        {
            grid.AddRow("[bold]" + Display.Cell(label) + "[/]", Display.Cell(value));
        }

        Output.ConsoleFor(Console.Out, width).Write(grid);
    }

    private static Command Cancel()
    {
        var ids = new Argument<string[]>("id") { Description = "Job ids: an array's id cancels the whole array, ARRAYID_TASK one task", Arity = ArgumentArity.OneOrMore };
        var c = new Command("cancel", "Cancel jobs (scancel)") { ids };
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            var refs = parse.GetValue(ids)!.Select(x => (Text: x, Ref: JobRef(x))).ToList();
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var results = new JsonArray();
            foreach (var (id, which) in refs)
            {
                var job = await api.SendAsync(HttpMethod.Post, JobPath(which) + "/cancel", null, ct);
                results.Add(job);
                if (!parse.GetValue(common.Json))
                {
                    Console.WriteLine($"Cancelling job {id} ({Read(job, ContractsJson.Default.JobDto).State.ToWire()})");
                }
            }

            if (parse.GetValue(common.Json))
            {
                Print(results);
            }

            return 0;
        });
        return c;
    }

    private static Command Logs()
    {
        var id = new Argument<string>("id") { Description = "Job id (ARRAYID_TASK: one task of an array)" };
        var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing output until the job ends" };
        var stdoutOnly = new Option<bool>("--stdout") { Description = "Standard output only" };
        var stderrOnly = new Option<bool>("--stderr") { Description = "Standard error only" };
        var c = new Command("logs", "A job's output: its standard output here on standard output, its standard error on standard error") { id, follow, stdoutOnly, stderrOnly };
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            var which = JobRef(parse.GetValue(id)!);
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var jobId = which.Id;
            if (which.Task is { } task)
            {
                // A task's output is its own job's: found through the array.
                var t = Read(await api.SendAsync(HttpMethod.Get, JobPath(which), null, ct), ContractsJson.Default.JobDto);
                jobId = t.Id;
                if (jobId == which.Id)
                {
                    throw new CliException($"job {which.Id}_{task} has not started: no output yet ({t.State.ToWire()})", 3);
                }
            }

            var streams = new List<(string Name, Stream To, long Offset)>();
            using var stdout = Console.OpenStandardOutput();
            using var stderr = Console.OpenStandardError();
            if (!parse.GetValue(stderrOnly) || parse.GetValue(stdoutOnly))
            {
                streams.Add(("stdout", stdout, 0));
            }

            if (!parse.GetValue(stdoutOnly) || parse.GetValue(stderrOnly))
            {
                streams.Add(("stderr", stderr, 0));
            }

            while (true)
            {
                var any = false;
                JobState? state = null;
                for (var i = 0; i < streams.Count; i++)
                {
                    var (name, to, offset) = streams[i];
                    var (bytes, next, st) = await api.GetLogAsync(jobId, name, offset, ct);
                    await to.WriteAsync(bytes, ct);
                    await to.FlushAsync(ct);
                    streams[i] = (name, to, next);
                    any |= bytes.Length > 0;
                    state = JobStateNames.TryParse(st, out var now) ? now : state;
                }

                if (!any && (!parse.GetValue(follow) || state is not (JobState.Pending or JobState.Running)))
                {
                    return 0; // all of it read (the server sends at most 1 MiB a request), and the job has ended or no --follow
                }

                if (!any)
                {
                    await Task.Delay(500, ct);
                }
            }
        });
        return c;
    }
}
