using System.Globalization;
using GpuCommons.Simulation.Traces;

namespace GpuCommons.Simulation.Tests;

/// <summary>
/// Checks a schedule CSV against the invariants every run must keep: no GPU over capacity at any instant, a job's GPUs
/// start and stop together (one row per segment, on one partition), no start before submit, segments of a job never
/// overlap, and run times honoured: a finished segment runs exactly what was left of the job, a failed one its walltime
/// (or less, on a node failure), a preempted one less than what was left.
/// </summary>
internal static class ScheduleChecker
{
    public sealed record Row(string Job, double Submit, double? Start, double? End, string State, string Partition, double Gpus, List<(string Node, int Gpu, double Share)> Slots);

    public static List<Row> Parse(string csv)
    {
        var lines = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0 || lines[0] != Simulator.ScheduleHeader)
        {
            throw new InvalidOperationException("bad schedule header: " + (lines.Length > 0 ? lines[0] : "(empty)"));
        }

        var rows = new List<Row>();
        foreach (var line in lines.Skip(1))
        {
            var c = line.Split(',');
            if (c.Length != 8)
            {
                throw new InvalidOperationException("bad row: " + line);
            }

            var slots = new List<(string, int, double)>();
            foreach (var item in c[7].Split(';', StringSplitOptions.RemoveEmptyEntries))
            {
                var p = item.Split(':');
                slots.Add((p[0], int.Parse(p[1], CultureInfo.InvariantCulture), p.Length > 2 ? double.Parse(p[2], CultureInfo.InvariantCulture) : 1.0));
            }

            rows.Add(new Row(c[0], D(c[1])!.Value, D(c[2]), D(c[3]), c[4], c[5], D(c[6])!.Value, slots));
        }

        return rows;
    }

    /// <summary>Returns the violations (empty when the schedule is sound).</summary>
    public static List<string> Check(string csv, IReadOnlyList<TraceJob> jobs, double walltimeFactor = 1)
    {
        var errors = new List<string>();
        var rows = Parse(csv);
        var byLabel = jobs.ToDictionary(j => j.Label);
        var valid = new HashSet<string> { "finished", "failed", "cancelled", "preempted", "running", "pending", "rejected" };

        // Capacity: sweep starts and ends per GPU (an end at t frees the GPU for a start at t).
        var events = new List<(double T, int Kind, string Gpu, double Share, string Job)>();
        foreach (var r in rows)
        {
            if (!valid.Contains(r.State))
            {
                errors.Add($"job {r.Job}: unknown state '{r.State}'");
            }

            if (r.Start is { } s)
            {
                if (s + 1e-6 < r.Submit)
                {
                    errors.Add($"job {r.Job}: starts at {s} before its submit {r.Submit}");
                }

                if (r.Slots.Count == 0)
                {
                    errors.Add($"job {r.Job}: started without a placement");
                }

                var whole = r.Slots.Count(x => x.Share >= 1);
                if (r.Gpus >= 1 ? whole < r.Gpus : (r.Slots.Count != 1 || Math.Abs(r.Slots[0].Share - r.Gpus) > 1e-9))
                {
                    errors.Add($"job {r.Job}: asked {r.Gpus} GPUs, placed on {r.Slots.Count} items");
                }

                if (r.Slots.Select(x => (x.Node, x.Gpu)).Distinct().Count() != r.Slots.Count)
                {
                    errors.Add($"job {r.Job}: a GPU appears twice in one placement");
                }

                var end = r.End ?? double.PositiveInfinity;
                if (end < s)
                {
                    errors.Add($"job {r.Job}: ends at {end} before it starts at {s}");
                }

                foreach (var (node, gpu, share) in r.Slots)
                {
                    events.Add((s, 1, node + ":" + gpu, share, r.Job));
                    events.Add((end, 0, node + ":" + gpu, share, r.Job));
                }
            }
            else if (r.End is not null || r.Slots.Count > 0)
            {
                errors.Add($"job {r.Job}: an end or a placement without a start");
            }
        }

        events.Sort((a, b) => a.T != b.T ? a.T.CompareTo(b.T) : a.Kind.CompareTo(b.Kind));
        var used = new Dictionary<string, double>();
        foreach (var (t, kind, gpu, share, job) in events)
        {
            var u = used.GetValueOrDefault(gpu) + (kind == 1 ? share : -share);
            used[gpu] = u;
            if (u > 1 + 1e-9)
            {
                errors.Add($"GPU {gpu} over capacity ({u}) at {t} when job {job} starts");
            }
        }

        // Per job: segments in order, never overlapping, run times honoured.
        foreach (var g in rows.GroupBy(r => r.Job))
        {
            if (!byLabel.TryGetValue(g.Key, out var job))
            {
                errors.Add($"job {g.Key}: not in the workload");
                continue;
            }

            var segs = g.Where(r => r.Start is not null).OrderBy(r => r.Start).ToList();
            var remaining = job.DurationSeconds;
            var wall = job.WalltimeSeconds ?? Math.Max(1, Math.Ceiling(job.DurationSeconds * walltimeFactor));
            double lastEnd = double.NegativeInfinity;
            foreach (var r in segs)
            {
                if (r.Start!.Value + 1e-6 < lastEnd)
                {
                    errors.Add($"job {g.Key}: segments overlap at {r.Start}");
                }

                lastEnd = r.End ?? double.PositiveInfinity;
                if (r.End is not { } e)
                {
                    continue;
                }

                var ran = e - r.Start.Value;
                switch (r.State)
                {
                    case "finished" when Math.Abs(ran - remaining) > 0.01 || remaining > wall + 0.01:
                        errors.Add($"job {g.Key}: finished after {ran} s, but {remaining} s were left");
                        break;
                    case "failed" when ran > Math.Min(wall, remaining) + 0.01:
                        errors.Add($"job {g.Key}: failed after {ran} s, more than its walltime {wall} s");
                        break;
                    case "preempted" when ran > remaining + 0.01:
                        errors.Add($"job {g.Key}: preempted after {ran} s, but only {remaining} s were left");
                        break;
                }

                if (r.State == "preempted" && job.Checkpointable)
                {
                    remaining -= ran;
                }
                else if (r.State == "failed" && job.Checkpointable)
                {
                    // A node failure: a checkpointing job keeps its whole hours.
                    remaining -= Math.Floor((ran + 1e-6) / 3600) * 3600;
                }
            }

            if (g.Count(r => r.State is "finished" or "rejected" or "cancelled") > 1)
            {
                errors.Add($"job {g.Key}: ends more than once");
            }
        }

        return errors;
    }

    private static double? D(string s) => s.Length == 0 ? null : double.Parse(s, CultureInfo.InvariantCulture);
}
