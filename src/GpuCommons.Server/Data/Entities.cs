namespace GpuCommons.Server.Data;

// Rows of the control plane's database. Times are UTC; GPU-hours are doubles, money is decimal.

public sealed class OrganisationRow
{
    public required string Name { get; set; }
    public required string Type { get; set; }
    public double Shares { get; set; } = 1;
    /// <summary>JSON array of quotas per partition (null: none; borrowing unlimited).</summary>
    public string? Quotas { get; set; }
    public DateTimeOffset Created { get; set; }
}

public sealed class ProjectRow
{
    public required string Name { get; set; }
    public required string Organisation { get; set; }
    public double Shares { get; set; } = 1;
    public string? Description { get; set; }
    /// <summary>JSON array of quotas per partition (null: none; borrowing unlimited).</summary>
    public string? Quotas { get; set; }
    /// <summary>The POSIX group the project's jobs run under (their primary group); null: the default rule (docs/accounts.md).</summary>
    public string? PosixGroup { get; set; }
    /// <summary>The group's gid, as resolved when the group was mapped or first used.</summary>
    public int? Gid { get; set; }
    public DateTimeOffset Created { get; set; }
}

public sealed class UserRow
{
    public required string Name { get; set; }
    /// <summary>admin, operator, reviewer or user (project roles are memberships).</summary>
    public required string Role { get; set; }
    /// <summary>The POSIX login the user's jobs run as; null: the default rule (docs/accounts.md).</summary>
    public string? PosixName { get; set; }
    /// <summary>The login's uid, as resolved when the account was mapped or first used.</summary>
    public int? Uid { get; set; }
    public DateTimeOffset Created { get; set; }
    /// <summary>Email address (from the identity provider at first sign-in, or set by an admin); lower case.</summary>
    public string? Email { get; set; }
    /// <summary>The person's name as their institution gives it (the <c>name</c> claim).</summary>
    public string? DisplayName { get; set; }
    /// <summary>The organisation the person belongs to (affiliation claim or email-domain table at first sign-in).</summary>
    public string? Organisation { get; set; }
    /// <summary>When an admin disabled the person (null: active). A disabled person has no token and cannot sign in.</summary>
    public DateTimeOffset? Disabled { get; set; }
}

public sealed class TokenRow
{
    /// <summary>SHA-256 of the token, lowercase hex; the token itself is never stored.</summary>
    public required string Hash { get; set; }
    public required string User { get; set; }
    public DateTimeOffset Created { get; set; }
    /// <summary>api (a personal access token), session (a portal sign-in) or cli (<c>gpuc login</c>).</summary>
    public string Kind { get; set; } = "api";
    /// <summary>read-only, submit or admin (everything the person's role allows); see docs/sign-in.md.</summary>
    public string Scope { get; set; } = "admin";
    /// <summary>When the token stops working (null: never).</summary>
    public DateTimeOffset? Expires { get; set; }
    /// <summary>When the token was last used (to the minute).</summary>
    public DateTimeOffset? LastUsed { get; set; }
    /// <summary>What the token is for, as its owner named it.</summary>
    public string? Label { get; set; }
}

public sealed class MembershipRow
{
    public required string Project { get; set; }
    public required string User { get; set; }
    /// <summary>pi or member.</summary>
    public required string Role { get; set; }
}

public sealed class AllocationRequestRow
{
    public long Id { get; set; }
    public required string Project { get; set; }
    public string? Partition { get; set; }
    public double GpuHours { get; set; }
    public required string Justification { get; set; }
    public required string RequestedBy { get; set; }
    /// <summary>submitted, awarded or rejected.</summary>
    public required string State { get; set; }
    public int? Score { get; set; }
    public double? AwardedGpuHours { get; set; }
    public string? ReviewedBy { get; set; }
    public string? Comment { get; set; }
    public string? AllocationId { get; set; }
    public DateTimeOffset Created { get; set; }
    public DateTimeOffset? Decided { get; set; }
}

public sealed partial class AllocationRow
{
    public required string Id { get; set; }
    public required string Project { get; set; }
    public string? Partition { get; set; }
    /// <summary>GPU-hours awarded in total.</summary>
    public double AwardedGpuHours { get; set; }
    public int Tranches { get; set; } = 1;
    public int TranchesReleased { get; set; } = 1;
    public DateTimeOffset Start { get; set; }
    public DateTimeOffset End { get; set; }
    /// <summary>Alerts already sent: bit 0 = 50%, 1 = 80%, 2 = 100%, 3 = expiry soon, 4 = expired.</summary>
    public int AlertsSent { get; set; }
    public long? RequestId { get; set; }
    public DateTimeOffset Created { get; set; }

    /// <summary>GPU-hours usable now: the released tranches of the award.</summary>
    public double ReleasedGpuHours => Tranches <= 1 ? AwardedGpuHours : AwardedGpuHours * TranchesReleased / Tranches;
}

