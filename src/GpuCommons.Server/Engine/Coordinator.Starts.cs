using GpuCommons.Backends;
using GpuCommons.Contracts;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;

namespace GpuCommons.Server.Engine;

// Starts and ends, on the loop: write the starts the engine made, hand them to the dispatcher, apply what comes back;
// apply what the backend reports (starts, ends, node states) and record ends through the JobEndRecorder.
public sealed partial class Coordinator
{
    private async Task StartJobsAsync(List<JobStart> starts, CancellationToken ct)
    {
        // Assume: the engine holds the GPUs. Persist: write the starts in one transaction.
        var phase = _time.GetTimestamp();
        var rows = PrepareStarts(starts);
        phase = Phase("prepare_starts", phase);
        try
        {
            await using var db = _db.Create();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            await new BulkUpdate(db).ExecuteAsync(rows.Select(r => r.Row).ToList(), StartColumns, ct);
            await tx.CommitAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Roll back: give the GPUs back and leave the jobs pending.
            LogStartWriteFailed(rows.Count, e);
            foreach (var (s, row) in rows)
            {
                _s.Engine.StartFailed(s.JobId);
                ResetToPending(row);
            }

            return;
        }

        phase = Phase("write_starts", phase);
        DispatchStarts(rows);
        Phase("dispatch_starts", phase);
    }

    /// <summary>The columns <see cref="PrepareStarts"/> sets.</summary>
    private static readonly string[] StartColumns =
        [nameof(JobRow.State), nameof(JobRow.StartTime), nameof(JobRow.Slots), nameof(JobRow.Placement), nameof(JobRow.HeldGpus), nameof(JobRow.AllocationId), nameof(JobRow.BackendId), nameof(JobRow.StartedOn)];

    /// <summary>Marks the rows of jobs the engine just placed as running (in memory; the caller writes them).</summary>
    private List<(JobStart Start, JobRow Row)> PrepareStarts(List<JobStart> starts)
    {
        var rows = new List<(JobStart Start, JobRow Row)>(starts.Count);
        foreach (var s in starts)
        {
            if (!_s.Active.TryGetValue(s.JobId, out var row))
            {
                _s.Engine.StartFailed(s.JobId);
                continue;
            }

            row.State = JobState.Running;
            row.StartTime = s.Time;
            row.Slots = JobMapping.FormatSlots(s.Placement, Fleet);
            row.Placement = s.Placement.Format(Fleet);
            row.HeldGpus = s.Placement.HeldGpuMilli / 1000.0;
            row.AllocationId = s.AllocationId;
            row.BackendId = null;
            row.StartedOn = _backend.RunScope;
            _touched.Add(row.Id);
            rows.Add((s, row));
        }

        return rows;
    }

    /// <summary>Hands starts that are on disk to the dispatcher; their results come back as commands.</summary>
    private void DispatchStarts(List<(JobStart Start, JobRow Row)> rows)
    {
        var orders = new List<StartOrder>(rows.Count);
        foreach (var (s, row) in rows)
        {
            _s.Starting[row.Id] = row.Attempt;
            orders.Add(new StartOrder(row.Id, row.Attempt, row.User, row.Project, JobMapping.ToBackendJob(row, s.Placement, _s, _options.LogDirectory)));
        }

        _dispatcher.Dispatch(orders, r => _channel.Writer.TryWrite(new StartResultCommand(r)));
    }

