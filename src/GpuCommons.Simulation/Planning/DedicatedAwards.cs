using System.Text.Json;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Rounds;

namespace GpuCommons.Simulation.Planning;

/// <summary>
/// A round's capacity awards against a plan's fleet timelines: per scenario, partition and month, the GPUs in service,
/// what the awards dedicate, and what is left for the shared queue (the same check as the committee's feasibility).
/// </summary>
public static class DedicatedAwards
{
    /// <summary>Reads capacity awards as <c>GET /api/awards</c> returns them (partition, gpus, start, end; GPU-hour awards are left out).</summary>
    public static List<(string Partition, int Gpus, DateTimeOffset Start, DateTimeOffset End)> Read(string json, string source)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
            {
                throw new SpecException(source, "must be a JSON array of awards (GET /api/awards)");
            }

            var list = new List<(string, int, DateTimeOffset, DateTimeOffset)>();
            var i = 0;
            foreach (var a in doc.RootElement.EnumerateArray())
            {
                var at = $"{source}[{i++}]";
                if (a.TryGetProperty("kind", out var k) && k.GetString() != "capacity")
                {
                    continue;
                }

                if (a.TryGetProperty("status", out var st) && st.GetString() == "ended")
                {
                    continue;
                }

                var partition = a.TryGetProperty("partition", out var p) ? p.GetString() : null;
                if (string.IsNullOrEmpty(partition) || !a.TryGetProperty("gpus", out var g) || !g.TryGetInt32(out var gpus)
                    || !a.TryGetProperty("start", out var s) || !s.TryGetDateTimeOffset(out var start) || !a.TryGetProperty("end", out var e) || !e.TryGetDateTimeOffset(out var end))
                {
                    throw new SpecException(at, "needs partition, gpus, start and end");
                }

                list.Add((partition, gpus, start, end));
            }

