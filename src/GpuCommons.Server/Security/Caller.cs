namespace GpuCommons.Server.Security;

/// <summary>Who is calling: a user, their center-wide role, and their project roles (project → <c>pi</c> or <c>member</c>).</summary>
public sealed record Caller(string User, string Role, IReadOnlyDictionary<string, string> Projects)
{
    public const string Admin = "admin", Operator = "operator", Reviewer = "reviewer", UserRole = "user";

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