    /// <summary>
    /// What came of a start. A start refused for a reason in the job (its account, command or working directory) ends the
    /// job as failed with that reason and gives its GPUs back; a failure of the infrastructure gives the GPUs back and holds
    /// the job out of the queue for a back-off, up to <see cref="ServerOptions.MaxStartTries"/> tries. True when the engine
    /// changed (GPUs came back).
    /// </summary>
    private async Task<bool> ApplyStartResultAsync(StartResult result, CancellationToken ct)
    {
        var order = result.Order;
        var id = order.JobId;
        _dispatcher.Forget(order);
        if (_s.Starting.TryGetValue(id, out var a) && a == order.Attempt)
        {
            _s.Starting.Remove(id);
        }

        _s.Active.TryGetValue(id, out var row);
        var current = row is not null && row.Attempt == order.Attempt;
        if (result.Handle is { } h && current && row!.BackendId is null)
        {
            // The handle of this attempt, also where the run ended meanwhile (its logs are found through it). The handles
            // and the audit events ride with the next write (a crash before it is safe: on restart the backend is asked
            // again, and StartAsync is idempotent by job id).
            row.BackendId = h.ExternalId;
            row.StdoutPath = h.StdoutPath;
            row.StderrPath = h.StderrPath;
            _deferredRows.Add(row);
        }

        if (result.Voided || !current || row!.State != JobState.Running)
        {
            // Ended or requeued by the loop while the start was in flight (the dispatcher cancelled a voided run).
            return false;
        }

        _touched.Add(id);
        if (result.Error is null)
        {
            _s.StartRetries.Remove(id);
            _metrics.Admitted((row.StartTime ?? row.SubmitTime) - row.SubmitTime);
            _deferredEvents.Add(Event("scheduler", "job.started", $"job/{row.Id}", row.Project, $"on {row.Placement}"));
            if (row.CancelRequested || _s.Preempting.Contains(id))
            {
                // Cancelled or preempted while its start was in flight: signalled now that the backend has it.
                _dispatcher.Cancel(id, row.CancelRequested ? _options.CancelGrace : TimeSpan.Zero);
            }

            return false;
        }

        var engine = _s.Engine;
        var events = new List<EventRow>();
        if (row.CancelRequested)
        {
            // Cancelled while its start was in flight, and the start failed: it never ran.
            engine.StartFailed(id);
            engine.Cancel(id);
            ResetToPending(row);
            row.State = JobState.Cancelled;
            row.Outcome = "cancelled before it started";
            row.EndTime = _time.GetUtcNow();
            _s.Active.Remove(id);
            _s.StartRetries.Remove(id);
            _metrics.Outcome(JobState.Cancelled);
            events.Add(Event("scheduler", "job.cancelled", $"job/{row.Id}", row.Project, row.Outcome));
        }
        else if (result.Error is JobStartRejectedException rejected)
        {
            LogStartRejected(id, rejected.Message);
            engine.StartFailed(id);
            engine.Cancel(id);
            _s.StartRetries.Remove(id);
            _recorder.FailUnstarted(_s, row, "failed to start: " + rejected.Message);
            events.Add(Event("scheduler", "job.failed", $"job/{row.Id}", row.Project, row.Outcome));
        }
        else
        {
            var e = result.Error;
            LogBackendError("start", id, e);
            engine.StartFailed(id);
            ResetToPending(row);
            var failures = (_s.StartRetries.TryGetValue(id, out var r) ? r.Failures : 0) + 1;
            engine.Cancel(id);
            if (failures >= _options.MaxStartTries)
            {
                _s.StartRetries.Remove(id);
                _recorder.FailUnstarted(_s, row, $"failed to start: {failures} tries failed; the last: {e.Message}");
                events.Add(Event("scheduler", "job.failed", $"job/{row.Id}", row.Project, row.Outcome));
            }
            else
            {
                var wait = TimeSpan.FromTicks(Math.Min(_options.StartRetryMax.Ticks, _options.StartRetryMin.Ticks << Math.Min(failures - 1, 20)));
                _s.StartRetries[id] = new StartRetry(failures, _time.GetUtcNow() + wait, e.Message);
                events.Add(Event("scheduler", "job.start_failed", $"job/{row.Id}", row.Project, $"try {failures} of {_options.MaxStartTries}, next in {wait.TotalSeconds:0.#} s: {e.Message}"));
            }
        }

        // Written as running a moment ago: put the pending, failed or cancelled state on disk now.
        await using var db = _db.Create();
        await AddDeferredAsync(db, ct);
        db.Jobs.Update(row);

        db.Events.AddRange(events);
        await db.SaveChangesAsync(ct);
        _deferredRows.Clear();
        _deferredEvents.Clear();
        PublishStats();
        return true;
    }

