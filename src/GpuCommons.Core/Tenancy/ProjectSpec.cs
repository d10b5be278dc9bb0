namespace GpuCommons.Core.Tenancy;

/// <summary>A project of an organisation: the unit that holds allocations and submits jobs.</summary>
public sealed record ProjectSpec(string Name, string Organisation)
{
    /// <summary>Fair-share weight among the projects of the same organisation.</summary>
    public double Shares { get; init; } = 1;
    public IReadOnlyList<QuotaSpec> Quotas { get; init; } = [];
}
