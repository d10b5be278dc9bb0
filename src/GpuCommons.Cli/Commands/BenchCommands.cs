using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using GpuCommons.Core.Fleet;
using GpuCommons.Scheduling;
using GpuCommons.Scheduling.Scenarios;
using Spectre.Console;

namespace GpuCommons.Cli.Commands;

/// <summary><c>gpuc bench scheduler</c>: the scheduling engine's speed and memory at national scale.</summary>
internal static class BenchCommands
{
    public static Command Create()
    {
        var bench = new Command("bench", "Benchmarks that print their figures (JSON with --json)");
        var fleet = new Option<string>("--fleet") { Description = "Shipped fleet name or fleet JSON/CSV path", DefaultValueFactory = _ => "national" };
        var pending = new Option<int>("--pending") { Description = "Jobs pending while measuring", DefaultValueFactory = _ => 100_000 };
        var cycles = new Option<int>("--cycles") { Description = "Full cycles to time", DefaultValueFactory = _ => 21 };
        var events = new Option<int>("--events") { Description = "Incremental decisions to time (half arrivals, half completions)", DefaultValueFactory = _ => 4_000 };
        var warmup = new Option<int>("--warmup") { Description = "Full cycles run before timing (JIT tiering)", DefaultValueFactory = _ => 5 };
        var seed = new Option<int>("--seed") { Description = "Workload seed", DefaultValueFactory = _ => 42 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var scheduler = new Command("scheduler", "Time full and incremental scheduling decisions on a loaded fleet") { fleet, pending, cycles, events, warmup, seed, json };
        scheduler.SetAction(parse =>
        {
            var result = Run(parse.GetValue(fleet)!, parse.GetValue(pending), parse.GetValue(cycles), parse.GetValue(events), parse.GetValue(warmup), parse.GetValue(seed), parse.GetValue(json));
            Print(result, parse.GetValue(json));
            return 0;
        });
        bench.Subcommands.Add(scheduler);
        bench.Subcommands.Add(PortalBenchCommands.Create());
        bench.Subcommands.Add(BenchServerCommand.Create());
        bench.Subcommands.Add(BenchArraysCommand.Create());
        bench.Subcommands.Add(FgdBenchCommand.Create());
        bench.Subcommands.Add(RoundBenchCommands.Create());
        bench.Subcommands.Add(FailoverBench.Create());
        return bench;
    }

    private static Dictionary<string, object> Run(string fleetName, int pending, int cycles, int events, int warmup, int seed, bool quiet)
    {
        if (pending < 0 || cycles < 1 || events < 0 || warmup < 0)
        {
            throw new CliException("--pending, --events and --warmup must be ≥ 0 and --cycles ≥ 1", CliRunner.Usage);
        }

        var fleet = FleetSpecLoader.Load(fleetName);
        var setup = Stopwatch.StartNew();
        var loaded = LoadedEngine.Create(fleet, pending, seed);
        setup.Stop();
        var engine = loaded.Engine;
        var time = loaded.Time;
        if (!quiet)
        {
            AnsiConsole.MarkupLine($"[grey]loaded {engine.RunningCount:N0} running and {engine.PendingCount:N0} pending jobs in {setup.Elapsed.TotalSeconds:0.0} s[/]");
        }

        // Warm-up: the JIT compiles the hot paths at full optimisation after a few calls (tiered compilation).
        for (var i = 0; i < warmup; i++)
        {
            time.Advance(TimeSpan.FromSeconds(30));
            engine.Schedule(full: true);
        }

        var pendingAtCycle = engine.PendingCount;
        var runningAtCycle = engine.RunningCount;

        // Full cycles: each one re-sorts the whole queue, redoes the backfill reservation and walks every pending job.
        var cycleMs = new List<double>();
        var phaseMs = new[] { new List<double>(), new List<double>(), new List<double>() };
        var allocated = new List<long>();
        for (var i = 0; i < cycles; i++)
        {
            time.Advance(TimeSpan.FromSeconds(30));
            var before = GC.GetAllocatedBytesForCurrentThread();
            var sw = Stopwatch.StartNew();
            var timed = engine.Schedule(full: true);
            sw.Stop();
            phaseMs[0].Add(timed.Timings.TimeEvents.TotalMilliseconds);
            phaseMs[1].Add(timed.Timings.Order.TotalMilliseconds);
            phaseMs[2].Add(timed.Timings.Walk.TotalMilliseconds);
            allocated.Add(GC.GetAllocatedBytesForCurrentThread() - before);
            cycleMs.Add(sw.Elapsed.TotalMilliseconds);
        }

        // Incremental decisions: one job finishes (then schedule), or one job arrives (then schedule).
        var random = new Random(seed);
        var incremental = new List<double>();
        var running = engine.JobIds.Where(id => engine.GetJob(id)!.State == Core.Jobs.JobState.Running).ToList();
        for (var i = 0; i < events; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(200));
            if (i % 2 == 0 && running.Count > 0)
            {
                var k = random.Next(running.Count);
                var id = running[k];
                running[k] = running[^1];
                running.RemoveAt(running.Count - 1);
                var sw = Stopwatch.StartNew();
                engine.Complete(id, JobOutcome.Finished);
                var r = engine.Schedule(full: false);
                sw.Stop();
                incremental.Add(sw.Elapsed.TotalMilliseconds);
                running.AddRange(r.Started.Select(s => s.JobId));
            }
            else
            {
                var job = loaded.Scenario.NextJob(time.GetUtcNow());
                var sw = Stopwatch.StartNew();
                engine.Submit(job);
                var r = engine.Schedule(full: false);
                sw.Stop();
                incremental.Add(sw.Elapsed.TotalMilliseconds);
                running.AddRange(r.Started.Select(s => s.JobId));
            }
        }

        using var self = Process.GetCurrentProcess();
        self.Refresh();
        var stats = engine.GetStats();
        return new Dictionary<string, object>
        {
            ["fleet"] = fleet.Name,
            ["gpus"] = fleet.TotalGpus,
            ["nodes"] = fleet.Nodes.Count,
            ["partitions"] = fleet.Partitions.Count,
            ["projects"] = loaded.Scenario.Projects.Count,
            ["pending"] = pendingAtCycle,
            ["running"] = runningAtCycle,
            ["allocated_gpus"] = Math.Round(stats.AllocatedGpus, 1),
            ["cycles"] = cycles,
            ["warmup_cycles"] = warmup,
            ["cycle_ms_p50"] = Round(Percentile(cycleMs, 50)),
            ["cycle_ms_p99"] = Round(Percentile(cycleMs, 99)),
            ["cycle_ms_max"] = Round(cycleMs.Max()),
            ["cycle_time_events_ms_p50"] = Round(Percentile(phaseMs[0], 50)),
            ["cycle_order_ms_p50"] = Round(Percentile(phaseMs[1], 50)),
            ["cycle_walk_ms_p50"] = Round(Percentile(phaseMs[2], 50)),
            ["cycle_allocated_mb"] = Round(Percentile(allocated.Select(a => a / 1048576.0).ToList(), 50)),
            ["incremental_events"] = incremental.Count,
            ["incremental_ms_p50"] = Round(incremental.Count > 0 ? Percentile(incremental, 50) : 0, 4),
            ["incremental_ms_p99"] = Round(incremental.Count > 0 ? Percentile(incremental, 99) : 0, 4),
            ["incremental_ms_max"] = Round(incremental.Count > 0 ? incremental.Max() : 0, 4),
            ["setup_seconds"] = Round(setup.Elapsed.TotalSeconds),
            ["peak_memory_mb"] = Round(self.PeakWorkingSet64 / 1048576.0, 1),
        };
    }

    private static double Round(double v, int digits = 3) => Math.Round(v, digits);

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.OrderBy(v => v).ToList();
        var rank = (p / 100.0 * (sorted.Count - 1));
        var lo = (int)Math.Floor(rank);
        var hi = (int)Math.Ceiling(rank);
        return sorted[lo] + ((sorted[hi] - sorted[lo]) * (rank - lo));
    }

    private static void Print(Dictionary<string, object> result, bool json)
    {
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(result));
            return;
        }

        var table = new Table().AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
        foreach (var (k, v) in result)
        {
            table.AddRow(k, Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "");
        }

        AnsiConsole.Write(table);
    }
}
