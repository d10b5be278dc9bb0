using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;

namespace GpuCommons.Server.Engine;

/// <summary>
/// Records what the engine decided about a job that stopped running: its one ledger entry (charged GPUs × time ×
/// rate against one allocation), its row (ended, or pending again as its next attempt when requeued) and its audit event.
/// Adds to the caller's context; the caller commits, in one transaction, before the loop goes on.
/// </summary>
internal sealed class JobEndRecorder(TimeProvider time, ServerMetrics metrics)
{
    /// <summary>
    /// The ledger entry of an end that carries a charge, or null: the market value (<c>Amount</c>) and, from the
    /// allocation's co-pay share, what the organisation pays (<c>Payable</c>).
    /// </summary>
    public static LedgerRow? Ledger(JobRow row, JobEnd end, double copayShare = 0) => end.Charge is { } c
        ? new LedgerRow
        {
            JobId = row.Id,
            Attempt = row.Attempt,
            AllocationId = c.AllocationId,
            Project = row.Project,
            User = row.User,
            Partition = c.Partition,
            HeldGpus = row.HeldGpus,
            Seconds = end.Start is { } s ? (end.End - s).TotalSeconds : 0,
            GpuHours = c.GpuHours,
            Amount = c.Amount,
            CopayShare = copayShare,
            // Of the market value as stored (4 decimals), so that the two columns agree on every provider.
            Payable = GpuCommons.Core.Rounds.Copay.Payable(Math.Round(c.Amount, 4, MidpointRounding.AwayFromZero), copayShare),
            Time = end.End,
        }
        : null;

    /// <summary>
    /// A run that ended as the backend (or reconciliation) reported it: ledger, row, event. <paramref name="label"/>
    /// replaces the outcome's name in the row's outcome text (a lost run is "failed").
    /// </summary>
    /// <returns>True when the job left the active set (not requeued).</returns>
    public bool RecordEnd(GpucDb db, LoopState state, JobRow row, JobEnd end, JobOutcome outcome, int? exitCode, string why, string? label)
    {
        if (Ledger(row, end, CopayShare(state, end)) is { } entry)
        {
            db.Ledger.Add(entry);
        }

        row.ExitCode = exitCode;
        row.Outcome = (label ?? outcome.ToString().ToLowerInvariant()) + (why.Length > 0 ? ": " + why : "");
        var left = !end.Requeued;
        if (end.Requeued)
        {
            Coordinator.ResetToPending(row);
            row.Attempt++;
            row.CancelRequested = false;
        }
        else
        {
            row.State = end.State;
            row.EndTime = end.End;
            state.Active.Remove(row.Id);
            metrics.Outcome(row.State);
        }

        db.Jobs.Update(row);
        db.Events.Add(Event("scheduler", end.Requeued ? "job.requeued" : "job." + row.State.ToWire(), $"job/{row.Id}", row.Project,
            $"{row.Outcome}; charged {end.Charge?.GpuHours ?? 0:0.####} GPU-hours"));
        return left;
    }

    /// <summary>A run the engine ended because its node failed: ledger and row (requeued, or ended as "node failure").</summary>
    public void RecordNodeFailure(GpucDb db, LoopState state, JobRow row, JobEnd end)
    {
        if (Ledger(row, end, CopayShare(state, end)) is { } entry)
        {
            db.Ledger.Add(entry);
        }

        if (end.Requeued)
        {
            Coordinator.ResetToPending(row);
            row.Attempt++;
        }
        else
        {
            row.State = end.State;
            row.EndTime = end.End;
            row.Outcome = "node failure";
            state.Active.Remove(row.Id);
        }

        db.Jobs.Update(row);
    }

    private static double CopayShare(LoopState state, JobEnd end) =>
        end.Charge is { } c && state.Allocations.TryGetValue(c.AllocationId, out var a) ? a.CopayShare : 0;

    /// <summary>Ends a job that never ran: failed, no charge, out of the active set.</summary>
    public void FailUnstarted(LoopState state, JobRow row, string outcome)
    {
        Coordinator.ResetToPending(row);
        row.State = JobState.Failed;
        row.Outcome = outcome.Length > 2000 ? outcome[..2000] : outcome;
        row.EndTime = time.GetUtcNow();
        state.Active.Remove(row.Id);
        metrics.Outcome(JobState.Failed);
    }

    public EventRow Event(string actor, string kind, string subject, string? project, string? detail) =>
        new() { Time = time.GetUtcNow(), Actor = actor, Kind = kind, Subject = subject, Project = project, Detail = detail };
}
