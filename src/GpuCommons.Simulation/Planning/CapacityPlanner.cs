using System.Globalization;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Simulation.Metrics;
using GpuCommons.Simulation.Workloads;

namespace GpuCommons.Simulation.Planning;

/// <summary>
/// Capacity planning: the same growing national demand (seeded synthesis) replayed against several fleet timelines.
/// Scenarios: <c>on-time</c> (the arriving partitions come into service at <see cref="ArrivalMonth"/>),
/// <c>delay-Nmo</c> (N months later), <c>half</c> (on time, but only half the nodes of every partition),
/// <c>no-arrival</c> (they never come), and <c>full</c> (everything in service from the start).
/// </summary>
public sealed class CapacityPlanner
{
    public static IReadOnlyList<string> ScenarioNames { get; } = ["on-time", "delay-3mo", "delay-6mo", "half", "no-arrival", "full"];

    public required Fleet Fleet { get; init; }
    public int Months { get; init; } = 12;
    /// <summary>Offered load of month 0's demand on the whole fleet.</summary>
    public double Load { get; init; } = 0.6;
    public double MonthlyGrowth { get; init; } = 0.05;
    public string Policy { get; init; } = "multifactor";
    public int Seed { get; init; } = 42;
    public double ArrivalMonth { get; init; } = 1;
    public double CycleIntervalSeconds { get; init; } = 300;
    /// <summary>Partitions still to arrive; null: the national B200 pools when the fleet has them, else the largest partition.</summary>
    public IReadOnlyList<string>? Arriving { get; init; }

    public double MonthSeconds => NationalSynthesizer.MonthSeconds;

    public IReadOnlyList<Partition> ArrivingPartitions()
    {
        if (Arriving is { Count: > 0 } names)
        {
            return [.. names.Select(n => Fleet.FindPartition(n) ?? throw new SpecException("arriving", $"unknown partition '{n}' (known: {string.Join(", ", Fleet.Partitions.Select(p => p.Name))})"))];
        }

        var b200 = Fleet.Partitions.Where(p => p.GpuModel.Contains("B200", StringComparison.OrdinalIgnoreCase)).ToList();
        return b200.Count > 0 && b200.Count < Fleet.Partitions.Count ? b200 : [Fleet.Partitions.OrderByDescending(p => p.TotalGpus).First()];
    }

    public PlanScenario Scenario(string name)
    {
        var arriving = ArrivingPartitions();
        var arrivingNodes = arriving.SelectMany(p => p.Nodes).Select(n => Fleet.Nodes[n].Name).ToList();
        var gpus = arriving.Sum(p => p.TotalGpus);
        var what = $"{string.Join(", ", arriving.Select(p => p.Name))} ({gpus:N0} GPUs)";
        var at = ArrivalMonth * MonthSeconds;
        var lower = name.ToLowerInvariant();
        if (lower == "full")
        {
            return new PlanScenario(name, "every partition in service from the start", []);
        }

        if (lower == "on-time")
        {
            return new PlanScenario(name, $"{what} arrive in month {ArrivalMonth.ToString(CultureInfo.InvariantCulture)}", Arrive(arrivingNodes, at));
        }

        if (lower == "no-arrival")
        {
            return new PlanScenario(name, $"{what} never arrive", [new FleetEvent(0, arrivingNodes, NodeState.Down, "not delivered")]);
        }

        if (lower == "half")
        {
            // Every other node of each partition never comes; the arriving half comes on time.
            var missing = new List<string>();
            var arrivingHalf = new List<string>();
            foreach (var p in Fleet.Partitions)
            {
                for (var i = 0; i < p.Nodes.Count; i++)
                {
                    var node = Fleet.Nodes[p.Nodes[i]].Name;
                    if (i % 2 == 1)
                    {
                        missing.Add(node);
                    }
                    else if (arriving.Contains(p))
                    {
                        arrivingHalf.Add(node);
                    }
                }
            }

            var events = new List<FleetEvent> { new(0, missing, NodeState.Down, "never bought") };
            events.AddRange(Arrive(arrivingHalf, at));
            return new PlanScenario(name, $"half the GPUs of every partition; {what} (half of them) arrive in month {ArrivalMonth.ToString(CultureInfo.InvariantCulture)}", events);
        }

        if (lower.StartsWith("delay-", StringComparison.Ordinal) && lower.EndsWith("mo", StringComparison.Ordinal)
            && double.TryParse(lower[6..^2], NumberStyles.Float, CultureInfo.InvariantCulture, out var delay) && delay >= 0)
        {
            return new PlanScenario(name, $"{what} arrive {delay.ToString(CultureInfo.InvariantCulture)} months late (month {(ArrivalMonth + delay).ToString(CultureInfo.InvariantCulture)})", Arrive(arrivingNodes, at + (delay * MonthSeconds)));
        }

        throw new SpecException("scenarios", $"unknown scenario '{name}' (known: {string.Join(", ", ScenarioNames)}, or delay-Nmo)");
    }

    private static List<FleetEvent> Arrive(List<string> nodes, double at) =>
        at <= 0 ? [] : [new FleetEvent(0, nodes, NodeState.Down, "not delivered yet"), new FleetEvent(at, nodes, NodeState.Up, "delivered")];

