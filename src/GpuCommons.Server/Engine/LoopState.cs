using GpuCommons.Backends;
using GpuCommons.Core.Fleet;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;

namespace GpuCommons.Server.Engine;

/// <summary>
/// Everything the scheduler loop owns: the engine and the rows of the jobs it holds. Built by <see cref="EngineRebuilder"/>,
/// then read and changed by the loop only (never from a request thread; requests read <see cref="SchedulerView"/>).
/// </summary>
internal sealed class LoopState(SchedulerEngine engine, Fleet fleet)
{
    public SchedulerEngine Engine { get; } = engine;

    public Fleet Fleet { get; } = fleet;

    /// <summary>Rows of pending and running jobs the engine holds, by id (not arrays' own rows, nor jobs held by a dependency).</summary>
    public ActiveJobs Active { get; } = new();

    /// <summary>Pending jobs held out of the engine until their dependency is met, by id.</summary>
    public Dictionary<long, JobRow> Held { get; } = [];

    /// <summary>Arrays with tasks still to expand or to end, by the array's id.</summary>
    public Dictionary<long, ArrayState> Arrays { get; } = [];

    /// <summary>(user, Idempotency-Key) → job id of every job submitted with a key.</summary>
    public Dictionary<(string User, string Key), long> Idempotency { get; } = [];

    public Dictionary<string, AllocationRow> Allocations { get; } = new(StringComparer.Ordinal);

    /// <summary>Project → its organisation's type (for the queue-by-class metric).</summary>
    public Dictionary<string, string> ProjectClass { get; } = new(StringComparer.Ordinal);

    /// <summary>Jobs the engine asked to preempt, whose end the backend has not reported yet.</summary>
    public HashSet<long> Preempting { get; } = [];

    /// <summary>Jobs the backend reported started (their start time is the backend's).</summary>
    public HashSet<long> BackendStarted { get; } = [];

    public Dictionary<string, DiscoveredNode> Discovered { get; } = new(StringComparer.Ordinal);

    /// <summary>Pending jobs held out of the queue after a failed start, until their back-off passes.</summary>
    public Dictionary<long, StartRetry> StartRetries { get; } = [];

    /// <summary>Starts handed to the <see cref="StartDispatcher"/> whose result has not come back: job id → attempt.</summary>
    public Dictionary<long, int> Starting { get; } = [];

    /// <summary>Node states as last set (the view publishes them).</summary>
    public Dictionary<string, (NodeState State, string? Reason)> NodeStates { get; } = new(StringComparer.Ordinal);

    public long NextId { get; set; } = 1;
}
