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

    /// <summary>Submits; returns the Slurm job id. Throws <see cref="SlurmException"/> (transient: the outcome is unknown).</summary>
    public async Task<long> SubmitAsync(SlurmSubmission submission, CancellationToken ct)
    {
        var r = await RunAsync("sbatch", submission.Arguments, submission.Script, ct).ConfigureAwait(false);
        if (!SlurmOutputParser.TryParseSbatch(r.Stdout, out var id))
        {
            // sbatch said it succeeded but printed no id: the job may exist, so this is not a clean refusal.
            throw new SlurmException($"sbatch printed no job id: '{r.Stdout.Trim()}' {r.Stderr.Trim()}", true, "sbatch");
        }

        return id;
    }

    /// <summary><c>scancel</c> by id (or by name when <paramref name="slurmId"/> is null); <paramref name="signal"/> null: cancel.</summary>
    public async Task CancelAsync(long? slurmId, string name, string? signal, CancellationToken ct)
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
            await RunAsync("scancel", args, null, ct).ConfigureAwait(false);
        }
        catch (SlurmException e) when (!e.IsTransient && (e.Message.Contains("already completing or completed", StringComparison.OrdinalIgnoreCase)
            || e.Message.Contains("Invalid job id", StringComparison.OrdinalIgnoreCase)))
        {
            // Nothing left to cancel: the job ended on its own.
        }
    }

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

    /// <summary>Runs a tool; a non-zero exit is a <see cref="SlurmException"/>, transient when the controller did not answer.</summary>
    private async Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, CancellationToken ct)
    {
        var r = await _runner.RunAsync(tool, args, stdin, _options.CommandTimeout, ct).ConfigureAwait(false);
        if (r.Ok)
        {
            Health.Success(r.Elapsed, tool);
            if (r.Elapsed >= _options.SlowCommandThreshold)
            {
                Log.SlowCommand(_logger, tool, r.Elapsed.TotalMilliseconds);
            }

            return r;
        }

        var transient = IsTransient(r);
        if (transient)
        {
            Fail(tool, r);
        }
        else
        {
            // Slurm answered (and refused): the controller is up.
            Health.Success(r.Elapsed, tool);
        }

        throw new SlurmException(Describe(tool, r), transient, tool + " " + string.Join(' ', args));
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
