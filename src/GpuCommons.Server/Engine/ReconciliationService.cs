using System.Globalization;
using GpuCommons.Backends;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Engine;

/// <summary>
/// Every <see cref="ServerOptions.ReconcileInterval"/> (longer while the cluster manager backs off), compares the runs the
/// loop holds with the backend (<see cref="IBackendReconciler"/>), keeps every discrepancy in the <c>discrepancies</c>
/// table (open until a pass no longer sees it, with an audit event <c>reconcile.&lt;kind&gt;</c> when first seen) and acts
/// where it is safe: a lost run fails and is requeued if requeueable; a pinned run not started in time is cancelled and
/// requeued; a live backend job named like ours is cancelled only when the database proves it a leftover (see
/// <see cref="ServerOptions.CancelStrayBackendJobs"/>). Nothing else is changed, and no job state is guessed: a pass
/// that could not read the backend resolves nothing. A failing pass never stops the loop.
/// </summary>
public sealed partial class ReconciliationService : BackgroundService
{
    private readonly Coordinator _co;
    private readonly GpucDbFactory _db;
    private readonly ServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ReconciliationService> _log;
    private readonly IBackendReconciler? _reconciler;
    private readonly SemaphoreSlim _pass = new(1, 1);
    private long _passes;
    private ReconciliationDto _last;
    private DateTimeOffset? _next;

    public ReconciliationService(Coordinator co, GpucDbFactory db, ServerOptions options, TimeProvider time, ILogger<ReconciliationService> log, IBackendReconciler? reconciler)
    {
        _co = co;
        _db = db;
        _options = options;
        _time = time;
        _log = log;
        _reconciler = reconciler;
        _last = new ReconciliationDto(reconciler is not null, null, false, 0, 0, 0, 0, null, null);
    }