    /// <summary>Puts jobs whose start back-off has passed into the queue again; true when any went back.</summary>
    private bool ResubmitDueStarts()
    {
        if (_s.StartRetries.Count == 0)
        {
            return false;
        }

        var now = _time.GetUtcNow();
        var any = false;
        foreach (var (id, retry) in _s.StartRetries.ToList())
        {
            if (retry.NextTry > now)
            {
                continue;
            }

            if (!_s.Active.TryGetValue(id, out var row) || row.State != JobState.Pending)
            {
                _s.StartRetries.Remove(id);
                continue;
            }

            _s.StartRetries[id] = retry with { NextTry = DateTimeOffset.MaxValue };
            _touched.Add(id);
            if (_s.Engine.GetJob(id) is null)
            {
                var r = _s.Engine.Submit(JobMapping.ToSpec(row));
                if (!r.Accepted)
                {
                    _s.StartRetries.Remove(id);
                    _recorder.FailUnstarted(_s, row, "failed to start and could not be queued again: " + r.Error!.Message);
                    _deferredRows.Add(row);
                }
            }

            any = true;
        }

        return any;
    }

    /// <summary>The loop ends or requeues a job without the backend's word: a start of it still in flight is voided.</summary>
    private void VoidStart(JobRow row)
    {
        if (_s.Starting.TryGetValue(row.Id, out var attempt) && attempt == row.Attempt)
        {
            _dispatcher.Void(row.Id, attempt);
        }
    }

    // ---- Backend events and job ends ---------------------------------------------------------------------------

    private async Task<bool> ApplyBackendEventsAsync(IReadOnlyList<BackendEvent> events, CancellationToken ct)
    {
        foreach (var e in events)
        {
            switch (e.Kind)
            {
                case BackendEventKind.Started:
                    if (_s.Active.TryGetValue(e.JobId, out var startedRow) && startedRow.State == JobState.Running && _s.BackendStarted.Add(e.JobId))
                    {
                        // The backend's own start (Slurm's StartTime, not when the engine placed it or this loop heard of
                        // it): what users see and what the charge runs from.
                        startedRow.StartTime = e.Time;
                        _deferredRows.Add(startedRow);
                        _touched.Add(e.JobId);
                    }

                    break;
                case BackendEventKind.NodeDown or BackendEventKind.NodeUp or BackendEventKind.NodeDraining when e.Node is not null:
                    var st = e.Kind == BackendEventKind.NodeDown ? NodeState.Down : e.Kind == BackendEventKind.NodeUp ? NodeState.Up : NodeState.Draining;
                    await ApplyNodeStateAsync(e.Node, st, e.Message ?? "reported by the backend", "backend", ct);
                    break;
                default:
                    if (!_s.Active.TryGetValue(e.JobId, out var row) || row.State != JobState.Running)
                    {
                        break;
                    }

                    var outcome = e.Kind switch
                    {
                        _ when _s.Preempting.Remove(e.JobId) => JobOutcome.Preempted,
                        _ when row.CancelRequested => JobOutcome.Cancelled,
                        BackendEventKind.Finished => e.ExitCode is null or 0 ? JobOutcome.Finished : JobOutcome.Failed,
                        BackendEventKind.Cancelled => JobOutcome.Cancelled,
                        BackendEventKind.WalltimeExceeded => JobOutcome.Walltime,
                        // The backend lost the run (not the job's fault): failed, and requeued if requeueable, keeping its place.
                        BackendEventKind.Lost => JobOutcome.NodeFailure,
                        _ => JobOutcome.Failed,
                    };
                    await EndJobAsync(e.JobId, outcome, e.Time, e.ExitCode, (e.Kind == BackendEventKind.Lost ? "lost: " : "") + (e.Message ?? (e.ExitCode is { } code ? $"exit code {code}" : "")), ct,
                        e.Kind == BackendEventKind.Lost ? JobStateNames.Failed : null);
                    break;
            }
        }

        return events.Count > 0;
    }

    /// <summary>Tells the engine a running job ended, then writes its end and its one ledger entry in one transaction.</summary>
    private async Task EndJobAsync(long id, JobOutcome outcome, DateTimeOffset at, int? exitCode, string why, CancellationToken ct, string? label = null)
    {
        var row = _s.Active[id];
        // Charged from the backend's start where it reported one (row.StartTime, see ApplyBackendEventsAsync), else the engine's.
        var end = _s.Engine.Complete(id, outcome, at, _s.BackendStarted.Remove(id) ? row.StartTime : null);
        _touched.Add(id);
        await using var db = _db.Create();
        await AddDeferredAsync(db, ct);
        _recorder.RecordEnd(db, _s, row, end, outcome, exitCode, why, label);
        await db.SaveChangesAsync(ct);
        _deferredRows.Clear();
        _deferredEvents.Clear();
    }
}
