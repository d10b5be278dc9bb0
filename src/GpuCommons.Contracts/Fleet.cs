namespace GpuCommons.Contracts;

/// <summary>A node and its state (<c>GET /api/nodes</c>; the answer to drain, undrain and down).</summary>
/// <param name="Name">The node's name.</param>
/// <param name="Partition">The partition it belongs to.</param>
/// <param name="Gpus">Its GPUs.</param>
/// <param name="State"><c>up</c>, <c>draining</c> or <c>down</c>.</param>
/// <param name="Reason">Why it is not up, as an operator or the server said.</param>
/// <param name="GpuUuids">Its GPUs' UUIDs, when discovered.</param>
public sealed record NodeDto(string Name, string Partition, int Gpus, string State, string? Reason, IReadOnlyList<string> GpuUuids);

/// <summary>Where the server and the cluster manager disagree (<c>GET /api/fleet/discrepancies</c>).</summary>
/// <param name="Id">The discrepancy's id.</param>
/// <param name="Kind"><c>lost</c>, <c>unknown</c>, <c>duplicate</c>, <c>not_started</c>, <c>wrong_nodes</c>, <c>ended</c>, …</param>
/// <param name="JobId">The job it concerns, if any.</param>
/// <param name="Attempt">Which attempt of the job.</param>
/// <param name="ExternalId">The cluster manager's id (Slurm's job id).</param>
/// <param name="Node">The node it concerns.</param>
/// <param name="Detail">What was seen, in words.</param>
/// <param name="SuggestedAction">What an operator might do.</param>
/// <param name="FirstSeen">When a pass first saw it.</param>
/// <param name="LastSeen">When a pass last saw it.</param>
/// <param name="Seen">How many passes saw it.</param>
/// <param name="Resolved">When a pass no longer saw it; absent while open.</param>
/// <param name="Action">What the server did about it.</param>
public sealed record DiscrepancyDto(long Id, string Kind, long? JobId, int? Attempt, string? ExternalId, string? Node, string Detail, string SuggestedAction,
    DateTimeOffset FirstSeen, DateTimeOffset LastSeen, int Seen, DateTimeOffset? Resolved, string? Action);

/// <summary>Where reconciliation with the cluster manager stands, for the operator view.</summary>
/// <param name="Enabled">False when the backend has nothing to reconcile (local processes).</param>
/// <param name="LastPass">When the last pass ran; absent: none yet.</param>
/// <param name="Reachable">Whether the last pass reached the cluster manager.</param>
/// <param name="ExpectedJobs">Runs the server expected the cluster manager to hold.</param>
/// <param name="BackendJobs">Jobs the cluster manager held.</param>
/// <param name="ElapsedMs">How long the last pass took.</param>
/// <param name="Passes">Passes since the server started.</param>
/// <param name="NextAttempt">Next pass; later than the interval while the manager backs off.</param>
/// <param name="Problem">Why the last pass concluded nothing about jobs (manager down, unreadable output), in words.</param>
public sealed record ReconciliationDto(bool Enabled, DateTimeOffset? LastPass, bool Reachable, int ExpectedJobs, int BackendJobs, double ElapsedMs, long Passes,
    DateTimeOffset? NextAttempt, string? Problem);

/// <summary>Where reconciliation with the backend stands, how many discrepancies are open, and the ones asked for (newest first).</summary>
/// <param name="Reconciliation">Where reconciliation stands.</param>
/// <param name="Open">Discrepancies open in all.</param>
/// <param name="Items">The discrepancies asked for, newest first.</param>
public sealed record DiscrepancyReport(ReconciliationDto Reconciliation, int Open, IReadOnlyList<DiscrepancyDto> Items);
