using GpuCommons.Backends;

namespace GpuCommons.Server.Leadership;

/// <summary>Thrown instead of a backend start or cancel by a server whose lease is gone or about to end.</summary>
public sealed class FencedException(string message) : Exception(message);

/// <summary>
/// The backend as the leader uses it: before every start and cancel, the lease must be held and unexpired by this machine's
/// monotonic clock with the safety margin to spare. A leader paused past its lease (SIGSTOP, a freeze) that wakes up and
/// carries on where it stopped is refused here before its database writes would be refused by the fence. Reads (discover,
/// poll, reattach, usage) pass.
/// </summary>
public class FencedBackend(IJobBackend inner, ILeadership leadership) : IJobBackend
{
    protected IJobBackend Inner { get; } = inner;

    public static IJobBackend Wrap(IJobBackend backend, ILeadership leadership) =>
        backend is INodeControl ? new FencedNodeControlBackend(backend, leadership) : new FencedBackend(backend, leadership);

    public string Name => Inner.Name;

    public string RunScope => Inner.RunScope;

    protected void Check(string action, long jobId)
    {
        if (!leadership.IsLeaseValidLocally)
        {
            throw new FencedException($"fenced: {action} of job {jobId} refused: this server's lease (epoch {leadership.Epoch}) is lost or about to end");
        }
    }

    public Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken) => Inner.DiscoverAsync(cancellationToken);

    public Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken)
    {
        Check("start", job.JobId);
        return Inner.StartAsync(job, cancellationToken);
    }

    public Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken)
    {
        Check("cancel", jobId);
        return Inner.CancelAsync(jobId, grace, cancellationToken);
    }

    public Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken) => Inner.PollAsync(cancellationToken);

    public Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken) => Inner.ReattachAsync(jobId, handle, cancellationToken);

    public Task<JobGpuUsage?> GetGpuUsageAsync(long jobId, CancellationToken cancellationToken) => Inner.GetGpuUsageAsync(jobId, cancellationToken);

    // The server owns the backend it was given and disposes it itself.
    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }
}

/// <summary>A fenced backend that also drains and resumes nodes (Slurm): those are fenced too.</summary>
public sealed class FencedNodeControlBackend(IJobBackend inner, ILeadership leadership) : FencedBackend(inner, leadership), INodeControl
{
    public Task DrainNodeAsync(string node, string reason, CancellationToken cancellationToken)
    {
        Check("node drain", 0);
        return ((INodeControl)Inner).DrainNodeAsync(node, reason, cancellationToken);
    }

    public Task ResumeNodeAsync(string node, CancellationToken cancellationToken)
    {
        Check("node resume", 0);
        return ((INodeControl)Inner).ResumeNodeAsync(node, cancellationToken);
    }
}

/// <summary>Reconciliation's one action on the backend (cancelling a stray job) is fenced like a cancel.</summary>
public sealed class FencedReconciler(IBackendReconciler inner, ILeadership leadership) : IBackendReconciler
{
    public Task<BackendReconciliation> ReconcileAsync(IReadOnlyCollection<ExpectedRun> expected, CancellationToken cancellationToken) =>
        inner.ReconcileAsync(expected, cancellationToken);

    public DateTimeOffset NextAttempt => inner.NextAttempt;

    public Task CancelStrayAsync(BackendDiscrepancy stray, CancellationToken cancellationToken)
    {
        if (!leadership.IsLeaseValidLocally)
        {
            throw new FencedException($"fenced: cancel of a stray backend job refused: this server's lease (epoch {leadership.Epoch}) is lost or about to end");
        }

        return inner.CancelStrayAsync(stray, cancellationToken);
    }
}
