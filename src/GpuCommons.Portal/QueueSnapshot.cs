using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Engine;

namespace GpuCommons.Portal;

/// <summary>Queue position, reason and estimated start of every pending job, taken from the loop's view at most once a second.</summary>
public sealed class QueueSnapshot(Coordinator co, TimeProvider time)
{
    public sealed record Entry(int Position, int PartitionPosition, PendingReason Reason, DateTimeOffset? EstimatedStart, double Priority);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyDictionary<long, Entry> _entries = new Dictionary<long, Entry>();
    private DateTimeOffset _taken = DateTimeOffset.MinValue;

    /// <summary>
    /// Positions at most a second or two old. A stale snapshot is served while a new one is taken in the background
    /// (sorting 100,000 jobs takes a moment); only the first call waits.
    /// </summary>
    public async Task<IReadOnlyDictionary<long, Entry>> GetAsync()
    {
        if (_taken != DateTimeOffset.MinValue)
        {
            if (time.GetUtcNow() - _taken >= TimeSpan.FromSeconds(1) && _gate.CurrentCount > 0)
            {
                _ = Task.Run(RefreshAsync);
            }

            return _entries;
        }

        await RefreshAsync();
        return _entries;
    }

    private async Task RefreshAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (time.GetUtcNow() - _taken < TimeSpan.FromSeconds(1))
            {
                return;
            }

            var views = co.View.PendingJobs().ToList();
            views.Sort((a, b) => b.Priority != a.Priority ? b.Priority.CompareTo(a.Priority) : a.JobId.CompareTo(b.JobId));
            var d = new Dictionary<long, Entry>(views.Count);
            for (var i = 0; i < views.Count; i++)
            {
                var v = views[i];
                d[v.JobId] = new Entry(i + 1, i + 1, v.Reason, v.EstimatedStart, v.Priority);
            }

            _entries = d;
            _taken = time.GetUtcNow();
        }
        finally
        {
            _gate.Release();
        }
    }
}
