using System.Globalization;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Tenancy;
using GpuCommons.Simulation.Traces;

namespace GpuCommons.Simulation.Workloads;

/// <summary>
/// A packing workload: many requests for a share of one GPU (0.1–0.9, inference and notebooks) from 50 projects, arriving
/// fast enough to keep the GPUs shared, with a few whole-GPU jobs among them. Seeded; streamed.
/// </summary>
public static class FractionalPacking
{
    private static readonly double[] Shares = [0.1, 0.125, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 0.9];

    /// <summary>A mixed fleet of <paramref name="nodes"/> nodes of 1, 2, 4 and 8 GPUs, one partition, blocks of 32 nodes.</summary>
    public static Fleet MixedFleet(int nodes = 1200)
    {
        var b = new FleetBuilder("mixed-" + nodes.ToString(CultureInfo.InvariantCulture)).AddPartition("shared", "L40S", 0);
        int[] sizes = [1, 2, 4, 8];
        for (var i = 0; i < nodes; i++)
        {
            var block = $"blk{i / 32:D3}";
            if (i % 32 == 0)
            {
                b.AddDomain("shared", block, null);
            }

            b.AddNode("shared", $"m{i + 1:D4}", sizes[i % sizes.Length], block);
        }

        return b.Build();
    }

    public static Workload Create(Fleet fleet, long jobs, int seed = 42, double targetLoad = 0.95)
    {
        var tenancy = new TenancySpec();
        var classes = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var p = 1; p <= 50; p++)
        {
            var name = $"inf{p:D2}";
            tenancy.Organisations.Add(new OrganisationSpec("org-" + name, p % 2 == 0 ? OrganisationType.Startup : OrganisationType.University));
            tenancy.Projects.Add(new ProjectSpec(name, "org-" + name));
            tenancy.Allocations.Add(AllocationSpec.Unlimited(name));
            classes[name] = p % 2 == 0 ? "startup" : "university";
        }

        // Mean GPU-seconds per job: shares average 0.39 GPU, whole jobs are 5% of 1–2 GPUs, run times average 900 s.
        const double meanWork = ((0.95 * 0.3917) + (0.05 * 1.5)) * 900;
        var rate = targetLoad * fleet.TotalGpus / meanWork;
        return new Workload
        {
            Name = $"fractional-packing(seed={seed})",
            Tenancy = tenancy,
            Jobs = Generate(jobs, seed, rate),
            ClassOfProject = classes,
            Count = (int)Math.Min(jobs, int.MaxValue),
            SpanSeconds = jobs / rate,
            MayHavePreemptibleJobs = false,
        };
    }

    private static IEnumerable<TraceJob> Generate(long count, int seed, double rate)
    {
        var random = new Random(seed);
        var t = 0.0;
        for (long i = 1; i <= count; i++)
        {
            t = Math.Round(t + (-Math.Log(1 - random.NextDouble()) / rate), 3);
            var gpus = random.NextDouble() < 0.95 ? Shares[random.Next(Shares.Length)] : 1 + random.Next(2);
            yield return new TraceJob
            {
                Id = i,
                Label = i.ToString(CultureInfo.InvariantCulture),
                SubmitSeconds = t,
                DurationSeconds = Math.Round(60 + (random.NextDouble() * 1680)),
                Gpus = gpus,
                Tenant = $"inf{1 + random.Next(50):D2}",
            };
        }
    }
}