            return list;
        }
        catch (JsonException e)
        {
            throw new SpecException(source, e.Message);
        }
    }

    /// <summary>GPUs in service per partition at the start of each month of a scenario (month 0 is <paramref name="startMonth"/>).</summary>
    public static CapacityTimeline Timeline(Fleet fleet, PlanScenario scenario, int months, double monthSeconds, int startMonth)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        ArgumentNullException.ThrowIfNull(scenario);
        var up = new bool[fleet.Nodes.Count];
        Array.Fill(up, true);
        var index = fleet.Nodes.Select((n, i) => (n.Name, i)).ToDictionary(x => x.Name, x => x.i, StringComparer.Ordinal);
        var events = scenario.Timeline.OrderBy(e => e.AtSeconds).ToList();
        var next = 0;
        var steps = new List<CapacityStep>();
        for (var m = 0; m < months; m++)
        {
            while (next < events.Count && events[next].AtSeconds <= m * monthSeconds)
            {
                foreach (var n in events[next].Nodes)
                {
                    if (index.TryGetValue(n, out var i))
                    {
                        up[i] = events[next].State is NodeState.Up;
                    }
                }

                next++;
            }

            foreach (var p in fleet.Partitions)
            {
                steps.Add(new CapacityStep(p.Name, startMonth + m, p.Nodes.Where(n => up[n]).Sum(n => fleet.Nodes[n].Gpus)));
            }
        }

        return new CapacityTimeline(steps);
    }

    /// <summary>The committee's table for one scenario over the plan's months.</summary>
    public static FeasibilityReport Check(Fleet fleet, PlanScenario scenario, int months, double monthSeconds, int startMonth,
        IEnumerable<(string Partition, int Gpus, DateTimeOffset Start, DateTimeOffset End)> awards)
    {
        var dedicated = awards.Select(a => new DedicatedCapacity(a.Partition, a.Gpus, Months.Of(a.Start), Math.Max(1, Months.Of(a.End.AddTicks(-1)) - Months.Of(a.Start) + 1))).ToList();
        var report = Feasibility.Check(Timeline(fleet, scenario, months, monthSeconds, startMonth), [], dedicated);
        return new FeasibilityReport(report.Rows.Where(r => r.Month >= startMonth && r.Month < startMonth + months).ToList());
    }

    /// <summary>
    /// A round's capacity awards as time-bound guarantees in a simulation: from its start month to its end, each award
    /// holds its GPUs (whole nodes of its partition, the owner using its guarantee in full) and the shared queue runs on the
    /// rest; at the end the nodes return to the shared queue. The timeline's events take nodes out as a reclaim does:
    /// shared-queue jobs on them are preempted and requeued. Nodes are chosen from the end of each partition, never two
    /// overlapping awards on one node; an award the partition cannot hold gets what is free and its months are flagged.
    /// </summary>
    /// <param name="startMonth">The calendar month of the simulation's time 0.</param>
    /// <param name="monthSeconds">Seconds of a simulated month.</param>
    public static AwardDedication Dedicate(Fleet fleet, IEnumerable<(string Partition, int Gpus, DateTimeOffset Start, DateTimeOffset End)> awards, int startMonth, double monthSeconds)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        ArgumentNullException.ThrowIfNull(awards);
        var list = awards.Where(a => a.Gpus > 0)
            .Select(a => (a.Partition, a.Gpus, From: Months.Of(a.Start), To: Months.Of(a.End.AddTicks(-1)) + 1))
            .Where(a => a.To > startMonth && a.To > a.From)
            .OrderBy(a => a.From).ThenBy(a => a.Partition, StringComparer.Ordinal).ThenByDescending(a => a.Gpus).ToList();
        var busy = new Dictionary<int, List<(int From, int To)>>();
        var events = new List<FleetEvent>();
        var dedicated = new List<DedicatedCapacity>();
        foreach (var a in list)
        {
            var part = fleet.FindPartition(a.Partition) ?? throw new SpecException("--awards", $"unknown partition '{a.Partition}' (the fleet has {string.Join(", ", fleet.Partitions.Select(p => p.Name))})");
            var from = Math.Max(a.From, startMonth);
            var chosen = new List<int>();
            var gpus = 0;
            for (var k = part.Nodes.Count - 1; k >= 0 && gpus < a.Gpus; k--)
            {
                var n = part.Nodes[k];
                var taken = busy.TryGetValue(n, out var spans) && spans.Any(s => s.From < a.To && from < s.To);
                if (!taken)
                {
                    chosen.Add(n);
                    gpus += fleet.Nodes[n].Gpus;
                }
            }

            foreach (var n in chosen)
            {
                (busy.TryGetValue(n, out var spans) ? spans : busy[n] = []).Add((from, a.To));
            }

            var names = chosen.Select(n => fleet.Nodes[n].Name).ToList();
            if (names.Count > 0)
            {
                events.Add(new FleetEvent((from - startMonth) * monthSeconds, names, NodeState.Down, $"award: {a.Gpus} GPUs on {a.Partition} from {Months.Name(a.From)}"));
                events.Add(new FleetEvent((a.To - startMonth) * monthSeconds, names, NodeState.Up, $"award ends: {a.Partition}"));
            }

            dedicated.Add(new DedicatedCapacity(a.Partition, a.Gpus, from, a.To - from));
        }

        var last = list.Count == 0 ? startMonth : list.Max(a => a.To);
        var report = Feasibility.Check(CapacityTimeline.Constant(fleet.Partitions.Select(p => (p.Name, p.TotalGpus))), [], dedicated);
        var rows = report.Rows.Where(r => r.Month >= startMonth && r.Month < last).ToList();
        return new AwardDedication(events, rows, list.Count);
    }
}

/// <summary>
/// The awards laid over a simulation: the fleet timeline's events that hold and return their nodes, and per partition and
/// month the GPUs of the fleet, what the awards dedicate and what is left for the shared queue.
/// </summary>
public sealed record AwardDedication(IReadOnlyList<FleetEvent> Events, IReadOnlyList<FeasibilityRow> Rows, int Awards)
{
    public bool Feasible => Rows.All(r => !r.Over);
}
