namespace GpuCommons.Contracts;

/// <summary>
/// A user as the API shows them (<c>GET /api/me</c>, <c>/api/users</c>, <c>/api/users/{name}</c>; a new token's answer).
/// <see cref="PosixName"/> and <see cref="Uid"/> are the account their jobs run as. Fields that do not apply are absent.
/// </summary>
/// <param name="Name">The user's name.</param>
/// <param name="Role"><c>admin</c>, <c>operator</c>, <c>reviewer</c> or <c>user</c>.</param>
/// <param name="Projects">On <c>/api/me</c>: the caller's projects and their role in each (<c>pi</c> or <c>member</c>).</param>
/// <param name="Token">Only when a token was just made: the token itself, shown this once.</param>
/// <param name="PosixName">The POSIX login their jobs run as; absent: the default rule.</param>
/// <param name="Uid">That login's uid, once resolved.</param>
/// <param name="Accounts">On <c>/api/me</c>: how the server runs jobs.</param>
/// <param name="Email">Their address, when known.</param>
/// <param name="DisplayName">Their name as their identity provider gives it.</param>
/// <param name="Organisation">The organisation they joined at first sign-in.</param>
/// <param name="Disabled">When an admin disabled them; absent while they may sign in.</param>
/// <param name="TokenExpires">Only with <paramref name="Token"/>: when it expires (absent: never).</param>
/// <param name="Scope">Only with <paramref name="Token"/>: <c>read-only</c>, <c>submit</c> or <c>admin</c>.</param>
public sealed record UserDto(string Name, string Role, IReadOnlyDictionary<string, string>? Projects = null, string? Token = null,
    string? PosixName = null, int? Uid = null, AccountsDto? Accounts = null, string? Email = null, string? DisplayName = null, string? Organisation = null,
    DateTimeOffset? Disabled = null, DateTimeOffset? TokenExpires = null, string? Scope = null);

/// <summary>How the server runs jobs, as <c>/api/me</c> tells it.</summary>
/// <param name="Mode"><c>multi-user</c> or <c>single-user</c>.</param>
/// <param name="ServerAccount">The login the server runs as.</param>
/// <param name="Provisioning">Whether missing local accounts and groups are created.</param>
public sealed record AccountsDto(string Mode, string ServerAccount, bool Provisioning)
{
    /// <summary>The <see cref="Mode"/> of a researcher's workstation: every job runs as the server's own account.</summary>
    public const string SingleUser = "single-user";
}

/// <summary>An organisation (<c>GET /api/organisations</c>, <c>/api/organisations/{name}</c>).</summary>
/// <param name="Name">Its name.</param>
/// <param name="Type"><c>university</c>, <c>institute</c>, <c>companylab</c>, <c>startup</c> or <c>flagship</c>.</param>
/// <param name="Shares">Its fair-share weight.</param>
/// <param name="Quotas">Its quotas per partition (empty: none, and borrowing unlimited).</param>
public sealed record OrganisationDto(string Name, string Type, double Shares, IReadOnlyList<QuotaDto> Quotas);

/// <summary>A project (<c>GET /api/projects</c>, <c>/api/projects/{name}</c>), with the POSIX group its jobs run with.</summary>
/// <param name="Name">Its name.</param>
/// <param name="Organisation">The organisation it belongs to.</param>
/// <param name="Shares">Its fair-share weight within the organisation.</param>
/// <param name="Description">What it is, in words.</param>
/// <param name="Quotas">Its quotas per partition (empty: none).</param>
/// <param name="PosixGroup">The POSIX group its jobs run with; absent: the default rule.</param>
/// <param name="Gid">That group's gid, once resolved.</param>
public sealed record ProjectDto(string Name, string Organisation, double Shares, string? Description, IReadOnlyList<QuotaDto> Quotas,
    string? PosixGroup = null, int? Gid = null);

/// <summary>A member of a project.</summary>
/// <param name="User">The user.</param>
/// <param name="Role"><c>pi</c> or <c>member</c>.</param>
public sealed record MemberDto(string User, string Role);

/// <summary>
/// A token as listed (<c>GET /api/users/{name}/tokens</c>): its id (the first 12 hex digits of its hash), when it was made,
/// its kind, scope, expiry, last use (to the minute) and label; never the token.
/// </summary>
/// <param name="Id">Its id: give it to revoke the token.</param>
/// <param name="Created">When it was made.</param>
/// <param name="Kind"><c>api</c>, <c>session</c> or <c>cli</c>.</param>
/// <param name="Scope"><c>read-only</c>, <c>submit</c> or <c>admin</c>.</param>
/// <param name="Expires">When it expires; absent: never.</param>
/// <param name="LastUsed">When it was last used; absent: never.</param>
/// <param name="Label">What it is for.</param>
public sealed record TokenDto(string Id, DateTimeOffset Created, string Kind, string Scope, DateTimeOffset? Expires, DateTimeOffset? LastUsed, string? Label);

/// <summary>A quota on one partition, in GPUs (Kueue semantics), as the API shows it.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="NominalGpus">GPUs guaranteed.</param>
/// <param name="BorrowingLimitGpus">GPUs that may be borrowed above the nominal; absent: no limit.</param>
/// <param name="LendingLimitGpus">GPUs of the unused nominal lent to others; absent: all of it.</param>
public sealed record QuotaDto(string Partition, double NominalGpus, double? BorrowingLimitGpus, double? LendingLimitGpus);

/// <summary>A quota on one partition, in GPUs (Kueue semantics: guaranteed nominal, borrowing and lending limits).</summary>
public sealed class QuotaRequest
{
    /// <summary>The partition.</summary>
    public string? Partition { get; set; }

    /// <summary>GPUs guaranteed.</summary>
    public double? NominalGpus { get; set; }

    /// <summary>GPUs that may be borrowed above the nominal quota (absent: no limit).</summary>
    public double? BorrowingLimitGpus { get; set; }

    /// <summary>GPUs of the unused nominal quota lent to others (absent: all of it).</summary>
    public double? LendingLimitGpus { get; set; }
}

/// <summary>The whole set of quotas of an organisation or project (<c>PUT …/quotas</c>); partitions not listed have none.</summary>
public sealed class SetQuotasRequest
{
    /// <summary>One quota per partition.</summary>
    public List<QuotaRequest>? Quotas { get; set; }
}

/// <summary>An admin's change of a user's account (<c>PATCH /api/users/{name}</c>): the POSIX login their jobs run as.</summary>
public sealed class UpdateUserRequest
{
    /// <summary>The POSIX login.</summary>
    public string? PosixName { get; set; }
}

/// <summary>An admin's change of a project's POSIX group (<c>PATCH /api/projects/{name}</c>), its jobs' primary group.</summary>
public sealed class UpdateProjectRequest
{
    /// <summary>The POSIX group.</summary>
    public string? PosixGroup { get; set; }
}

/// <summary>A new personal access token (<c>POST /api/users/{name}/tokens</c>): its scope, lifetime and label.</summary>
public sealed class CreateTokenRequest
{
    /// <summary>read-only, submit or admin (default: the scope of the token that asks, admin for an admin token).</summary>
    public string? Scope { get; set; }

    /// <summary>Days until it expires (default: never, unless the server caps lifetimes).</summary>
    public int? ExpiresInDays { get; set; }

    /// <summary>What it is for.</summary>
    public string? Label { get; set; }
}
