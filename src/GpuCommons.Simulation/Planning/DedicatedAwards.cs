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
}
