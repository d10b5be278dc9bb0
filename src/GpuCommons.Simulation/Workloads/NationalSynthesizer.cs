using System.Globalization;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Simulation.Traces;

namespace GpuCommons.Simulation.Workloads;

/// <summary>
/// A seeded national-center workload (SCENARIO.md): 4 flagship teams running 256–1,024-GPU checkpointing gangs for days,
/// 80 universities and 30 institutes (1–32 GPUs, some shares of one GPU), 50 company labs (1–64) and 300 startups (1–16).
/// Arrivals are Poisson, at the rate that gives <see cref="TargetLoad"/> on the fleet, growing by
/// <see cref="MonthlyGrowth"/> a month. Jobs are produced as a stream: a million jobs are never in memory at once.
/// </summary>
/// <remarks>
/// The gangs can only run on the largest 8-GPU pools (the three B200 pools of the national fleet, 43% of its GPUs), so
/// their share of the work must fit there: flagship jobs are 0.1% of jobs, which makes the gangs about 37% of the
/// GPU-hours, and each gang picks a pool in proportion to its size. At the default load of 0.9 the B200 pools then get
/// about 0.8 from the gangs alone, below capacity, with the small jobs (which may run anywhere) filling the rest.
/// (With 0.4% of jobs and a uniform choice of pool the gangs were 70% of the work, and the two smaller B200 pools were
/// offered twice what they can run: their queues grew without bound however long the run.)
/// </remarks>
public sealed class NationalSynthesizer
{
    public const double MonthSeconds = 30 * 86400.0;

    private static readonly (OrganisationType Type, string Prefix, int Orgs, int ProjectsEach, double JobShare)[] Classes =
    [
        (OrganisationType.Flagship, "Flagship", 4, 2, 0.001),
        (OrganisationType.University, "University", 80, 3, 0.33),
        (OrganisationType.Institute, "Institute", 30, 2, 0.12),
        (OrganisationType.CompanyLab, "Lab", 50, 2, 0.17),
        (OrganisationType.Startup, "Startup", 300, 1, 0.379),
    ];

    private static readonly (double Gpus, double Weight)[] Flagship = [(256, 0.45), (512, 0.35), (1024, 0.2)];
    private static readonly (double Gpus, double Weight)[] Academic = [(0.25, 3), (0.5, 3), (1, 36), (2, 14), (4, 16), (8, 18), (16, 6), (32, 4)];
    private static readonly (double Gpus, double Weight)[] Lab = [(1, 25), (2, 10), (4, 15), (8, 30), (16, 10), (32, 7), (64, 3)];
    private static readonly (double Gpus, double Weight)[] Startup = [(0.5, 4), (1, 34), (2, 15), (4, 20), (8, 22), (16, 5)];

    private readonly Fleet _fleet;
    private readonly List<(string Project, int ClassIndex)>[] _projectsByClass;
    private readonly double[] _classCdf;
    private readonly List<Partition> _gangPartitions;
    private readonly double[] _gangCdf;
    private readonly int _maxGang;
    private readonly double _meanWork;

    public NationalSynthesizer(Fleet fleet, int seed = 42, double targetLoad = 0.9, double monthlyGrowth = 0)
    {
        _fleet = fleet;
        Seed = seed;
        TargetLoad = targetLoad;
        MonthlyGrowth = monthlyGrowth;
        Tenancy = new TenancySpec();
        var classOf = new Dictionary<string, string>(StringComparer.Ordinal);
        _projectsByClass = new List<(string, int)>[Classes.Length];
        _classCdf = new double[Classes.Length];
        double acc = 0;
        for (var c = 0; c < Classes.Length; c++)
        {
            var (type, prefix, orgs, each, share) = Classes[c];
            _projectsByClass[c] = [];
            for (var o = 1; o <= orgs; o++)
            {
                var org = $"{prefix} {o:D3}";
                Tenancy.Organisations.Add(new OrganisationSpec(org, type));
                for (var p = 1; p <= each; p++)
                {
                    var project = $"{prefix.ToLowerInvariant()}{o:D3}-p{p}";
                    Tenancy.Projects.Add(new ProjectSpec(project, org));
                    Tenancy.Allocations.Add(AllocationSpec.Unlimited(project));
                    classOf[project] = TenantMapping.ClassName(type);
                    _projectsByClass[c].Add((project, c));
                }
            }

            acc += share;
            _classCdf[c] = acc;
        }

        _classCdf[^1] = 1;
        ClassOfProject = classOf;

        // Big gangs go to partitions of 8-GPU nodes; a gang never asks for more than half such a partition.
        _gangPartitions = [.. fleet.Partitions.Where(p => p.TypicalGpusPerNode >= 8).OrderByDescending(p => p.TotalGpus)];
        if (_gangPartitions.Count == 0)
        {
            _gangPartitions = [.. fleet.Partitions.OrderByDescending(p => p.TotalGpus)];
        }

        _gangPartitions = [.. _gangPartitions.Take(3)];
        _maxGang = Math.Max(1, _gangPartitions[0].TotalGpus / 2);

        // A gang picks one of them in proportion to its GPUs, so that each gets the same load.
        _gangCdf = new double[_gangPartitions.Count];
        double gangGpus = _gangPartitions.Sum(p => p.TotalGpus), cum = 0;
        for (var i = 0; i < _gangPartitions.Count; i++)
        {
            cum += _gangPartitions[i].TotalGpus;
            _gangCdf[i] = cum / gangGpus;
        }

        _gangCdf[^1] = 1;

        // Mean GPU-seconds per job, estimated from the generator itself with a separate seed.
        var probe = new Random(seed ^ 0x5EED);
        double work = 0;
        const int samples = 200_000;
        for (var i = 0; i < samples; i++)
        {
            var j = Draw(probe, 0, 0);
            work += j.WorkGpuSeconds;
        }

        _meanWork = work / samples;
    }

