namespace GpuCommons.Backends;

/// <summary>
/// Compares what the server believes it handed to a cluster manager with what the manager holds (Slurm: squeue and
/// sacct). Optional: a backend that runs jobs itself (local processes) has nothing to reconcile. The server runs the
/// passes, keeps every discrepancy for operators and acts on the safe ones; the reconciler itself only reads, except
/// <see cref="CancelStrayAsync"/>, which the server calls for a leftover it has proved is its own.
/// </summary>
public interface IBackendReconciler
{
    /// <summary>One pass. Never guesses: output it could not read becomes a <see cref="DiscrepancyKinds.MalformedOutput"/>.</summary>
    Task<BackendReconciliation> ReconcileAsync(IReadOnlyCollection<ExpectedRun> expected, CancellationToken cancellationToken);

    /// <summary>Earliest moment a pass is worth trying (later than now while the manager is backing off).</summary>
    DateTimeOffset NextAttempt { get; }

    /// <summary>Cancels a live backend job that carries one of our names but that the server does not run.</summary>
    Task CancelStrayAsync(BackendDiscrepancy stray, CancellationToken cancellationToken);
}

/// <summary>A job the server has handed to the backend and not yet seen end.</summary>
/// <param name="JobId">GpuCommons job id.</param>
/// <param name="Attempt">Start attempt (0 first).</param>
/// <param name="ExternalId">The backend's id, once saved (null: not saved yet).</param>
/// <param name="StartedInBackend">True once the backend reported the job running.</param>
/// <param name="Since">When it was handed to the backend, or when the backend started it.</param>
/// <param name="Nodes">Where the engine placed it.</param>
public sealed record ExpectedRun(long JobId, int Attempt, string? ExternalId, bool StartedInBackend, DateTimeOffset Since, IReadOnlyList<string> Nodes);

/// <summary>One disagreement between the server's records and the backend, for operators.</summary>
/// <param name="Kind">One of <see cref="DiscrepancyKinds"/>.</param>
/// <param name="JobId">The GpuCommons job it concerns (from the backend job's name for strays).</param>
/// <param name="Attempt">The attempt the backend job's name carries, where known.</param>
/// <param name="ExternalId">The backend's job id, where there is one.</param>
/// <param name="Node">The node it concerns, where there is one.</param>
/// <param name="Detail">What was seen, in words.</param>
/// <param name="SuggestedAction">What an operator may do about it.</param>
public sealed record BackendDiscrepancy(string Kind, long? JobId, int? Attempt, string? ExternalId, string? Node, string Detail, string SuggestedAction);

/// <summary>The outcome of one pass.</summary>
/// <param name="Time">When the pass ran.</param>
/// <param name="Reachable">False when the manager did not answer: nothing about jobs could be concluded.</param>
/// <param name="ExpectedJobs">How many jobs the server expected the backend to hold.</param>
/// <param name="BackendJobs">How many jobs the backend listed (Slurm: the rows of squeue); 0 when it did not answer.</param>
/// <param name="Elapsed">How long the pass took.</param>
/// <param name="Discrepancies">Every disagreement found.</param>
public sealed record BackendReconciliation(DateTimeOffset Time, bool Reachable, int ExpectedJobs, int BackendJobs, TimeSpan Elapsed, IReadOnlyList<BackendDiscrepancy> Discrepancies);

/// <summary>The kinds of <see cref="BackendDiscrepancy"/>, as stored and shown to operators.</summary>
public static class DiscrepancyKinds
{
    /// <summary>The server has the job submitted or running; the backend has no record of it.</summary>
    public const string Lost = "lost";

    /// <summary>A live backend job named like ours that the server does not run.</summary>
    public const string Unknown = "unknown";

    /// <summary>More than one live backend job under one of our names.</summary>
    public const string Duplicate = "duplicate";

    /// <summary>A pinned job still waiting in the backend after the start timeout.</summary>
    public const string NotStarted = "not_started";

    /// <summary>Running on other nodes than the engine placed it.</summary>
    public const string WrongNodes = "wrong_nodes";

    /// <summary>Ended in the backend a while ago but still running in the server.</summary>
    public const string Ended = "ended";

    /// <summary>The cluster manager does not answer; passes back off and catch up when it does.</summary>
    public const string Unreachable = "unreachable";

    /// <summary>A command of the cluster manager took longer than the slow threshold.</summary>
    public const string Slow = "slow";

    /// <summary>The cluster manager printed something that could not be read; it was skipped, nothing was guessed.</summary>
    public const string MalformedOutput = "malformed_output";

    /// <summary>The pass itself failed (an unexpected error); the loop goes on.</summary>
    public const string PassFailed = "pass_failed";

    /// <summary>Kinds that describe the backend as a whole rather than one job (one open record each).</summary>
    public static bool IsBackendWide(string kind) => kind is Unreachable or Slow or PassFailed;
}
