namespace GpuCommons.Simulation.Metrics;

/// <summary>Aggregates of the jobs of one tenant class, one size band, or all jobs. Fixed memory.</summary>
public sealed class MetricGroup(string name)
{
    public string Name { get; } = name;
    public long Submitted { get; internal set; }
    public long Finished { get; internal set; }
    /// <summary>Ended without finishing: walltime, or failed after a node failure when not requeueable.</summary>
    public long Failed { get; internal set; }
    public long Rejected { get; internal set; }
    public long Preemptions { get; internal set; }
    public double LostGpuHours { get; internal set; }
    /// <summary>GPU-hours charged: allocated GPUs × run time, every attempt (grant burn).</summary>
    public double ChargedGpuHours { get; internal set; }
    public QuantileSketch Wait { get; } = new();
    public QuantileSketch Jct { get; } = new();
    public QuantileSketch Slowdown { get; } = new();
    public QuantileSketch FinishTimeFairness { get; } = new();

    internal void End(double jct, double wait, double runSeconds, double ftf)
    {
        Jct.Add(jct);
        Wait.Add(wait);
        Slowdown.Add(Math.Max(1, jct / Math.Max(runSeconds, 10)));
        FinishTimeFairness.Add(ftf);
    }

    public Dictionary<string, object> ToJson() => new()
    {
        ["submitted"] = Submitted,
        ["finished"] = Finished,
        ["failed"] = Failed,
        ["rejected"] = Rejected,
        ["avg_jct_s"] = R(Jct.Mean),
        ["mean_wait_s"] = R(Wait.Mean),
        ["p50_wait_s"] = R(Wait.Quantile(0.50)),
        ["p95_wait_s"] = R(Wait.Quantile(0.95)),
        ["p99_wait_s"] = R(Wait.Quantile(0.99)),
        ["max_wait_s"] = R(Wait.Count == 0 ? 0 : Wait.Max),
        ["mean_slowdown"] = R(Slowdown.Mean),
        ["ftf_mean"] = R(FinishTimeFairness.Mean),
        ["ftf_max"] = R(FinishTimeFairness.Count == 0 ? 0 : FinishTimeFairness.Max),
        ["preemptions"] = Preemptions,
        ["lost_gpu_hours"] = R(LostGpuHours),
        ["charged_gpu_hours"] = R(ChargedGpuHours),
    };

    internal static double R(double v) => double.IsFinite(v) ? Math.Round(v, 3) : 0;
}