    /// <summary>The last pass, for the API and the portal.</summary>
    public ReconciliationDto Status => _last with { NextAttempt = _next };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_reconciler is null)
        {
            return;
        }

        await _co.Ready.WaitAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogPassFailed(e);
            }

            var wait = _options.ReconcileInterval;
            var backoff = _reconciler.NextAttempt - _time.GetUtcNow();
            if (backoff > wait)
            {
                wait = backoff;
            }

            _next = _time.GetUtcNow() + wait;
            try
            {
                await Task.Delay(wait, _time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One pass: compare, record, act. Passes never overlap.</summary>
    public async Task<BackendReconciliation> RunOnceAsync(CancellationToken cancellationToken)
    {
        if (_reconciler is null)
        {
            throw new InvalidOperationException("the backend has no reconciler");
        }

        await _pass.WaitAsync(cancellationToken);
        try
        {
            var expected = await _co.ExpectedRunsAsync();
            BackendReconciliation report;
            try
            {
                report = await _reconciler.ReconcileAsync(expected, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                LogPassFailed(e);
                report = new BackendReconciliation(_time.GetUtcNow(), false, expected.Count, 0, TimeSpan.Zero,
                    [new BackendDiscrepancy(DiscrepancyKinds.PassFailed, null, null, null, null, e.GetType().Name + ": " + e.Message,
                        "see the server log; nothing was concluded from this pass")]);
            }

            var current = await RecordAsync(report, cancellationToken);
            await ActAsync(current, cancellationToken);
            var problem = report.Discrepancies.FirstOrDefault(d => d.Kind is DiscrepancyKinds.Unreachable or DiscrepancyKinds.PassFailed)?.Detail;
            var malformed = report.Discrepancies.Count(d => d.Kind == DiscrepancyKinds.MalformedOutput);
            if (problem is null && malformed > 0)
            {
                problem = $"{malformed} line(s) of backend output could not be read and were skipped";
            }

            _last = new ReconciliationDto(true, report.Time, report.Reachable, report.ExpectedJobs, report.BackendJobs, report.Elapsed.TotalMilliseconds,
                Interlocked.Increment(ref _passes), null, problem);
            LogPass(report.ExpectedJobs, report.BackendJobs, report.Discrepancies.Count, report.Reachable);
            return report;
        }
        finally
        {
            _pass.Release();
        }
    }

    /// <summary>The key that identifies one discrepancy across passes.</summary>
    internal static string KeyOf(BackendDiscrepancy d)
    {
        if (DiscrepancyKinds.IsBackendWide(d.Kind))
        {
            return d.Kind;
        }

        var key = d.Kind == DiscrepancyKinds.MalformedOutput
            ? d.Kind + "|" + d.Detail
            : string.Create(CultureInfo.InvariantCulture, $"{d.Kind}|{d.JobId}|{d.Attempt}|{d.ExternalId}");
        return key.Length > 512 ? key[..512] : key;
    }

    private async Task<List<(DiscrepancyRow Row, BackendDiscrepancy Seen)>> RecordAsync(BackendReconciliation report, CancellationToken ct)
    {
        var now = report.Time;
        await using var db = _db.Create();
        var open = await db.Discrepancies.Where(d => d.Resolved == null).ToListAsync(ct);
        var byKey = new Dictionary<string, DiscrepancyRow>(StringComparer.Ordinal);
        foreach (var r in open)
        {
            byKey.TryAdd(r.Key, r);
        }

        var current = new List<(DiscrepancyRow, BackendDiscrepancy)>(report.Discrepancies.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var d in report.Discrepancies)
        {
            var key = KeyOf(d);
            if (!seen.Add(key))
            {
                continue;
            }

            if (byKey.TryGetValue(key, out var row))
            {
                row.LastSeen = now;
                row.Seen++;
                row.Detail = d.Detail;
                row.SuggestedAction = d.SuggestedAction;
                row.Node = d.Node ?? row.Node;
            }
            else
            {
                row = new DiscrepancyRow
                {
                    Key = key,
                    Kind = d.Kind,
                    JobId = d.JobId,
                    Attempt = d.Attempt,
                    ExternalId = d.ExternalId,
                    Node = d.Node,
                    Detail = d.Detail,
                    SuggestedAction = d.SuggestedAction,
                    FirstSeen = now,
                    LastSeen = now,
                    Seen = 1,
                };
                db.Discrepancies.Add(row);
                db.Events.Add(new EventRow
                {
                    Time = now,
                    Actor = "reconciler",
                    Kind = "reconcile." + d.Kind,
                    Subject = d.JobId is { } j ? $"job/{j.ToString(CultureInfo.InvariantCulture)}" : "backend",
                    Detail = d.Detail,
                });
            }

            current.Add((row, d));
        }

        // A pass that could not read the backend, or read lines it could not parse, says nothing certain about the jobs
        // (Slurm's reconciler declares nothing lost from such output): only a clean pass resolves them.
        var conclusive = report.Reachable && !report.Discrepancies.Any(d => d.Kind == DiscrepancyKinds.MalformedOutput);
        foreach (var r in open)
        {
            if (!seen.Contains(r.Key) && (conclusive || DiscrepancyKinds.IsBackendWide(r.Kind)))
            {
                r.Resolved = now;
            }
        }

        await db.SaveChangesAsync(ct);
        return current;
    }

    private async Task ActAsync(List<(DiscrepancyRow Row, BackendDiscrepancy Seen)> current, CancellationToken ct)
    {
        var acted = new List<DiscrepancyRow>();
        foreach (var (row, d) in current)
        {
            if (row.Action is not null || d.JobId is not { } jobId)
            {
                continue;
            }

            string? action = null;
            try
            {
                action = d.Kind switch
                {
                    DiscrepancyKinds.Lost when d.Attempt is { } a => await _co.EndLostRunAsync(jobId, a, d.Detail),
                    DiscrepancyKinds.NotStarted when d.Attempt is { } a => await _co.RequeueNotStartedAsync(jobId, a, d.Detail),
                    DiscrepancyKinds.Unknown when _options.CancelStrayBackendJobs && row.Seen >= 2 && d.ExternalId is not null => await CancelLeftoverAsync(d, jobId, ct),
                    _ => null,
                };
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogActionFailed(d.Kind, jobId, e);
            }

            if (action is not null)
            {
                row.Action = action;
                acted.Add(row);
            }
        }

        if (acted.Count == 0)
        {
            return;
        }

        await using var db = _db.Create();
        foreach (var row in acted)
        {
            db.Discrepancies.Attach(row);
            db.Entry(row).Property(x => x.Action).IsModified = true;
            db.Events.Add(new EventRow
            {
                Time = _time.GetUtcNow(),
                Actor = "reconciler",
                Kind = "reconcile.action",
                Subject = $"job/{row.JobId?.ToString(CultureInfo.InvariantCulture)}",
                Detail = $"{row.Kind}: {row.Action}",
            });
        }

        await db.SaveChangesAsync(ct);
    }

    /// <summary>
    /// A live backend job named like job <paramref name="jobId"/> that the loop does not run. Cancelled only when the
    /// database has that job and it is ended, or runs a later attempt; a name the database does not know may belong to
    /// a person or another GpuCommons sharing the cluster, so it is only reported.
    /// </summary>
    private async Task<string?> CancelLeftoverAsync(BackendDiscrepancy d, long jobId, CancellationToken ct)
    {
        await using var db = _db.Create();
        var job = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.State, j.Attempt }).FirstOrDefaultAsync(ct);
        if (job is null)
        {
            return null;
        }

        var active = job.State is JobState.Pending or JobState.Running;
        if (active && job.Attempt <= (d.Attempt ?? 0))
        {
            return null;
        }

        await _reconciler!.CancelStrayAsync(d, ct);
        return active
            ? $"cancelled in the backend: a leftover attempt {d.Attempt ?? 0} (the job now runs attempt {job.Attempt})"
            : $"cancelled in the backend: a leftover of a job that is {job.State.ToWire()} in GpuCommons";
    }

    public override void Dispose()
    {
        _pass.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 120, Level = LogLevel.Information, Message = "reconciliation: {Expected} expected, {BackendJobs} in the backend, {Discrepancies} discrepancies, reachable={Reachable}")]
    private partial void LogPass(int expected, int backendJobs, int discrepancies, bool reachable);

    [LoggerMessage(EventId = 121, Level = LogLevel.Warning, Message = "reconciliation pass failed; the loop goes on")]
    private partial void LogPassFailed(Exception e);

    [LoggerMessage(EventId = 122, Level = LogLevel.Warning, Message = "reconciliation: acting on {Kind} for job {JobId} failed")]
    private partial void LogActionFailed(string kind, long jobId, Exception e);
}
