namespace GpuCommons.Simulation.Traces;

/// <summary>Input statistics of a workload, as FORMAT.md files report them.</summary>
public sealed record TraceStats(int Jobs, double ShareOneGpu, double MeanDurationSeconds, double MedianDurationSeconds, double GpuHours, double SpanSeconds, int Tenants)
{
    public static TraceStats Of(IReadOnlyList<TraceJob> jobs)
    {
        if (jobs.Count == 0)
        {
            return new TraceStats(0, 0, 0, 0, 0, 0, 0);
        }

        var durations = new double[jobs.Count];
        double sum = 0, work = 0, min = double.MaxValue, max = double.MinValue;
        var one = 0;
        var tenants = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < jobs.Count; i++)
        {
            var j = jobs[i];
            durations[i] = j.DurationSeconds;
            sum += j.DurationSeconds;
            work += j.WorkGpuSeconds;
            one += j.Gpus == 1 ? 1 : 0;
            min = Math.Min(min, j.SubmitSeconds);
            max = Math.Max(max, j.SubmitSeconds);
            tenants.Add(j.Tenant);
        }

        Array.Sort(durations);
        var n = durations.Length;
        var median = n % 2 == 1 ? durations[n / 2] : (durations[(n / 2) - 1] + durations[n / 2]) / 2;
        return new TraceStats(n, one / (double)n, sum / n, median, work / 3600, max - min, tenants.Count);
    }
}
