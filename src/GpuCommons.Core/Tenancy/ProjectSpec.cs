namespace GpuCommons.Core.Tenancy;

/// <summary>A project of an organisation: the unit that holds allocations and submits jobs.</summary>
public sealed record ProjectSpec(string Name, string Organisation)
{
    /// <summary>Fair-share weight among the projects of the same organisation.</summary>
    public double Shares { get; init; } = 1;
    /// <summary>Quotas per partition; a partition not listed: nothing guaranteed, borrowing unlimited.</summary>
    public IReadOnlyList<QuotaSpec> Quotas { get; init; } = [];
}
