using GpuCommons.Core;
using GpuCommons.Simulation.Traces;

namespace GpuCommons.Simulation.Workloads;

/// <summary>Offered load and time compression of a workload.</summary>
public static class LoadShaper
{
    /// <summary>
    /// Offered load: the GPU-seconds the jobs ask for (GPUs × duration) over the GPU-seconds the fleet has between the
    /// first and the last submit. Above 1 the fleet cannot keep up.
    /// </summary>
    public static double OfferedLoad(IReadOnlyList<TraceJob> jobs, int fleetGpus)
    {
        if (jobs.Count < 2 || fleetGpus <= 0)
        {
            return 0;
        }

        double work = 0;
        foreach (var j in jobs)
        {
            work += j.WorkGpuSeconds;
        }

        var span = jobs[^1].SubmitSeconds - jobs[0].SubmitSeconds;
        return span <= 0 ? double.PositiveInfinity : work / (fleetGpus * span);
    }

    /// <summary>
    /// Scales the gaps between submits (keeping durations) so that the offered load becomes <paramref name="target"/>:
    /// compression when the target is above the trace's own load, stretching when below. The first submit stays at 0.
    /// </summary>
    public static List<TraceJob> ToOfferedLoad(IReadOnlyList<TraceJob> jobs, int fleetGpus, double target)
    {
        if (!(target > 0) || !double.IsFinite(target))
        {
            throw new SpecException("target-load", $"must be a positive number, got {target}");
        }

        var load = OfferedLoad(jobs, fleetGpus);
        if (jobs.Count < 2 || load <= 0 || double.IsInfinity(load))
        {
            return [.. jobs];
        }

        var factor = load / target;
        var first = jobs[0].SubmitSeconds;
        var result = new List<TraceJob>(jobs.Count);
        foreach (var j in jobs)
        {
            // Whole milliseconds keep the replay exact and the CSVs short.
            result.Add(j with { SubmitSeconds = Math.Round((j.SubmitSeconds - first) * factor, 3) });
        }

        return result;
    }
}
