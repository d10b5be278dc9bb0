namespace GpuCommons.Server.Security;

/// <summary>Who is calling: a user, their center-wide role, and their project roles (project → <c>pi</c> or <c>member</c>).</summary>
/// <remarks>
/// <paramref name="Scope"/> is the token's: <c>admin</c> (all the role allows), <c>submit</c> (acts as a project member or PI
/// only: the center-wide role does not apply) or <c>read-only</c> (reads what the role may read, changes nothing).
/// </remarks>
public sealed record Caller(string User, string Role, IReadOnlyDictionary<string, string> Projects, string Scope = TokenScopes.Admin)
{
    public const string Admin = "admin", Operator = "operator", Reviewer = "reviewer", UserRole = "user";

    /// <summary>A read-only token: any request but a read (and its own revocation) is refused.</summary>
    public bool ReadOnly => Scope == TokenScopes.ReadOnly;

    public bool IsAdmin => Role == Admin;
    public bool IsOperator => Role is Admin or Operator;
    public bool IsReviewer => Role is Admin or Reviewer;
    /// <summary>Admins and operators see every job.</summary>
    public bool SeesAllJobs => Role is Admin or Operator;
    /// <summary>Admins, operators and reviewers see every organisation, project and allocation.</summary>
    public bool SeesAllTenancy => Role is Admin or Operator or Reviewer;

    public bool InProject(string project) => Projects.ContainsKey(project);

    public bool IsPi(string project) => Projects.TryGetValue(project, out var r) && r == "pi";

    public bool CanSeeJobsOf(string project) => SeesAllJobs || InProject(project);
}

/// <summary>The scopes of a token.</summary>
public static class TokenScopes
{
    public const string ReadOnly = "read-only", Submit = "submit", Admin = "admin";

    public static bool IsValid(string? s) => s is ReadOnly or Submit or Admin;
}
