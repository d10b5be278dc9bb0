namespace GpuCommons.Core.Tenancy;

/// <summary>The tenant classes of a national center; fair share is first divided between them.</summary>
public enum OrganisationType
{
    /// <summary>A university (the academia class).</summary>
    University,
    /// <summary>A research institute (the research class).</summary>
    Institute,
    /// <summary>A company's research lab (the industry class).</summary>
    CompanyLab,
    /// <summary>A startup (the industry class).</summary>
    Startup,
    /// <summary>A national flagship team: the few that need 512–1,024 GPUs at once for months.</summary>
    Flagship,
}
