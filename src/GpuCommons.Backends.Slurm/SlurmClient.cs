using System.Globalization;
using GpuCommons.Backends.Slurm.Parsing;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Backends.Slurm;

/// <summary>
/// The Slurm commands the backend uses, each with an explicit output format, and the classification of their
/// failures: transient (controller unreachable or timed out: retry later) or permanent (Slurm refused).
/// </summary>
public sealed class SlurmClient
{
    private static readonly string[] TransientMarkers =
    [
        "Unable to contact slurm controller",
        "Socket timed out",
        "Connection refused",
        "Connection timed out",
        "Zero Bytes were transmitted",
        "Resource temporarily unavailable",
        "Transport endpoint is not connected",
        "temporarily unable to accept job",
        "Problem talking to the database",
        "Slurm backup controller in standby mode",
        "Communication connection failure",
        "Slurmctld is in the process of shutting down",
    ];

    private readonly ISlurmCommandRunner _runner;
    private readonly SlurmBackendOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public SlurmClient(ISlurmCommandRunner runner, SlurmBackendOptions options, TimeProvider time, ILogger logger)
    {
        _runner = runner;
        _options = options;
        _time = time;
        _logger = logger;
        Health = new SlurmHealth(options, time);
    }

    public SlurmHealth Health { get; }

    /// <summary>Every job in slurmctld's memory (pending, running, and ended within MinJobAge).</summary>
    public async Task<SlurmParseResult<SlurmJobRow>> QueueAsync(CancellationToken ct, string? names = null)
    {
        var args = new List<string> { "--noheader", "--states=all", "--format=" + SlurmOutputParser.SqueueFormat };
        if (names is not null)
        {
            args.Add("--name=" + names);
        }

        var r = await RunAsync("squeue", args, null, ct).ConfigureAwait(false);
        return Report(SlurmOutputParser.ParseSqueue(r.Stdout, _options.JobNamePrefix));
    }

    /// <summary>Accounting records of the given jobs (allocations only, <c>-X</c>).</summary>
    public async Task<SlurmParseResult<SlurmJobRow>> AccountingAsync(IReadOnlyCollection<long> slurmIds, CancellationToken ct)
    {
        var rows = new List<SlurmJobRow>();
        var errors = new List<SlurmParseError>();
        foreach (var chunk in slurmIds.Chunk(500))
        {
            var args = Sacct();
            args.Add("--allusers"); // every tenant's jobs, whoever submitted them
            args.Add("--jobs=" + string.Join(',', chunk.Select(i => i.ToString(CultureInfo.InvariantCulture))));
            var r = await RunAsync("sacct", args, null, ct).ConfigureAwait(false);
            var p = SlurmOutputParser.ParseSacct(r.Stdout, _options.JobNamePrefix);
            rows.AddRange(p.Rows);
            errors.AddRange(p.Errors);
        }

        return Report(new SlurmParseResult<SlurmJobRow>(rows, errors));
    }

    /// <summary>Accounting records of all jobs that ran or were submitted since <paramref name="since"/>, optionally by name.</summary>
    public async Task<SlurmParseResult<SlurmJobRow>> AccountingSinceAsync(DateTimeOffset since, CancellationToken ct, string? names = null)
    {
        var args = Sacct();
        args.Add("--allusers");
        args.Add("--starttime=" + since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture));
        args.Add("--endtime=now");
        if (names is not null)
        {
            args.Add("--name=" + names);
        }

