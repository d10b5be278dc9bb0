using System.Collections.Concurrent;
using GpuCommons.Backends;

namespace GpuCommons.Server.Tests;

/// <summary>
/// An in-process stand-in for a backend, for API tests only: it "runs" nothing, remembers what was started, and reports
/// ends when a test says so. Its state survives a server restart when the same instance is reused.
/// </summary>
public sealed class TestBackend(int nodes = 1, int gpusPerNode = 8) : IJobBackend
{
    private readonly ConcurrentQueue<BackendEvent> _events = new();
    private readonly ConcurrentDictionary<long, int> _attempts = new();

    public ConcurrentDictionary<long, BackendJob> Running { get; } = new();
    public ConcurrentDictionary<long, int> Starts { get; } = new();
    public ConcurrentBag<long> Cancelled { get; } = [];
    public bool FailStarts { get; set; }

    /// <summary>Refuses the start of jobs for which this returns an exception (as a backend refuses a job it cannot run).</summary>
    public Func<BackendJob, Exception?>? Refuse { get; set; }

    /// <summary>Starts refused through <see cref="Refuse"/>.</summary>
    public int Refused => _refused;

    private int _refused;
    public bool LoseOnReattach { get; set; }

    /// <summary>Cancels report nothing back (as when the backend has already forgotten the run).</summary>
    public bool CancelSilently { get; set; }

    /// <summary>Cores, memory (MiB) and features every discovered node reports; null: not reported.</summary>
    public (int Cpus, long MemoryMiB, string[] Features)? NodeResources { get; set; }

    public string Name => "test";

    /// <summary>Where its runs are seen; tests of a takeover give two servers' backends different scopes.</summary>
    public string RunScope { get; set; } = "test";

    public Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken)
    {
        var list = Enumerable.Range(1, nodes).Select(n => new DiscoveredNode($"node-{n}", "gpu", "TEST",
            Enumerable.Range(0, gpusPerNode).Select(g => new DiscoveredGpu(g, $"GPU-{n}-{g}", "TEST", 1024)).ToList())
        {
            Cpus = NodeResources?.Cpus,
            MemoryMiB = NodeResources?.MemoryMiB,
            Features = NodeResources?.Features ?? [],
        }).ToList();
        return Task.FromResult(new DiscoveredFleet("test", list, true, "test backend"));
    }

    /// <summary>Awaited at the start of every start (a test holds starts in flight with it).</summary>
    public Func<Task>? BeforeStart { get; set; }

    public async Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken)
    {
        if (BeforeStart is { } before)
        {
            await before();
        }

        return await StartNowAsync(job);
    }

    private Task<BackendHandle> StartNowAsync(BackendJob job)
    {
        if (FailStarts)
        {
            throw new IOException("start refused by the test backend");
        }

        if (Refuse?.Invoke(job) is { } refusal)
        {
            Interlocked.Increment(ref _refused);
            throw refusal;
        }

        // Idempotent by job and attempt, as the contract says: an attempt already started gets its handle back.
        if (Starts.ContainsKey(job.JobId) && _attempts.GetValueOrDefault(job.JobId) >= job.Attempt)
        {
            if (!Running.ContainsKey(job.JobId) || LoseOnReattach)
            {
                Running.TryRemove(job.JobId, out _);
                _events.Enqueue(new BackendEvent(BackendEventKind.Lost, job.JobId, TimeProvider.System.GetUtcNow(), Message: "process gone"));
            }

            return Task.FromResult(new BackendHandle(job.JobId, $"test-{job.JobId}", null, null));
        }

        Running[job.JobId] = job;
        _attempts[job.JobId] = job.Attempt;
        Starts.AddOrUpdate(job.JobId, 1, (_, v) => v + 1);
        return Task.FromResult(new BackendHandle(job.JobId, $"test-{job.JobId}", null, null));
    }

    public Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken)
    {
        Cancelled.Add(jobId);
        if (CancelSilently)
        {
            return Task.CompletedTask;
        }

        if (Running.TryRemove(jobId, out _))
        {
            _events.Enqueue(new BackendEvent(BackendEventKind.Cancelled, jobId, TimeProvider.System.GetUtcNow()));
        }

        return Task.CompletedTask;
    }

    /// <summary>Ends a running job with an exit code, as if its process exited.</summary>
    public void Finish(long jobId, int exitCode = 0, DateTimeOffset? at = null)
    {
        if (Running.TryRemove(jobId, out _))
        {
            _events.Enqueue(new BackendEvent(BackendEventKind.Finished, jobId, at ?? TimeProvider.System.GetUtcNow(), exitCode));
        }
    }

    /// <summary>Reports an end again (a backend that repeats itself must not cause a second charge).</summary>
    public void Replay(BackendEvent e) => _events.Enqueue(e);

    public Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken)
    {
        var list = new List<BackendEvent>();
        while (_events.TryDequeue(out var e))
        {
            list.Add(e);
        }

        return Task.FromResult<IReadOnlyList<BackendEvent>>(list);
    }

    public Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken) =>
        Task.FromResult(!LoseOnReattach && Running.ContainsKey(jobId));

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
