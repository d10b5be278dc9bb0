using System.Collections.Immutable;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;

namespace GpuCommons.Server.Engine;

/// <summary>
/// What the scheduler loop knows, as of one cycle: published by the loop after every pass and read by requests without
/// waiting for the loop. Never changes once published; the next pass publishes a new one.
/// </summary>
public sealed class SchedulerView
{
    private readonly IReadOnlyDictionary<long, JobView> _jobs;
    private readonly ImmutableDictionary<long, JobView?> _recent;

    internal SchedulerView(long version, DateTimeOffset time, IReadOnlyDictionary<long, JobView> jobs, ImmutableDictionary<long, JobView?> recent,
        IReadOnlyDictionary<string, (double Granted, double Spent, double Committed)> allocationUsage,
        IReadOnlyDictionary<string, (NodeState State, string? Reason)> nodeStates, IReadOnlyDictionary<long, StartRetry> startRetries,
        int pending, int running, DateTimeOffset jobsTime)
    {
        Version = version;
        Time = time;
        _jobs = jobs;
        _recent = recent;
        AllocationUsage = allocationUsage;
        NodeStates = nodeStates;
        StartRetries = startRetries;
        PendingCount = pending;
        RunningCount = running;
        JobsTime = jobsTime;
    }

    /// <summary>The view before the engine is rebuilt: empty.</summary>
    internal static SchedulerView Empty { get; } = new(0, DateTimeOffset.MinValue, new Dictionary<long, JobView>(), ImmutableDictionary<long, JobView?>.Empty,
        new Dictionary<string, (double, double, double)>(), new Dictionary<string, (NodeState, string?)>(), new Dictionary<long, StartRetry>(), 0, 0, DateTimeOffset.MinValue);

    /// <summary>Counts the passes that published a view.</summary>
    public long Version { get; }

    /// <summary>When the loop published this view.</summary>
    public DateTimeOffset Time { get; }

    /// <summary>When the reasons and estimates of all live jobs were last taken (the last full cycle).</summary>
    public DateTimeOffset JobsTime { get; }

    public int PendingCount { get; }

    public int RunningCount { get; }

    /// <summary>Granted, spent and committed GPU-hours of every allocation the engine holds.</summary>
    public IReadOnlyDictionary<string, (double Granted, double Spent, double Committed)> AllocationUsage { get; }

    /// <summary>Node states as set by operators and the backend.</summary>
    public IReadOnlyDictionary<string, (NodeState State, string? Reason)> NodeStates { get; }

    /// <summary>Pending jobs held out of the engine by their dependency (and arrays whose dependency is not met): id → why.</summary>
    public IReadOnlyDictionary<long, string> Holds { get; init; } = ImmutableDictionary<long, string>.Empty;

    /// <summary>Live arrays: id → their remainder and counts.</summary>
    public IReadOnlyDictionary<long, ArraySummary> Arrays { get; init; } = ImmutableDictionary<long, ArraySummary>.Empty;

    /// <summary>Pending jobs held back after their start failed in the infrastructure.</summary>
    public IReadOnlyDictionary<long, StartRetry> StartRetries { get; }

    /// <summary>
    /// The engine's view of a live job (reason and estimated start while pending); null when the engine does not hold it
    /// (ended, or held back after a failed start). Jobs changed since the last full cycle are as of this pass; the reasons
    /// of the others are as of the last full cycle, where they are computed.
    /// </summary>
    public JobView? GetJob(long id) =>
        _recent.TryGetValue(id, out var recent) ? recent : _jobs.GetValueOrDefault(id);

    /// <summary>Every pending job the engine holds, in no particular order.</summary>
    public IEnumerable<JobView> PendingJobs()
    {
        foreach (var (id, v) in _jobs)
        {
            if (!_recent.ContainsKey(id) && v.State == JobState.Pending)
            {
                yield return v;
            }
        }

        foreach (var (_, v) in _recent)
        {
            if (v is { State: JobState.Pending })
            {
                yield return v;
            }
        }
    }
}