    public int Seed { get; }
    public double TargetLoad { get; }
    public double MonthlyGrowth { get; }
    public TenancySpec Tenancy { get; }
    public IReadOnlyDictionary<string, string> ClassOfProject { get; }

    /// <summary>Jobs per second at time 0 that make the offered load <see cref="TargetLoad"/>.</summary>
    public double BaseRate => TargetLoad * _fleet.TotalGpus / _meanWork;

    /// <summary>Mean GPU-hours per job.</summary>
    public double MeanGpuHours => _meanWork / 3600;

    /// <summary>A workload of <paramref name="count"/> jobs (or unlimited, up to <paramref name="untilSeconds"/>).</summary>
    public Workload Workload(long count, double untilSeconds = double.PositiveInfinity) => new()
    {
        Name = $"national-synthetic(seed={Seed}, load={TargetLoad.ToString(CultureInfo.InvariantCulture)})",
        Tenancy = Tenancy,
        Jobs = Generate(count, untilSeconds),
        ClassOfProject = ClassOfProject,
        Count = count == long.MaxValue ? null : (int)Math.Min(count, int.MaxValue),
        SpanSeconds = MonthlyGrowth == 0 && count != long.MaxValue ? count / BaseRate : (double.IsFinite(untilSeconds) ? untilSeconds : null),
    };

    public IEnumerable<TraceJob> Generate(long count, double untilSeconds = double.PositiveInfinity)
    {
        var random = new Random(Seed);
        var t = 0.0;
        var growth = Math.Log(1 + MonthlyGrowth) / MonthSeconds;
        for (long i = 1; i <= count; i++)
        {
            var rate = BaseRate * Math.Exp(growth * t);
            t += -Math.Log(1 - random.NextDouble()) / rate;
            t = Math.Round(t, 3);
            if (t > untilSeconds)
            {
                yield break;
            }

            yield return Draw(random, i, t);
        }
    }

    private TraceJob Draw(Random random, long id, double submit)
    {
        var u = random.NextDouble();
        var c = 0;
        while (c < _classCdf.Length - 1 && u > _classCdf[c])
        {
            c++;
        }

        var projects = _projectsByClass[c];
        var (project, _) = projects[random.Next(projects.Count)];
        var type = Classes[c].Type;
        double gpus;
        double hours;
        string? partition = null;
        var checkpointable = false;
        var priority = PriorityClass.Normal;
        if (type == OrganisationType.Flagship && random.NextDouble() < 0.8)
        {
            // Flagship training runs: long, checkpointing gangs on one 8-GPU partition.
            gpus = Math.Min(Pick(Flagship, random), _maxGang);
            gpus = Math.Max(8, Math.Floor(gpus / 8) * 8);
            hours = LogUniform(random, 12, 96);
            var pick = random.NextDouble();
            var k = 0;
            while (k < _gangCdf.Length - 1 && pick > _gangCdf[k])
            {
                k++;
            }

            var part = _gangPartitions[k];
            partition = part.Name;
            checkpointable = true;
            priority = PriorityClass.High;
        }
        else
        {
            gpus = type switch
            {
                OrganisationType.Flagship => 8,
                OrganisationType.University or OrganisationType.Institute => Pick(Academic, random),
                OrganisationType.CompanyLab => Pick(Lab, random),
                _ => Pick(Startup, random),
            };

            // Log-normal run times: median 1.5 h, a tail of multi-day jobs, at most 7 days.
            hours = Math.Min(168, Math.Exp(Math.Log(1.5) + (1.6 * Normal(random))));
            hours = Math.Max(hours, 60 / 3600.0);
            checkpointable = random.NextDouble() < 0.3;
            priority = random.NextDouble() < 0.1 ? PriorityClass.Preemptible : PriorityClass.Normal;
        }

        var duration = Math.Round(hours * 3600);

        // Users overestimate: walltime is 1.2–3 × the run time, in whole minutes; 5% of jobs hit their walltime.
        var wall = Math.Ceiling(duration * (1.2 + (1.8 * random.NextDouble())) / 60) * 60;
        if (random.NextDouble() < 0.05)
        {
            wall = Math.Max(60, Math.Floor(duration * 0.8 / 60) * 60);
        }

        return new TraceJob
        {
            Id = id,
            Label = id.ToString(CultureInfo.InvariantCulture),
            SubmitSeconds = submit,
            DurationSeconds = duration,
            Gpus = gpus,
            WalltimeSeconds = wall,
            Tenant = project,
            User = "u" + random.Next(4).ToString(CultureInfo.InvariantCulture),
            Priority = priority,
            Partition = partition,
            Checkpointable = checkpointable,
        };
    }

    private static double Pick((double Gpus, double Weight)[] table, Random random)
    {
        var total = 0.0;
        foreach (var (_, w) in table)
        {
            total += w;
        }

        var u = random.NextDouble() * total;
        foreach (var (g, w) in table)
        {
            u -= w;
            if (u <= 0)
            {
                return g;
            }
        }

        return table[^1].Gpus;
    }

    private static double LogUniform(Random random, double lo, double hi) => Math.Exp(Math.Log(lo) + (random.NextDouble() * (Math.Log(hi) - Math.Log(lo))));

    private static double Normal(Random random)
    {
        var u1 = 1 - random.NextDouble();
        var u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
