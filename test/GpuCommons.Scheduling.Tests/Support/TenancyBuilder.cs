using GpuCommons.Core.Fleet;
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

/// <summary>Small fleets for scenario tests.</summary>
internal static class TestFleets
{
    /// <summary>One partition "p" of <paramref name="nodes"/> nodes n01.. with <paramref name="gpus"/> GPUs each, under the root.</summary>
    public static Fleet Flat(int nodes, int gpus = 8, string partition = "p", decimal rate = 1000)
    {
        var b = new FleetBuilder("test").AddPartition(partition, "H100", rate);
        for (var i = 1; i <= nodes; i++)
        {
            b.AddNode(partition, $"n{i:D2}", gpus);
        }

        return b.Build();
    }

    /// <summary>One partition "p" with nodes of the given sizes n01, n02, ... under the root.</summary>
    public static Fleet Sizes(params int[] gpus)
    {
        var b = new FleetBuilder("test").AddPartition("p", "H100", 1000);
        for (var i = 0; i < gpus.Length; i++)
        {
            b.AddNode("p", $"n{i + 1:D2}", gpus[i]);
        }

        return b.Build();
    }

    /// <summary>One partition "p" with leaf blocks (b1, b2, ...) of the given node counts, 8-GPU nodes named b1-n1...</summary>
    public static Fleet Blocks(params int[] nodesPerBlock)
    {
        var b = new FleetBuilder("test").AddPartition("p", "H100", 1000);
        for (var k = 0; k < nodesPerBlock.Length; k++)
        {
            b.AddDomain("p", $"b{k + 1}", null);
            for (var i = 1; i <= nodesPerBlock[k]; i++)
            {
                b.AddNode("p", $"b{k + 1}-n{i}", 8, $"b{k + 1}");
            }
        }

        return b.Build();
    }
}
