using GpuCommons.Backends;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;

namespace GpuCommons.Server.Engine;

// What the reconciliation service asks of the loop: the runs it should find in the backend, and the two safe actions
// (a lost run fails and is requeued; a run that did not start in time is cancelled in the backend and requeued).
public sealed partial class Coordinator
{
    /// <summary>The jobs handed to the backend and not yet seen end, as the loop holds them now.</summary>
    public Task<IReadOnlyList<ExpectedRun>> ExpectedRunsAsync() => OnLoopAsync(() =>
    {
        var list = new List<ExpectedRun>();
        foreach (var row in _s.Active.Values)
        {
            if (row.State != JobState.Running)
            {
                continue;
            }

            var nodes = (row.Placement ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries).Select(s => s.Split(':')[0]).Distinct(StringComparer.Ordinal).ToList();
            list.Add(new ExpectedRun(row.Id, row.Attempt, row.BackendId, _s.BackendStarted.Contains(row.Id), row.StartTime ?? row.SubmitTime, nodes));
        }

        return Task.FromResult<IReadOnlyList<ExpectedRun>>(list);
    });

    /// <summary>
    /// The backend has no record of this run: it ends as failed (charged up to now from its backend start) and, when
    /// requeueable, goes back to the queue with its submit time. Null when the run is no longer the job's current one.
    /// </summary>
    public Task<string?> EndLostRunAsync(long jobId, int attempt, string detail) => OnLoopAsync(async () =>
    {
        // A run whose start is still in flight is not in the backend yet: not lost.
        if (!_s.Active.TryGetValue(jobId, out var row) || row.State != JobState.Running || row.Attempt != attempt || _s.Starting.ContainsKey(jobId))
        {
            return null;
        }

        await EndJobAsync(jobId, JobOutcome.NodeFailure, _time.GetUtcNow(), null, "lost: " + detail, CancellationToken.None, JobStateNames.Failed);
        return row.State == JobState.Pending
            ? $"marked failed and requeued (attempt {row.Attempt})"
            : "marked failed (not requeueable)";
    });

    /// <summary>
    /// A pinned run still waits in the backend after the start timeout: it is cancelled there and the job goes back to
    /// the queue, keeping its place, as a new attempt (a new backend name), without a charge since it never ran. Null
    /// when nothing was done (started meanwhile, no longer current, or the cancel failed).
    /// </summary>
    public Task<string?> RequeueNotStartedAsync(long jobId, int attempt, string detail) => OnLoopAsync(async () =>
    {
        if (!_s.Active.TryGetValue(jobId, out var row) || row.State != JobState.Running || row.Attempt != attempt || _s.BackendStarted.Contains(jobId)
            || _s.Starting.ContainsKey(jobId))
        {
            return null;
        }

        try
        {
            await _backend.CancelAsync(jobId, TimeSpan.Zero, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Not cancelled: requeueing now could run it twice. The next pass tries again.
            LogBackendError("cancel (not started in time)", jobId, e);
            return null;
        }

        _s.Engine.StartFailed(jobId);
        _touched.Add(jobId);
        ResetToPending(row);
        row.Attempt++;
        row.Outcome = "requeued: not started in the backend in time";
        await using var db = _db.Create();
        await AddDeferredAsync(db, CancellationToken.None);
        db.Jobs.Update(row);
        db.Events.Add(Event("reconciler", "job.requeued", $"job/{jobId}", row.Project, "not started in the backend in time: " + detail));
        await db.SaveChangesAsync();
        _deferredRows.Clear();
        _deferredEvents.Clear();
        PublishStats();
        return $"cancelled in the backend and requeued (attempt {row.Attempt})";
    });
}
