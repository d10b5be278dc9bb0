namespace GpuCommons.Core.Tenancy;

/// <summary>An organisation: a university, institute, company lab, startup or national flagship team.</summary>
public sealed record OrganisationSpec(string Name, OrganisationType Type)
{
    /// <summary>Fair-share weight among the organisations of the same type.</summary>
    public double Shares { get; init; } = 1;
    /// <summary>Quotas per partition; a partition not listed: nothing guaranteed, borrowing unlimited.</summary>
    public IReadOnlyList<QuotaSpec> Quotas { get; init; } = [];
}
