using GpuCommons.Core;
using GpuCommons.Core.Tenancy;
using GpuCommons.Simulation.Traces;

namespace GpuCommons.Simulation.Workloads;

/// <summary>How the tenants of a trace (virtual clusters, users, the <c>tenant</c> column) become tenants of the center.</summary>
public enum TenantMappingKind
{
    /// <summary>Each trace tenant is its own organisation and project, with an unlimited grant and no quota (the default).</summary>
    None,
    /// <summary>
    /// Trace tenants are given the national classes by GPU-hours: the biggest tenants, up to half of all GPU-hours, become
    /// flagship teams; the next 30% company labs and startups (alternating); the rest universities and institutes (alternating).
    /// This mirrors the national 50/30/20 split of capacity.
    /// </summary>
    National,
}

/// <summary>Builds the tenancy of a trace workload.</summary>
public static class TenantMapping
{
    public const string TraceClass = "trace";

    public static TenantMappingKind Parse(string name) => name.ToLowerInvariant() switch
    {
        "none" => TenantMappingKind.None,
        "national" => TenantMappingKind.National,
        _ => throw new SpecException("tenant-mapping", $"unknown tenant mapping '{name}' (known: none, national)"),
    };

    public static Workload Build(string name, List<TraceJob> jobs, TenantMappingKind kind)
    {
        var work = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var j in jobs)
        {
            work[j.Tenant] = work.GetValueOrDefault(j.Tenant) + j.WorkGpuSeconds;
        }

        // Biggest tenants first; ties by name so that the mapping is deterministic.
        var ranked = work.OrderByDescending(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var total = Math.Max(ranked.Sum(kv => kv.Value), 1e-9);
        var tenancy = new TenancySpec();
        var classes = new Dictionary<string, string>(StringComparer.Ordinal);
        double before = 0;
        var industry = 0;
        var academia = 0;
        foreach (var (tenant, w) in ranked)
        {
            var type = OrganisationType.University;
            var label = TraceClass;
            if (kind == TenantMappingKind.National)
            {
                var share = before / total;
                type = share < 0.5 || before == 0 ? OrganisationType.Flagship
                    : share < 0.8 ? (industry++ % 2 == 0 ? OrganisationType.CompanyLab : OrganisationType.Startup)
                    : (academia++ % 2 == 0 ? OrganisationType.University : OrganisationType.Institute);
                label = ClassName(type);
            }

            before += w;
            var org = "org-" + tenant;
            tenancy.Organisations.Add(new OrganisationSpec(org, type));
            tenancy.Projects.Add(new ProjectSpec(tenant, org));
            tenancy.Allocations.Add(AllocationSpec.Unlimited(tenant));
            classes[tenant] = label;
        }

        var span = jobs.Count == 0 ? 0 : jobs[^1].SubmitSeconds - jobs[0].SubmitSeconds;
        return new Workload
        {
            Name = name,
            Tenancy = tenancy,
            Jobs = jobs,
            ClassOfProject = classes,
            Count = jobs.Count,
            SpanSeconds = span,
            MayHavePreemptibleJobs = jobs.Exists(j => j.Priority == Core.Jobs.PriorityClass.Preemptible),
        };
    }

    public static string ClassName(OrganisationType type) => type switch
    {
        OrganisationType.Flagship => "flagship",
        OrganisationType.University => "university",
        OrganisationType.Institute => "institute",
        OrganisationType.CompanyLab => "company_lab",
        OrganisationType.Startup => "startup",
        _ => type.ToString().ToLowerInvariant(),
    };
}