public sealed partial class JobRow
{
    public long Id { get; set; }
    public required string Project { get; set; }
    public required string User { get; set; }
    public string Name { get; set; } = "";
    public string? Partition { get; set; }
    public double Gpus { get; set; }
    public int? Nodes { get; set; }
    public int? GpusPerNode { get; set; }
    public long WalltimeSeconds { get; set; }
    public string Priority { get; set; } = "normal";
    public bool Checkpointable { get; set; }
    public bool Requeueable { get; set; } = true;
    /// <summary>JSON array of strings.</summary>
    public required string Command { get; set; }
    public string? WorkingDirectory { get; set; }
    /// <summary>JSON object of strings.</summary>
    public string? Environment { get; set; }
    /// <summary>Stored as its wire name (<see cref="GpuCommons.Contracts.JobStateNames"/>): pending, running, finished, failed or cancelled.</summary>
    /// <remarks>A standby writes the whole row as JSON into the inbox for the leader (perhaps of another release): the state as text there too.</remarks>
    [System.Text.Json.Serialization.JsonConverter(typeof(GpuCommons.Contracts.JobStateJsonConverter))]
    public required GpuCommons.Core.Jobs.JobState State { get; set; }
    public DateTimeOffset SubmitTime { get; set; }
    public DateTimeOffset? StartTime { get; set; }
    public DateTimeOffset? EndTime { get; set; }
    public int Attempt { get; set; }
    /// <summary>GPU slots while running: <c>node:gpu:milli;…</c> with node indices of the fleet.</summary>
    public string? Slots { get; set; }
    /// <summary>Readable placement (<c>node:gpu;…</c>).</summary>
    public string? Placement { get; set; }
    public double HeldGpus { get; set; }
    public string? AllocationId { get; set; }
    public string? BackendId { get; set; }

    /// <summary>
    /// The <see cref="GpuCommons.Backends.IJobBackend.RunScope"/> of the backend the start was handed to: a new leader whose
    /// backend has another scope cannot look the run up, so it treats a run with no handle as lost rather than start it again.
    /// </summary>
    public string? StartedOn { get; set; }
    public string? StdoutPath { get; set; }
    public string? StderrPath { get; set; }
    public int? ExitCode { get; set; }
    public string? Outcome { get; set; }
    public bool CancelRequested { get; set; }
    public string? IdempotencyKey { get; set; }
    /// <summary>Container image the job runs in (null: none); see <c>ContainerRules</c>.</summary>
    public string? Image { get; set; }
    /// <summary>JSON array of <c>SOURCE:TARGET[:ro]</c> bind mounts into the container.</summary>
    public string? Mounts { get; set; }

    public JobRow Clone() => (JobRow)MemberwiseClone();
}

public sealed partial class LedgerRow
{
    public long Id { get; set; }
    public long JobId { get; set; }
    public int Attempt { get; set; }
    public required string AllocationId { get; set; }
    public required string Project { get; set; }
    public required string User { get; set; }
    public required string Partition { get; set; }
    public double HeldGpus { get; set; }
    public double Seconds { get; set; }
    public double GpuHours { get; set; }
    public decimal Amount { get; set; }
    public DateTimeOffset Time { get; set; }
}

public sealed class EventRow
{
    public long Id { get; set; }
    public DateTimeOffset Time { get; set; }
    public required string Actor { get; set; }
    /// <summary>Dotted kind: <c>job.submitted</c>, <c>allocation.alert</c>, <c>node.drained</c>, …</summary>
    public required string Kind { get; set; }
    public required string Subject { get; set; }
    /// <summary>Project the event belongs to, for tenant filtering (null: center-wide).</summary>
    public string? Project { get; set; }
    public string? Detail { get; set; }
}

/// <summary>
/// A disagreement between the server's records and the backend (Slurm), open from the first pass that saw it until the
/// first pass that no longer does. One row per key (kind, job, attempt, backend id); seen again, it is updated.
/// </summary>
public sealed class DiscrepancyRow
{
    public long Id { get; set; }
    /// <summary>What identifies it across passes: kind, job, attempt and backend id (the text for unreadable output).</summary>
    public required string Key { get; set; }
    /// <summary>One of <c>GpuCommons.Backends.DiscrepancyKinds</c>: <c>lost</c>, <c>unknown</c>, <c>malformed_output</c>, …</summary>
    public required string Kind { get; set; }
    public long? JobId { get; set; }
    public int? Attempt { get; set; }
    /// <summary>The backend's job id (Slurm job id).</summary>
    public string? ExternalId { get; set; }
    public string? Node { get; set; }
    public required string Detail { get; set; }
    public required string SuggestedAction { get; set; }
    public DateTimeOffset FirstSeen { get; set; }
    public DateTimeOffset LastSeen { get; set; }
    /// <summary>Passes that saw it.</summary>
    public int Seen { get; set; }
    /// <summary>When a pass no longer saw it (null: open).</summary>
    public DateTimeOffset? Resolved { get; set; }
    /// <summary>What the server did about it (requeued, cancelled in the backend); null: reported only.</summary>
    public string? Action { get; set; }
}

public sealed class NodeStateRow
{
    public required string Node { get; set; }
    public required string State { get; set; }
    public string? Reason { get; set; }
}

public sealed class ReservationRow
{
    public required string Name { get; set; }
    /// <summary>Comma-separated node names.</summary>
    public required string Nodes { get; set; }
    public DateTimeOffset Start { get; set; }
    public DateTimeOffset End { get; set; }
    public string? Project { get; set; }
}

/// <summary>A small named value the server keeps across restarts (e.g. the webhook's delivery cursor).</summary>
public sealed class ServerStateRow
{
    public required string Key { get; set; }
    public required string Value { get; set; }
}
