using GpuCommons.Core.Tenancy;

namespace GpuCommons.Scheduling.Tests.Support;

/// <summary>Fluent tenancy builder: organisations with quotas, projects with quotas, allocations.</summary>
internal sealed class TenancyBuilder
{
    public static readonly DateTimeOffset Epoch = new(2026, 3, 2, 9, 0, 0, TimeSpan.Zero);

    private readonly TenancySpec _spec = new();

    public TenancyBuilder Org(string name, OrganisationType type = OrganisationType.University, double shares = 1, params QuotaSpec[] quotas)
    {
        _spec.Organisations.Add(new OrganisationSpec(name, type) { Shares = shares, Quotas = quotas });
        return this;
    }

    /// <summary>A project; unless <paramref name="unlimited"/> is false it gets an allocation with no limit.</summary>
    public TenancyBuilder Project(string name, string org = "org", bool unlimited = true, params QuotaSpec[] quotas)
    {
        if (!_spec.Organisations.Any(o => o.Name == org))
        {
            Org(org);
        }

        _spec.Projects.Add(new ProjectSpec(name, org) { Quotas = quotas });
        if (unlimited)
        {
            _spec.Allocations.Add(AllocationSpec.Unlimited(name));
        }

        return this;
    }

    public TenancyBuilder Allocation(string id, string project, double gpuHours, string? partition = null, DateTimeOffset? start = null, DateTimeOffset? end = null, double spent = 0)
    {
        _spec.Allocations.Add(new AllocationSpec(id, project, partition, gpuHours, start ?? Epoch.AddDays(-1), end ?? Epoch.AddDays(365)) { SpentGpuHours = spent });
        return this;
    }

    public TenancySpec Obj() => _spec;

    /// <summary>One organisation "org" with the given projects, each with an unlimited allocation and no quota.</summary>
    public static TenancySpec Simple(params string[] projects)
    {
        var b = new TenancyBuilder().Org("org");
        foreach (var p in projects)
        {
            b.Project(p);
        }

        return b.Obj();
    }
}
