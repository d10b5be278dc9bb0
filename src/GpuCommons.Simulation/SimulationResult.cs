using GpuCommons.Simulation.Metrics;

namespace GpuCommons.Simulation;

/// <summary>What a simulation measured.</summary>
public sealed class SimulationResult
{
    public required string Policy { get; init; }
    public required string Fleet { get; init; }
    public required string Workload { get; init; }
    public required int Gpus { get; init; }
    public required int Nodes { get; init; }
    public required MetricGroup All { get; init; }
    public required IReadOnlyList<MetricGroup> ByClass { get; init; }
    public required IReadOnlyList<MetricGroup> BySize { get; init; }
    public required IReadOnlyList<string> Classes { get; init; }
    public required IReadOnlyList<TimeSample> Series { get; init; }
    public required IReadOnlyList<MonthStats> Months { get; init; }
    public long Jobs { get; init; }
    public long Unfinished { get; init; }
    public double AvgJctLowerBound { get; init; }
    public double MakespanSeconds { get; init; }
    public double MakespanLowerBound { get; init; }
    public double OfferedLoad { get; init; }
    public double GpuAllocation { get; init; }
    public double GpuUtilization { get; init; }
    public double StrandedGpusAvg { get; init; }
    public double SimulatedSeconds { get; init; }
    public long Events { get; init; }
    public long FullCycles { get; init; }
    public long Cycles { get; init; }
    /// <summary>Jobs the full cycles looked at, one by one (a rest decided as a whole counts its jobs).</summary>
    public long ConsideredFull { get; init; }
    /// <summary>Jobs the incremental passes looked at.</summary>
    public long ConsideredIncremental { get; init; }
    /// <summary>Time the engine spent in full cycles (measured, like <see cref="WallSeconds"/>).</summary>
    public double FullCycleSeconds { get; init; }
    /// <summary>Time the engine spent in incremental passes (measured).</summary>
    public double IncrementalCycleSeconds { get; init; }
    public long NodeFailures { get; init; }
    /// <summary>Starts decided by the engine (every attempt of every job).</summary>
    public long Placements { get; init; }
    public double WallSeconds { get; set; }
    public double PeakMemoryMb { get; set; }

    public double AvgJctRatio => AvgJctLowerBound > 0 ? All.Jct.Mean / AvgJctLowerBound : 0;

    public Dictionary<string, object?> ToJson()
    {
        var json = new Dictionary<string, object?>
        {
            ["policy"] = Policy,
            ["fleet"] = Fleet,
            ["workload"] = Workload,
            ["gpus"] = Gpus,
            ["nodes"] = Nodes,
            ["jobs"] = Jobs,
            ["finished"] = All.Finished,
            ["failed"] = All.Failed,
            ["rejected"] = All.Rejected,
            ["unfinished"] = Unfinished,
            ["wall_seconds"] = Math.Round(WallSeconds, 3),
            ["peak_memory_mb"] = Math.Round(PeakMemoryMb, 1),
            ["jobs_per_second"] = WallSeconds > 0 ? Math.Round(Jobs / WallSeconds, 1) : 0,
            ["placements"] = Placements,
            ["placements_per_second"] = WallSeconds > 0 ? Math.Round(Placements / WallSeconds, 1) : 0,
            ["avg_jct_s"] = MetricGroup.R(All.Jct.Mean),
            ["avg_jct_lower_bound_s"] = MetricGroup.R(AvgJctLowerBound),
            ["avg_jct_ratio"] = MetricGroup.R(AvgJctRatio),
            ["mean_wait_s"] = MetricGroup.R(All.Wait.Mean),
            ["p50_wait_s"] = MetricGroup.R(All.Wait.Quantile(0.5)),
            ["p95_wait_s"] = MetricGroup.R(All.Wait.Quantile(0.95)),
            ["p99_wait_s"] = MetricGroup.R(All.Wait.Quantile(0.99)),
            ["mean_slowdown"] = MetricGroup.R(All.Slowdown.Mean),
            ["ftf_mean"] = MetricGroup.R(All.FinishTimeFairness.Mean),
            ["ftf_max"] = MetricGroup.R(All.FinishTimeFairness.Count == 0 ? 0 : All.FinishTimeFairness.Max),
            ["makespan_s"] = MetricGroup.R(MakespanSeconds),
            ["makespan_lower_bound_s"] = MetricGroup.R(MakespanLowerBound),
            ["gpu_allocation"] = Math.Round(GpuAllocation, 4),
            ["gpu_utilization"] = Math.Round(GpuUtilization, 4),
            ["utilization_upper_bound"] = Math.Round(Math.Min(1, OfferedLoad), 4),
            ["offered_load"] = Math.Round(OfferedLoad, 4),
            ["stranded_gpus_avg"] = MetricGroup.R(StrandedGpusAvg),
            ["preemptions"] = All.Preemptions,
            ["lost_gpu_hours"] = MetricGroup.R(All.LostGpuHours),
            ["charged_gpu_hours"] = MetricGroup.R(All.ChargedGpuHours),
            ["node_failures"] = NodeFailures,
            ["simulated_seconds"] = MetricGroup.R(SimulatedSeconds),
            ["events"] = Events,
            ["scheduling_cycles"] = Cycles,
            ["full_cycles"] = FullCycles,
            ["jobs_considered_full"] = ConsideredFull,
            ["jobs_considered_incremental"] = ConsideredIncremental,
            ["full_cycle_seconds"] = Math.Round(FullCycleSeconds, 3),
            ["incremental_cycle_seconds"] = Math.Round(IncrementalCycleSeconds, 3),
            ["by_class"] = ByClass.Where(g => g.Submitted > 0).ToDictionary(g => g.Name, g => (object)g.ToJson()),
            ["by_size"] = BySize.Where(g => g.Submitted > 0).ToDictionary(g => g.Name, g => (object)g.ToJson()),
        };
        return json;
    }
}
