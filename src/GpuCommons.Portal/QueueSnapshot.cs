using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Engine;

namespace GpuCommons.Portal;

/// <summary>Queue position, reason and estimated start of every pending job, taken from the engine at most once a second.</summary>
public sealed class QueueSnapshot(Coordinator co, TimeProvider time)
{
    public sealed record Entry(int Position, int PartitionPosition, PendingReason Reason, DateTimeOffset? EstimatedStart, double Priority);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyDictionary<long, Entry> _entries = new Dictionary<long, Entry>();
    private DateTimeOffset _taken = DateTimeOffset.MinValue;

    public async Task<IReadOnlyDictionary<long, Entry>> GetAsync()
    {
        if (time.GetUtcNow() - _taken < TimeSpan.FromSeconds(1))
        {
            return _entries;
        }

        await _gate.WaitAsync();
        try
        {
            if (time.GetUtcNow() - _taken < TimeSpan.FromSeconds(1))
            {
                return _entries;
            }

            var views = await co.RunAsync(engine =>
            {
                var list = new List<JobView>(engine.PendingCount);
                foreach (var id in engine.JobIds)
                {
                    if (engine.GetJob(id) is { State: JobState.Pending } v)
                    {
                        list.Add(v);
                    }
                }

                return Task.FromResult(list);
            });
            views.Sort((a, b) => b.Priority != a.Priority ? b.Priority.CompareTo(a.Priority) : a.JobId.CompareTo(b.JobId));
            var d = new Dictionary<long, Entry>(views.Count);
            for (var i = 0; i < views.Count; i++)
            {
                var v = views[i];
                d[v.JobId] = new Entry(i + 1, i + 1, v.Reason, v.EstimatedStart, v.Priority);
            }

            _entries = d;
            _taken = time.GetUtcNow();
            return d;
        }
        finally
        {
            _gate.Release();
        }
    }
}