    public Workload Workload() =>
        new NationalSynthesizer(Fleet, Seed, Load, MonthlyGrowth).Workload(long.MaxValue, Months * MonthSeconds);

    public SimulationOptions Options(PlanScenario scenario, Action<SimulationProgress>? progress = null) => new()
    {
        Scheduler = Policies.Create(Policy),
        PolicyName = Policy,
        HorizonSeconds = Months * MonthSeconds,
        Timeline = scenario.Timeline,
        CycleIntervalSeconds = CycleIntervalSeconds,
        SampleIntervalSeconds = 6 * 3600,
        MonthSeconds = MonthSeconds,
        Seed = Seed,
        Progress = progress,
    };

    /// <summary>
    /// Runs the named scenarios, up to <paramref name="maxParallel"/> at once (0: one per processor), and returns their
    /// results in the order of <paramref name="names"/>. Every scenario is its own simulation (its own workload stream,
    /// engine, clock and random numbers) and shares only the immutable fleet, so the results are the same, value for
    /// value, however many run at once. Every name is resolved before anything runs.
    /// </summary>
    public IReadOnlyList<PlanResult> Run(IReadOnlyList<string> names, int maxParallel = 0, Func<string, Action<SimulationProgress>?>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(names);
        var scenarios = names.Select(Scenario).ToList();
        var results = new PlanResult[scenarios.Count];
        void RunOne(int i) =>
            results[i] = new PlanResult(scenarios[i], Simulator.Run(Fleet, Workload(), Options(scenarios[i], progress?.Invoke(scenarios[i].Name))));

        var parallel = Math.Min(maxParallel > 0 ? maxParallel : Environment.ProcessorCount, scenarios.Count);
        if (parallel <= 1)
        {
            for (var i = 0; i < scenarios.Count; i++)
            {
                RunOne(i);
            }

            return results;
        }

        try
        {
            Parallel.For(0, scenarios.Count, new ParallelOptions { MaxDegreeOfParallelism = parallel }, RunOne);
        }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }

        return results;
    }

    public static Dictionary<string, object?> ToJson(CapacityPlanner plan, IReadOnlyList<PlanResult> results) => new()
    {
        ["fleet"] = plan.Fleet.Name,
        ["gpus"] = plan.Fleet.TotalGpus,
        ["months"] = plan.Months,
        ["load"] = plan.Load,
        ["monthly_growth"] = plan.MonthlyGrowth,
        ["policy"] = plan.Policy,
        ["seed"] = plan.Seed,
        ["scenarios"] = results.Select(r => new Dictionary<string, object?>
        {
            ["name"] = r.Scenario.Name,
            ["description"] = r.Scenario.Description,
            ["jobs"] = r.Result.Jobs,
            ["never_started"] = r.Result.Months.Take(plan.Months).Sum(m => (long)m.NeverStarted.Sum()),
            ["wall_seconds"] = Math.Round(r.Result.WallSeconds, 3),
            ["scheduling"] = new Dictionary<string, object?>
            {
                ["cycles"] = r.Result.Cycles,
                ["full_cycles"] = r.Result.FullCycles,
                ["jobs_considered_full"] = r.Result.ConsideredFull,
                ["jobs_considered_incremental"] = r.Result.ConsideredIncremental,
                ["full_cycle_seconds"] = Math.Round(r.Result.FullCycleSeconds, 3),
                ["incremental_cycle_seconds"] = Math.Round(r.Result.IncrementalCycleSeconds, 3),
            },
            ["mean_wait_s"] = MetricGroup.R(r.Result.All.Wait.Mean),
            ["p95_wait_s"] = MetricGroup.R(r.Result.All.Wait.Quantile(0.95)),
            ["gpu_allocation"] = Math.Round(r.Result.GpuAllocation, 4),
            ["unserved_gpu_hours"] = MetricGroup.R(r.Result.Months.Take(plan.Months).Sum(m => m.UnservedGpuHours.Sum())),
            ["months"] = r.Result.Months.Take(plan.Months).Select(m => new Dictionary<string, object?>
            {
                ["month"] = m.Month + 1,
                ["by_class"] = r.Result.Classes.Select((c, i) => (c, i)).Where(x => r.Result.ByClass[x.i].Submitted > 0).ToDictionary(x => x.c, x => (object)new Dictionary<string, object?>
                {
                    ["mean_wait_s"] = MetricGroup.R(m.Wait[x.i].Mean),
                    ["p95_wait_s"] = MetricGroup.R(m.Wait[x.i].Quantile(0.95)),
                    ["jobs_started"] = m.Wait[x.i].Count,
                    ["never_started"] = m.NeverStarted[x.i],
                    ["demand_gpu_hours"] = MetricGroup.R(m.DemandGpuHours[x.i]),
                    ["allocated_gpu_hours"] = MetricGroup.R(m.AllocatedGpuHours[x.i]),
                    ["unserved_gpu_hours"] = MetricGroup.R(m.UnservedGpuHours[x.i]),
                }),
            }).ToList(),
        }).ToList(),
    };
}
