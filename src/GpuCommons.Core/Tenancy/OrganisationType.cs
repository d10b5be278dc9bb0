namespace GpuCommons.Core.Tenancy;

/// <summary>The tenant classes of a national center; fair share is first divided between them.</summary>
public enum OrganisationType
{
    University,
    Institute,
    CompanyLab,
    Startup,
    Flagship,
}
