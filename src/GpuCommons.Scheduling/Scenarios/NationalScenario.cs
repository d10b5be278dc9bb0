using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;

namespace GpuCommons.Scheduling.Scenarios;

/// <summary>
/// The national tenant mix (SCENARIO: 4 flagship teams, universities, institutes, company labs, startups) and a seeded
/// generator of a realistic job mix: mostly 1–8 GPUs, some shares of one GPU, a tail of 64–1,024-GPU gangs.
/// Deterministic for a given seed; no I/O.
/// </summary>
public sealed class NationalScenario
{
    private static readonly (double Gpus, double Weight)[] Sizes =
    [
        (0.25, 1.5), (0.5, 1.5), (1, 38), (2, 14), (4, 15), (8, 20), (16, 4), (32, 3),
        (64, 1.4), (128, 0.8), (256, 0.4), (512, 0.25), (1024, 0.15),
    ];

    private readonly Random _random;
    private readonly Fleet _fleet;
    private readonly double[] _sizeCdf;
    private readonly List<(string Project, int Users, OrganisationType Type)> _projects = [];
    private long _nextId = 1;

    /// <summary>Builds the tenant mix for <paramref name="fleet"/> (flagship quotas on its largest 8-GPU partitions) and seeds the job generator.</summary>
    /// <param name="fleet">The fleet the jobs are drawn for.</param>
    /// <param name="seed">Seed of the generator.</param>
    /// <param name="organisations">How many organisations: 4 flagship teams, the rest universities, institutes, company labs and startups.</param>
    /// <param name="projects">How many projects, each with one allocation, valid on every partition until 2100.</param>
    public NationalScenario(Fleet fleet, int seed = 42, int organisations = 500, int projects = 2000)
    {
        _fleet = fleet;
        _random = new Random(seed);
        var total = Sizes.Sum(s => s.Weight);
        _sizeCdf = new double[Sizes.Length];
        double acc = 0;
        for (var i = 0; i < Sizes.Length; i++)
        {
            acc += Sizes[i].Weight / total;
            _sizeCdf[i] = acc;
        }

        Tenancy = BuildTenancy(organisations, projects);
    }

    /// <summary>The organisations, projects and allocations to give the engine.</summary>
    public TenancySpec Tenancy { get; }

    /// <summary>Each project with how many users submit its jobs (1–5) and the type of its organisation.</summary>
    public IReadOnlyList<(string Project, int Users, OrganisationType Type)> Projects => _projects;

    private TenancySpec BuildTenancy(int organisations, int projects)
    {
        var tenancy = new TenancySpec();
        var orgs = new List<OrganisationSpec>();
        var flagshipPartitions = _fleet.Partitions.OrderByDescending(p => p.TotalGpus).Where(p => p.TypicalGpusPerNode >= 8).Select(p => p.Name).ToList();
        for (var i = 0; i < Math.Min(4, organisations); i++)
        {
            var quotas = new List<QuotaSpec>();
            if (flagshipPartitions.Count > 0)
            {
                var part = _fleet.FindPartition(flagshipPartitions[i % flagshipPartitions.Count])!;
                var nominal = Math.Min(1024, part.TotalGpus / 4);
                quotas.Add(new QuotaSpec(part.Name, nominal, BorrowingLimitGpus: nominal, LendingLimitGpus: nominal));
            }

            orgs.Add(new OrganisationSpec($"Flagship {(char)('A' + i)}", OrganisationType.Flagship) { Quotas = quotas });
        }

        // The rest in the scenario's proportions: universities 80, institutes 30, company labs 50, startups 300.
        var mix = new (OrganisationType Type, string Name, double Weight)[]
        {
            (OrganisationType.University, "University", 80), (OrganisationType.Institute, "Institute", 30),
            (OrganisationType.CompanyLab, "Lab", 50), (OrganisationType.Startup, "Startup", 300),
        };
        var rest = organisations - orgs.Count;
        var weightSum = mix.Sum(m => m.Weight);
        foreach (var (type, name, weight) in mix)
        {
            var count = (int)Math.Round(rest * weight / weightSum);
            for (var i = 1; i <= count && orgs.Count < organisations; i++)
            {
                orgs.Add(new OrganisationSpec($"{name} {i:D3}", type));
            }
        }

        while (orgs.Count < organisations)
        {
            orgs.Add(new OrganisationSpec($"Startup X{orgs.Count:D3}", OrganisationType.Startup));
        }

        tenancy.Organisations.AddRange(orgs);
        var start = DateTimeOffset.UnixEpoch;
        var end = new DateTimeOffset(2100, 1, 1, 0, 0, 0, TimeSpan.Zero);
        for (var j = 0; j < projects; j++)
        {
            var org = orgs[j < orgs.Count ? j : _random.Next(orgs.Count)];
            var name = $"p{j + 1:D4}";
            tenancy.Projects.Add(new ProjectSpec(name, org.Name));
            tenancy.Allocations.Add(new AllocationSpec($"a{j + 1:D4}", name, null, org.Type == OrganisationType.Flagship ? 1e9 : 5e7, start, end));
            _projects.Add((name, 1 + _random.Next(5), org.Type));
        }

        return tenancy;
    }

    /// <summary>Draws the next job, submitted at <paramref name="submit"/>.</summary>
    public JobSpec NextJob(DateTimeOffset submit)
    {
        var (project, users, type) = _projects[_random.Next(_projects.Count)];
        var u = _random.NextDouble();
        var size = 0;
        while (size < _sizeCdf.Length - 1 && u > _sizeCdf[size])
        {
            size++;
        }

        var gpus = Sizes[size].Gpus;
        if (type == OrganisationType.Flagship && _random.NextDouble() < 0.5)
        {
            gpus = Sizes[8 + _random.Next(5)].Gpus;
        }

        string? partition = null;
        if (_random.NextDouble() < 0.7 || gpus >= 64)
        {
            // Weighted by size; big gangs only where 8-GPU nodes are.
            var candidates = _fleet.Partitions.Where(p => p.TotalGpus >= gpus && (gpus < 64 || p.TypicalGpusPerNode >= 8)).ToList();
            if (candidates.Count > 0)
            {
                var pick = _random.NextDouble() * candidates.Sum(p => p.TotalGpus);
                foreach (var p in candidates)
                {
                    pick -= p.TotalGpus;
                    if (pick <= 0)
                    {
                        partition = p.Name;
                        break;
                    }
                }

                partition ??= candidates[^1].Name;
            }
        }

        // Walltime: log-uniform from 30 minutes to 3 days (7 days for big gangs); runs use 10–100% of it.
        var maxHours = gpus >= 256 ? 168 : 72;
        var wall = TimeSpan.FromHours(Math.Exp(Math.Log(0.5) + (_random.NextDouble() * (Math.Log(maxHours) - Math.Log(0.5)))));
        wall = TimeSpan.FromMinutes(Math.Ceiling(wall.TotalMinutes));
        var duration = TimeSpan.FromSeconds(Math.Max(60, wall.TotalSeconds * (0.1 + (0.9 * _random.NextDouble()))));
        var cls = _random.NextDouble() switch
        {
            < 0.1 => PriorityClass.Preemptible,
            < 0.95 => PriorityClass.Normal,
            _ => PriorityClass.High,
        };
        return new JobSpec
        {
            Id = _nextId++,
            Project = project,
            User = $"u{_random.Next(users)}",
            Partition = partition,
            Gpus = gpus,
            Walltime = wall,
            Priority = cls,
            Checkpointable = gpus >= 64 || _random.NextDouble() < 0.3,
            SubmitTime = submit,
            DurationHint = duration,
        };
    }
}