        var r = await RunAsync("sacct", args, null, ct).ConfigureAwait(false);
        return Report(SlurmOutputParser.ParseSacct(r.Stdout, _options.JobNamePrefix));
    }

    /// <summary><c>scontrol show job -o</c> for the given ids (exit codes without an accounting database).</summary>
    public async Task<SlurmParseResult<SlurmJobRow>> ControllerJobsAsync(IReadOnlyCollection<long> slurmIds, CancellationToken ct)
    {
        var rows = new List<SlurmJobRow>();
        var errors = new List<SlurmParseError>();
        foreach (var id in slurmIds)
        {
            var r = await _runner.RunAsync("scontrol", ["--oneliner", "show", "job", id.ToString(CultureInfo.InvariantCulture)], null, _options.CommandTimeout, ct).ConfigureAwait(false);
            if (!r.Ok)
            {
                if (IsTransient(r))
                {
                    Fail("scontrol show job", r);
                    throw new SlurmException(Describe("scontrol show job", r), true, "scontrol show job");
                }

                continue; // Invalid job id specified: not in the controller any more.
            }

            Health.Success(r.Elapsed, "scontrol show job");
            var p = SlurmOutputParser.ParseScontrolJobs(r.Stdout);
            rows.AddRange(p.Rows);
            errors.AddRange(p.Errors);
        }

        return Report(new SlurmParseResult<SlurmJobRow>(rows, errors));
    }

    /// <summary>Nodes, one row per node and partition.</summary>
    public async Task<SlurmParseResult<SlurmNodeRow>> NodesAsync(CancellationToken ct)
    {
        var args = new List<string> { "--noheader", "--Node", "--format=" + SlurmOutputParser.SinfoFormat };
        if (_options.IncludeHiddenPartitions)
        {
            args.Add("--all");
        }

        var r = await RunAsync("sinfo", args, null, ct).ConfigureAwait(false);
        return Report(SlurmOutputParser.ParseSinfo(r.Stdout));
    }

    /// <summary>
    /// Submits, as <paramref name="login"/> when given (<see cref="SlurmBackendOptions.SubmitAs"/>); returns the Slurm job id.
    /// Throws <see cref="SlurmException"/>: transient when the outcome is unknown, <see cref="SlurmException.Kind"/>
    /// <see cref="SlurmFailureKind.JobRejected"/> when Slurm refused the job for a reason in the job itself.
    /// </summary>
    public async Task<long> SubmitAsync(SlurmSubmission submission, CancellationToken ct, string? login = null, string? group = null)
    {
        var r = await RunAsync("sbatch", submission.Arguments, submission.Script, ct, login, group).ConfigureAwait(false);
        if (!SlurmOutputParser.TryParseSbatch(r.Stdout, out var id))
        {
            // sbatch said it succeeded but printed no id: the job may exist, so this is not a clean refusal.
            throw new SlurmException($"sbatch printed no job id: '{r.Stdout.Trim()}' {r.Stderr.Trim()}", true, "sbatch");
        }

        return id;
    }

    /// <summary>
    /// <c>scancel</c> by id (or by name when <paramref name="slurmId"/> is null); <paramref name="signal"/> null: cancel. As
    /// <paramref name="login"/> when given (the job's own account), else as the server.
    /// </summary>
    /// <summary><c>scontrol release</c>: lets a job submitted with <c>--hold</c> run.</summary>
    public async Task ReleaseAsync(long slurmId, CancellationToken ct) =>
        await RunAsync("scontrol", ["release", slurmId.ToString(CultureInfo.InvariantCulture)], null, ct).ConfigureAwait(false);

    public async Task CancelAsync(long? slurmId, string name, string? signal, CancellationToken ct, string? login = null)
    {
        var args = new List<string>();
        if (signal is not null)
        {
            args.Add("--signal=" + signal);
            args.Add("--full");
        }

        if (slurmId is { } id)
        {
            args.Add(id.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            args.Add("--name=" + name);
        }

        try
        {
            await RunAsync("scancel", args, null, ct, login).ConfigureAwait(false);
        }
        catch (SlurmException e) when (!e.IsTransient && (e.Message.Contains("already completing or completed", StringComparison.OrdinalIgnoreCase)
            || e.Message.Contains("Invalid job id", StringComparison.OrdinalIgnoreCase)))
        {
            // Nothing left to cancel: the job ended on its own.
        }
    }

    /// <summary>
    /// Makes sure <paramref name="login"/> may charge <paramref name="account"/>: <c>sacctmgr -i add account</c> and
    /// <c>sacctmgr -i add user</c> when <c>sacctmgr list assoc</c> does not show the pair. Throws <see cref="SlurmException"/>.
    /// </summary>
    public async Task EnsureAssociationAsync(string account, string login, CancellationToken ct)
    {
        var list = await RunAsync("sacctmgr", ["--noheader", "--parsable2", "list", "associations", "account=" + account, "user=" + login, "format=account,user"], null, ct)
            .ConfigureAwait(false);
        if (list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Any(l => string.Equals(l, account + "|" + login, StringComparison.OrdinalIgnoreCase)))
        {
            return;
        }

        await AddAsync(["-i", "add", "account", account], ct).ConfigureAwait(false);
        await AddAsync(["-i", "add", "user", login, "account=" + account], ct).ConfigureAwait(false);
    }

    private async Task AddAsync(string[] args, CancellationToken ct)
    {
        var r = await _runner.RunAsync("sacctmgr", args, null, _options.CommandTimeout, ct).ConfigureAwait(false);
        if (r.Ok || (r.Stdout + r.Stderr).Contains("Nothing new added", StringComparison.OrdinalIgnoreCase))
        {
            Health.Success(r.Elapsed, "sacctmgr");
            return;
        }

        var transient = IsTransient(r);
        throw new SlurmException(
            $"cannot create the Slurm association (sacctmgr {string.Join(' ', args)}): {Describe("sacctmgr", r)}; the server must be a Slurm administrator "
            + "(root, SlurmUser or AdminLevel=Administrator), or create accounts and associations itself and set ManageAssociations=false",
            transient, "sacctmgr " + string.Join(' ', args));
    }

    /// <summary>The uid of <paramref name="login"/> on this host (<c>getent passwd</c>: files, LDAP, SSSD…); null when there is none.</summary>
    public async Task<int?> UidOfAsync(string login, CancellationToken ct)
    {
        var r = await _runner.RunAsync("getent", ["passwd", login], null, _options.CommandTimeout, ct).ConfigureAwait(false);
        if (r.TimedOut || r.ExitCode is not (0 or 2))
        {
            throw new SlurmException($"getent passwd {login}: {Describe("getent", r)}", r.TimedOut, "getent passwd " + login);
        }

        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split(':');
            if (f.Length >= 3 && f[0] == login && int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
            {
                return uid;
            }
        }

        return null;
    }

    /// <summary>Whether <paramref name="login"/> (null: the server) can enter <paramref name="directory"/>: <c>test -d DIR -a -x DIR</c> as that account.</summary>
    public async Task<bool> CanEnterAsync(string directory, string? login, CancellationToken ct, string? group = null)
    {
        var (tool, args) = SlurmUserSwitch.Wrap(_options.SubmitAs, login, "test", ["-d", directory, "-a", "-x", directory], _options, group);
        var r = await _runner.RunAsync(tool, args, null, _options.CommandTimeout, ct).ConfigureAwait(false);
        if (r.Ok)
        {
            return true;
        }

        if (r.ExitCode == 1 && r.Stderr.Trim().Length == 0)
        {
            return false;
        }

        var text = Describe(tool, r);
        if (SlurmFailures.Classify(r) == SlurmFailureKind.JobRejected)
        {
            throw new SlurmException(text, false, tool + " " + string.Join(' ', args), kind: SlurmFailureKind.JobRejected);
        }

        throw new SlurmException(text, r.TimedOut, tool + " " + string.Join(' ', args));
    }

    /// <summary>Runs a helper (<c>chown</c>, <c>install</c>) as <paramref name="login"/> (null: the server); throws <see cref="SlurmException"/> when it fails.</summary>
    public async Task RunHelperAsync(string tool, IReadOnlyList<string> helperArgs, string? login, CancellationToken ct)
    {
        var (t, args) = SlurmUserSwitch.Wrap(_options.SubmitAs, login, tool, helperArgs, _options);
        var r = await _runner.RunAsync(t, args, null, _options.CommandTimeout, ct).ConfigureAwait(false);
        if (!r.Ok)
        {
            var kind = SlurmFailures.Classify(r);
            throw new SlurmException(Describe(tool, r) + (SlurmFailures.IsSudoSetup(r.Stderr) ? SudoHint : ""), kind == SlurmFailureKind.Transient,
                t + " " + string.Join(' ', args), kind: kind);
        }
    }

    /// <summary><c>stat</c> of paths as the server, without following links: owner uid and file type.</summary>
    public async Task<IReadOnlyList<(string Path, int Uid, string Type)>> StatAsync(IReadOnlyList<string> paths, CancellationToken ct)
    {
        var args = new List<string> { "-c", "%u|%F|%n" };
        args.AddRange(paths);
        var r = await _runner.RunAsync("stat", args, null, _options.CommandTimeout, ct).ConfigureAwait(false);
        var result = new List<(string, int, string)>();
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split('|', 3);
            if (f.Length == 3 && int.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out var uid))
            {
                result.Add((f[2], uid, f[1]));
            }
        }

        foreach (var p in paths.Where(p => result.All(x => x.Item1 != p)))
        {
            result.Add((p, -1, "missing"));
        }

        return result;
    }

    private const string SudoHint = " (sudo is not set up for the GpuCommons server's account: see the sudoers rule in the Slurm backend's README)";

    /// <summary><c>scontrol update nodename=X state=... reason=...</c>.</summary>
    public async Task UpdateNodeAsync(string node, string state, string? reason, CancellationToken ct)
    {
        var args = new List<string> { "update", "nodename=" + node, "state=" + state };
        if (reason is not null)
        {
            args.Add("reason=" + reason);
        }

        await RunAsync("scontrol", args, null, ct).ConfigureAwait(false);
    }

    private List<string> Sacct() =>
        ["--noheader", "--parsable2", "--allocations", "--format=" + SlurmOutputParser.SacctFormat];

    /// <summary>
    /// Runs a tool, as <paramref name="login"/> when given; a non-zero exit is a <see cref="SlurmException"/>, transient when
    /// the controller did not answer.
    /// </summary>
    private async Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, CancellationToken ct, string? login = null, string? group = null)
    {
        var (runTool, runArgs) = SlurmUserSwitch.Wrap(_options.SubmitAs, login, tool, args, _options, group);
        var r = await _runner.RunAsync(runTool, runArgs, stdin, _options.CommandTimeout, ct).ConfigureAwait(false);
        if (r.Ok)
        {
            Health.Success(r.Elapsed, tool);
            if (r.Elapsed >= _options.SlowCommandThreshold)
            {
                Log.SlowCommand(_logger, tool, r.Elapsed.TotalMilliseconds);
            }

            return r;
        }

        var kind = SlurmFailures.Classify(r);
        var transient = kind == SlurmFailureKind.Transient;
        if (transient)
        {
            Fail(tool, r);
        }
        else if (!SlurmFailures.IsSudoSetup(r.Stderr))
        {
            // Slurm answered (and refused): the controller is up.
            Health.Success(r.Elapsed, tool);
        }

        var message = Describe(tool, r) + (SlurmFailures.IsSudoSetup(r.Stderr) ? SudoHint : "");
        throw new SlurmException(message, transient, runTool + " " + string.Join(' ', runArgs), kind: kind);
    }

    private void Fail(string tool, SlurmCommandResult r)
    {
        Health.Failure(Describe(tool, r));
        Log.ControllerUnreachable(_logger, tool, Describe(tool, r), Health.ConsecutiveFailures, Health.NextAttempt);
    }

    private SlurmParseResult<T> Report<T>(SlurmParseResult<T> result)
    {
        foreach (var e in result.Errors.Take(20))
        {
            Log.MalformedOutput(_logger, e.Command, e.Line, e.Problem, e.Text);
        }

        return result;
    }

    internal static bool IsTransient(SlurmCommandResult r)
    {
        if (r.TimedOut)
        {
            return true;
        }

        var text = r.Stderr + "\n" + r.Stdout;
        foreach (var m in TransientMarkers)
        {
            if (text.Contains(m, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        // Killed by a signal, or the tool could not be started at all (not installed: not transient).
        return r.ExitCode is < 0 or > 128;
    }

    private static string Describe(string tool, SlurmCommandResult r)
    {
        var err = r.Stderr.Trim();
        if (err.Length > 500)
        {
            err = err[..500] + "…";
        }

        return r.TimedOut ? $"{tool} timed out after {r.Elapsed.TotalSeconds:0.#} s" : $"{tool} exited {r.ExitCode}: {err}";
    }
}
