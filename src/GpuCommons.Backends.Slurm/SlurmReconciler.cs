using System.Diagnostics;
using GpuCommons.Backends.Slurm.Parsing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace GpuCommons.Backends.Slurm;

/// <summary>
/// Compares what GpuCommons believes it handed to Slurm with what Slurm holds. Slurm is the truth for what runs,
/// GpuCommons for what should: jobs Slurm lost, live jobs named like ours that nobody expects, duplicates, pinned jobs
/// that did not start in time, jobs on other nodes, ended jobs not yet taken in, and an unreachable or slow controller
/// all become <see cref="SlurmDiscrepancy"/> records (logged, and kept in <see cref="Recent"/> for operators). The
/// reconciler reports; it never submits, so it cannot double-submit. While Slurm does not answer it backs off
/// (shared with the backend's <see cref="SlurmHealth"/>) and catches up on the first pass that succeeds.
/// </summary>
public sealed class SlurmReconciler : IBackendReconciler
{
    private readonly SlurmBackend _backend;
    private readonly SlurmReconcilerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Queue<SlurmDiscrepancy> _recent = new();

    public SlurmReconciler(SlurmBackend backend, SlurmReconcilerOptions? options = null, TimeProvider? time = null, ILogger<SlurmReconciler>? logger = null)
    {
        _backend = backend;
        _options = options ?? new SlurmReconcilerOptions();
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>The latest discrepancies, oldest first, for the operator view.</summary>
    public IReadOnlyList<SlurmDiscrepancy> Recent
    {
        get { lock (_lock) { return _recent.ToArray(); } }
    }

    public ReconciliationReport? LastReport { get; private set; }

    /// <summary>One pass: reads squeue (and sacct for jobs the controller no longer holds), then <see cref="Diff"/>.</summary>
    public async Task<ReconciliationReport> ReconcileAsync(IReadOnlyCollection<ExpectedJob> expected, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var started = _time.GetTimestamp();
        var now = _time.GetUtcNow();
        var health = _backend.Health;
        List<SlurmDiscrepancy> found;
        var reachable = false;
        var slurmJobs = 0;
        if (!health.MayTry())
        {
            found = [Unreachable(now, health)];
        }
        else
        {
            try
            {
                var snapshot = await ReadAsync(expected, now, cancellationToken).ConfigureAwait(false);
                slurmJobs = snapshot.Queue.Count;
                found = Diff(_backend.Options.JobNamePrefix, expected, snapshot, _options, now);
                reachable = true;
                if (health.TakeSlowCommand() is { } slow)
                {
                    found.Add(new SlurmDiscrepancy(DiscrepancyKind.ControllerSlow, now, null, null, null,
                        $"{slow} took {health.LastLatency.TotalMilliseconds:0} ms (threshold {_backend.Options.SlowCommandThreshold.TotalMilliseconds:0} ms)",
                        "check slurmctld load (sdiag) and the RPC rate of other clients"));
                }
            }
            catch (SlurmException e) when (e.IsTransient)
            {
                found = [Unreachable(now, health)];
            }
        }

        var report = new ReconciliationReport(now, reachable, expected.Count, slurmJobs, found, _time.GetElapsedTime(started));
        Record(report);
        return report;
    }

    /// <summary>When the next pass is worth trying: now, or the end of the back-off while slurmctld does not answer.</summary>
    public DateTimeOffset NextAttempt => _backend.Health.NextAttempt;

    async Task<BackendReconciliation> IBackendReconciler.ReconcileAsync(IReadOnlyCollection<ExpectedRun> expected, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var jobs = new List<ExpectedJob>(expected.Count);
        foreach (var e in expected)
        {
            jobs.Add(new ExpectedJob(e.JobId, e.Attempt, e.StartedInBackend ? ExpectedJobState.Running : ExpectedJobState.Submitted,
                long.TryParse(e.ExternalId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id) ? id : null,
                e.Since, e.Nodes));
        }

        ReconciliationReport report;
        try
        {
            report = await ReconcileAsync(jobs, cancellationToken).ConfigureAwait(false);
        }
        catch (SlurmException e)
        {
            // Not transient (a tool failed in a way back-off does not cure): say so, conclude nothing about jobs.
            var now = _time.GetUtcNow();
            Log.Discrepancy(_logger, DiscrepancyKind.MalformedOutput.ToString(), null, null, null, e.Message);
            return new BackendReconciliation(now, false, expected.Count, 0, TimeSpan.Zero,
                [new BackendDiscrepancy(DiscrepancyKinds.PassFailed, null, null, null, null, $"{e.Command ?? "slurm"}: {e.Message}",
                    "check the Slurm tools on this host (version, permissions, slurmdbd); nothing was concluded from this pass")]);
        }

        var list = new List<BackendDiscrepancy>(report.Discrepancies.Count);
        foreach (var d in report.Discrepancies)
        {
            int? attempt = null;
            if (d.SlurmName is { } name && SlurmJobName.TryParse(_backend.Options.JobNamePrefix, name, out _, out var a))
            {
                attempt = a;
            }

            list.Add(new BackendDiscrepancy(KindName(d.Kind), d.JobId, attempt,
                d.SlurmJobId?.ToString(System.Globalization.CultureInfo.InvariantCulture), d.Node, d.Detail, d.SuggestedAction));
        }

        return new BackendReconciliation(report.Time, report.SlurmReachable, report.ExpectedJobs, report.SlurmJobs, report.Elapsed, list);
    }

    /// <summary>scancel of a live job named like ours that GpuCommons does not run (the server decides; see docs).</summary>
    public async Task CancelStrayAsync(BackendDiscrepancy stray, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stray);
        if (!long.TryParse(stray.ExternalId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var slurmId) || stray.JobId is not { } jobId)
        {
            throw new ArgumentException("a stray needs a Slurm id and a GpuCommons job id", nameof(stray));
        }

        var name = SlurmJobName.Format(_backend.Options.JobNamePrefix, jobId, stray.Attempt ?? 0);
        await _backend.Client.CancelAsync(slurmId, name, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The backend-neutral name of a kind (<see cref="DiscrepancyKinds"/>).</summary>
    public static string KindName(DiscrepancyKind kind) => kind switch
    {
        DiscrepancyKind.LostInSlurm => DiscrepancyKinds.Lost,
        DiscrepancyKind.UnknownInSlurm => DiscrepancyKinds.Unknown,
        DiscrepancyKind.DuplicateInSlurm => DiscrepancyKinds.Duplicate,
        DiscrepancyKind.NotStartedInTime => DiscrepancyKinds.NotStarted,
        DiscrepancyKind.WrongNodes => DiscrepancyKinds.WrongNodes,
        DiscrepancyKind.EndedInSlurm => DiscrepancyKinds.Ended,
        DiscrepancyKind.ControllerUnreachable => DiscrepancyKinds.Unreachable,
        DiscrepancyKind.ControllerSlow => DiscrepancyKinds.Slow,
        _ => DiscrepancyKinds.MalformedOutput,
    };

    /// <summary>Runs passes every <paramref name="interval"/> until cancelled; a failing pass never stops the loop.</summary>
    public async Task RunAsync(Func<CancellationToken, Task<IReadOnlyCollection<ExpectedJob>>> expected, TimeSpan interval, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(expected);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var jobs = await expected(cancellationToken).ConfigureAwait(false);
                await ReconcileAsync(jobs, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (SlurmException e)
            {
                Log.Discrepancy(_logger, DiscrepancyKind.MalformedOutput.ToString(), null, null, null, e.Message);
            }

            var wait = interval;
            var next = _backend.Health.NextAttempt - _time.GetUtcNow();
            if (next > wait)
            {
                wait = next;
            }

            try
            {
                await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// The pure comparison (no I/O): <paramref name="expected"/> against <paramref name="snapshot"/> at <paramref name="now"/>.
    /// Lost jobs are only declared from a snapshot whose output was read cleanly.
    /// </summary>
    public static List<SlurmDiscrepancy> Diff(string prefix, IReadOnlyCollection<ExpectedJob> expected, SlurmSnapshot snapshot, SlurmReconcilerOptions options, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(snapshot);
        ArgumentNullException.ThrowIfNull(options);
        var found = new List<SlurmDiscrepancy>();
        var queueById = new Dictionary<long, SlurmJobRow>(snapshot.Queue.Count);
        var queueByName = new Dictionary<string, List<SlurmJobRow>>(StringComparer.Ordinal);
        foreach (var r in snapshot.Queue)
        {
            queueById[r.SlurmJobId] = r;
            if (SlurmJobName.TryParse(prefix, r.Name, out _, out _))
            {
                if (!queueByName.TryGetValue(r.Name, out var list))
                {
                    queueByName[r.Name] = list = new List<SlurmJobRow>(1);
                }

                list.Add(r);
            }
        }

        var acctById = new Dictionary<long, SlurmJobRow>(snapshot.Accounting.Count);
        var acctByName = new Dictionary<string, SlurmJobRow>(StringComparer.Ordinal);
        foreach (var r in snapshot.Accounting)
        {
            acctById[r.SlurmJobId] = r;
            if (!acctByName.TryGetValue(r.Name, out var prev) || prev.SlurmJobId < r.SlurmJobId)
            {
                acctByName[r.Name] = r;
            }
        }

        var expectedNames = new HashSet<string>(expected.Count, StringComparer.Ordinal);
        foreach (var e in expected)
        {
            var name = SlurmJobName.Format(prefix, e.JobId, e.Attempt);
            expectedNames.Add(name);
            SlurmJobRow? row = null;
            if (e.SlurmJobId is { } sid && queueById.TryGetValue(sid, out var byId) && byId.Name == name)
            {
                row = byId;
            }
            else if (queueByName.TryGetValue(name, out var byName))
            {
                row = Newest(byName);
            }

            if (row is null)
            {
                var acct = e.SlurmJobId is { } aid && acctById.TryGetValue(aid, out var a1) ? a1 : acctByName.GetValueOrDefault(name);
                if (acct is not null && acct.State.IsTerminal())
                {
                    if (acct.End is { } end && now - end > options.EndReportGrace)
                    {
                        found.Add(new(DiscrepancyKind.EndedInSlurm, now, e.JobId, acct.SlurmJobId, acct.Nodes.FirstOrDefault(),
                            $"{name} ended {acct.State.ToString().ToUpperInvariant()} at {end:o} (sacct) but is still {e.State} in GpuCommons",
                            "check that the server polls the backend; the end is taken in from sacct"));
                    }

                    continue;
                }

                if (snapshot.Clean && now - e.Since > options.LostGrace)
                {
                    var detail = acct is null
                        ? $"{name} (Slurm id {e.SlurmJobId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "never saved"}) is {e.State} in GpuCommons but in neither squeue nor sacct"
                        : $"{name} is {e.State} in GpuCommons; slurmctld no longer has it and sacct still says {acct.State.ToString().ToUpperInvariant()}";
                    found.Add(new(DiscrepancyKind.LostInSlurm, now, e.JobId, e.SlurmJobId ?? acct?.SlurmJobId, e.Nodes.FirstOrDefault(), detail,
                        "mark the job failed and requeue it if requeueable (a new attempt gets a new Slurm name)")
                    {
                        SlurmName = name,
                    });
                }

                continue;
            }

            if (row.State.IsTerminal())
            {
                if (row.End is { } end && now - end > options.EndReportGrace)
                {
                    found.Add(new(DiscrepancyKind.EndedInSlurm, now, e.JobId, row.SlurmJobId, row.Nodes.FirstOrDefault(),
                        $"{name} ended {row.State.ToString().ToUpperInvariant()} at {end:o} but is still {e.State} in GpuCommons",
                        "check that the server polls the backend"));
                }
            }
            else if (row.State == SlurmJobState.Pending)
            {
                if (now - e.Since > options.StartTimeout)
                {
                    found.Add(new(DiscrepancyKind.NotStartedInTime, now, e.JobId, row.SlurmJobId, e.Nodes.FirstOrDefault(),
                        $"{name} pinned to {string.Join(',', e.Nodes)} is still PENDING ({row.Reason ?? "no reason"}) after {(now - e.Since).TotalSeconds:0} s",
                        "cancel it and let the engine place it again, or check the nodes for foreign jobs and reservations")
                    {
                        SlurmName = name,
                    });
                }
            }
            else if (e.Nodes.Count > 0 && row.Nodes.Count > 0 && !SameNodes(e.Nodes, row.Nodes))
            {
                found.Add(new(DiscrepancyKind.WrongNodes, now, e.JobId, row.SlurmJobId, row.Nodes.FirstOrDefault(),
                    $"{name} runs on {string.Join(',', row.Nodes)} but was placed on {string.Join(',', e.Nodes)}",
                    "update the engine's placement from Slurm or cancel the job"));
            }
        }

        foreach (var (name, rows) in queueByName)
        {
            var live = 0;
            foreach (var r in rows)
            {
                if (r.State.IsTerminal())
                {
                    continue;
                }

                live++;
                if (!expectedNames.Contains(name))
                {
                    SlurmJobName.TryParse(prefix, name, out var jid, out _);
                    found.Add(new(DiscrepancyKind.UnknownInSlurm, now, jid, r.SlurmJobId, r.Nodes.FirstOrDefault(),
                        $"{name} (Slurm {r.SlurmJobId}) is {r.State.ToString().ToUpperInvariant()} in Slurm but GpuCommons does not expect it",
                        "scancel it if it is a leftover; its GPUs are invisible to the engine meanwhile")
                    {
                        SlurmName = name,
                    });
                }
            }

            if (live > 1)
            {
                SlurmJobName.TryParse(prefix, name, out var jid, out _);
                found.Add(new(DiscrepancyKind.DuplicateInSlurm, now, jid, null, null,
                    $"{live} live Slurm jobs named {name}: {string.Join(',', rows.Where(r => !r.State.IsTerminal()).Select(r => r.SlurmJobId))}",
                    "keep the one GpuCommons recorded, scancel the others"));
            }
        }

        foreach (var err in snapshot.Errors.Take(options.MaxMalformedPerPass))
        {
            found.Add(new(DiscrepancyKind.MalformedOutput, now, null, null, null, err.ToString(),
                "check the Slurm version against the formats in SlurmOutputParser; the line was skipped"));
        }

        return found;
    }

    private async Task<SlurmSnapshot> ReadAsync(IReadOnlyCollection<ExpectedJob> expected, DateTimeOffset now, CancellationToken ct)
    {
        var client = _backend.Client;
        var prefix = _backend.Options.JobNamePrefix;
        var q = await client.QueueAsync(ct).ConfigureAwait(false);
        var errors = new List<SlurmParseError>(q.Errors);
        var ids = new HashSet<long>(q.Rows.Count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in q.Rows)
        {
            ids.Add(r.SlurmJobId);
            names.Add(r.Name);
        }

        var missingIds = new List<long>();
        var missingNames = new List<string>();
        foreach (var e in expected)
        {
            var name = SlurmJobName.Format(prefix, e.JobId, e.Attempt);
            if (names.Contains(name) || (e.SlurmJobId is { } id && ids.Contains(id)))
            {
                continue;
            }

            if (e.SlurmJobId is { } sid)
            {
                missingIds.Add(sid);
            }
            else
            {
                missingNames.Add(name);
            }
        }

        var acct = new List<SlurmJobRow>();
        if (_backend.Options.UseAccounting && (missingIds.Count > 0 || missingNames.Count > 0))
        {
            if (missingIds.Count > 0)
            {
                var a = await client.AccountingAsync(missingIds, ct).ConfigureAwait(false);
                acct.AddRange(a.Rows);
                errors.AddRange(a.Errors);
            }

            foreach (var chunk in missingNames.Chunk(200))
            {
                var a = await client.AccountingSinceAsync(now - _backend.Options.AccountingLookback, ct, string.Join(',', chunk)).ConfigureAwait(false);
                acct.AddRange(a.Rows);
                errors.AddRange(a.Errors);
            }
        }

        return new SlurmSnapshot(now, q.Rows, acct, [], errors);
    }

    private static SlurmDiscrepancy Unreachable(DateTimeOffset now, SlurmHealth health) =>
        new(DiscrepancyKind.ControllerUnreachable, now, null, null, null,
            $"Slurm does not answer ({health.ConsecutiveFailures} failures in a row): {health.LastError}; next try at {health.NextAttempt:o}",
            "check slurmctld (scontrol ping); GpuCommons keeps accepting jobs, retries with back-off and catches up when it answers");

    private void Record(ReconciliationReport report)
    {
        lock (_lock)
        {
            LastReport = report;
            foreach (var d in report.Discrepancies)
            {
                _recent.Enqueue(d);
                while (_recent.Count > _options.RecentCapacity)
                {
                    _recent.Dequeue();
                }
            }
        }

        foreach (var d in report.Discrepancies.Take(100))
        {
            Log.Discrepancy(_logger, d.Kind.ToString(), d.JobId, d.SlurmJobId, d.Node, d.Detail);
        }

        Log.ReconcilePass(_logger, report.ExpectedJobs, report.SlurmJobs, report.Discrepancies.Count, report.Elapsed.TotalMilliseconds);
    }

    private static SlurmJobRow Newest(List<SlurmJobRow> rows)
    {
        SlurmJobRow? best = null;
        foreach (var r in rows)
        {
            // A live job wins over an ended one; among equals, the newest.
            if (best is null || (!r.State.IsTerminal() && best.State.IsTerminal())
                || (r.State.IsTerminal() == best.State.IsTerminal() && r.SlurmJobId > best.SlurmJobId))
            {
                best = r;
            }
        }

        return best!;
    }

    private static bool SameNodes(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        foreach (var n in a)
        {
            var hit = false;
            foreach (var m in b)
            {
                if (string.Equals(n, m, StringComparison.Ordinal))
                {
                    hit = true;
                    break;
                }
            }

            if (!hit)
            {
                return false;
            }
        }

        return true;
    }
}
