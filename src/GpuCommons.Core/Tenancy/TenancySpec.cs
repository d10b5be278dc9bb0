namespace GpuCommons.Core.Tenancy;

/// <summary>Organisations, projects, allocations and the fair-share split between tenant classes.</summary>
public sealed class TenancySpec
{
    /// <summary>The organisations, with unique names.</summary>
    public List<OrganisationSpec> Organisations { get; init; } = [];
    /// <summary>The projects, each under one of <see cref="Organisations"/>.</summary>
    public List<ProjectSpec> Projects { get; init; } = [];
    /// <summary>The allocations, each of one of <see cref="Projects"/>.</summary>
    public List<AllocationSpec> Allocations { get; init; } = [];

    /// <summary>
    /// Fair-share weight of each tenant class. Default: 50% national flagship, 30% industry (company labs and
    /// startups, 15% each), 20% academia (universities 12%, institutes 8%).
    /// </summary>
    public Dictionary<OrganisationType, double> TypeShares { get; init; } = new()
    {
        [OrganisationType.Flagship] = 50,
        [OrganisationType.CompanyLab] = 15,
        [OrganisationType.Startup] = 15,
        [OrganisationType.University] = 12,
        [OrganisationType.Institute] = 8,
    };

    /// <summary>Checks names and references; every problem is a <see cref="SpecException"/> naming the field.</summary>
    public void Validate(Fleet.Fleet fleet)
    {
        var orgs = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Organisations.Count; i++)
        {
            var o = Organisations[i];
            var f = $"organisations[{i}]";
            if (string.IsNullOrWhiteSpace(o.Name))
            {
                throw new SpecException(f + ".name", "is required");
            }

            if (!orgs.Add(o.Name))
            {
                throw new SpecException(f + ".name", $"duplicate organisation '{o.Name}'");
            }

            if (!(o.Shares > 0) || !double.IsFinite(o.Shares))
            {
                throw new SpecException(f + ".shares", "must be a positive number");
            }

            ValidateQuotas(o.Quotas, f, fleet);
        }

        var projects = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Projects.Count; i++)
        {
            var p = Projects[i];
            var f = $"projects[{i}]";
            if (string.IsNullOrWhiteSpace(p.Name))
            {
                throw new SpecException(f + ".name", "is required");
            }

            if (!projects.Add(p.Name))
            {
                throw new SpecException(f + ".name", $"duplicate project '{p.Name}'");
            }

            if (!orgs.Contains(p.Organisation))
            {
                throw new SpecException(f + ".organisation", $"unknown organisation '{p.Organisation}'");
            }

            if (!(p.Shares > 0) || !double.IsFinite(p.Shares))
            {
                throw new SpecException(f + ".shares", "must be a positive number");
            }

            ValidateQuotas(p.Quotas, f, fleet);
        }

        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Allocations.Count; i++)
        {
            var a = Allocations[i];
            var f = $"allocations[{i}]";
            if (string.IsNullOrWhiteSpace(a.Id) || !ids.Add(a.Id))
            {
                throw new SpecException(f + ".id", $"missing or duplicate allocation id '{a.Id}'");
            }

            if (!projects.Contains(a.Project))
            {
                throw new SpecException(f + ".project", $"unknown project '{a.Project}'");
            }

            if (a.Partition is not null && fleet.FindPartition(a.Partition) is null)
            {
                throw new SpecException(f + ".partition", $"unknown partition '{a.Partition}'");
            }

            if (!(a.GpuHours >= 0))
            {
                throw new SpecException(f + ".gpuHours", "must be zero or more");
            }

            if (a.End <= a.Start)
            {
                throw new SpecException(f + ".end", "must be after start");
            }
        }
    }

    private static void ValidateQuotas(IReadOnlyList<QuotaSpec> quotas, string field, Fleet.Fleet fleet)
    {
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        for (var q = 0; q < quotas.Count; q++)
        {
            var f = $"{field}.quotas[{q}]";
            quotas[q].Validate(f);
            if (fleet.FindPartition(quotas[q].Partition) is null)
            {
                throw new SpecException(f + ".partition", $"unknown partition '{quotas[q].Partition}'");
            }

            if (!seen.Add(quotas[q].Partition))
            {
                throw new SpecException(f + ".partition", $"duplicate quota for partition '{quotas[q].Partition}'");
            }
        }
    }
}
