using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using GpuCommons.Core.Fleet;
using GpuCommons.Simulation;
using GpuCommons.Simulation.Planning;
using GpuCommons.Simulation.Reports;
using GpuCommons.Simulation.Traces;
using GpuCommons.Simulation.Workloads;
using Spectre.Console;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc simulate</c>, <c>gpuc compare</c> and <c>gpuc plan</c>: trace replay, policy comparison and capacity
/// planning with the production scheduling engine in virtual time (docs/simulation.md).
/// </summary>
internal static class SimulationCommands
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static IEnumerable<Command> Create()
    {
        yield return Simulate();
        yield return Compare();
        yield return Plan();
    }

    private sealed class WorkloadOptions
    {
        public Option<string?> Trace { get; } = new("--trace") { Description = "Trace file (.csv or .csv.gz)" };
        public Option<string> Format { get; } = new("--trace-format") { Description = "philly | gpuc-csv | sia | auto", DefaultValueFactory = _ => "auto" };
        public Option<long?> Synthetic { get; } = new("--synthetic") { Description = "Replay this many synthetic national jobs instead of a trace" };
        public Option<string> Mix { get; } = new("--mix") { Description = "Synthetic mix: national | fractional (shares of one GPU; with --fleet mixed-1200 for the packing benchmark)", DefaultValueFactory = _ => "national" };
        public Option<int> Seed { get; } = new("--seed") { Description = "Seed of synthesis and failures", DefaultValueFactory = _ => 42 };
        public Option<string> Fleet { get; } = new("--fleet") { Description = "Shipped fleet name (national, small), fleet JSON or node-list CSV (node,gpus,model[,partition,block])", DefaultValueFactory = _ => "national" };
        public Option<double?> TargetLoad { get; } = new("--target-load") { Description = "Compress the trace's submit times to this offered load (e.g. 0.9); synthesis: its load (default 0.9)" };
        public Option<string> Mapping { get; } = new("--tenant-mapping") { Description = "none (each trace tenant a project) | national (tenants mapped onto the national classes)", DefaultValueFactory = _ => "none" };
        public Option<double> WalltimeFactor { get; } = new("--walltime-factor") { Description = "Walltime of jobs whose trace gives none: factor × run time", DefaultValueFactory = _ => 1.0 };
        public Option<double> CycleInterval { get; } = new("--cycle-interval") { Description = "Virtual seconds between full scheduling cycles (0: every event)", DefaultValueFactory = _ => 60.0 };
        public Option<double?> HorizonDays { get; } = new("--horizon-days") { Description = "Stop after this many days (default: when every job has ended)" };
        public Option<double> Mtbf { get; } = new("--mtbf-hours") { Description = "Mean hours between failures of a node (0: none)", DefaultValueFactory = _ => 0.0 };
        public Option<double> Repair { get; } = new("--repair-hours") { Description = "Mean hours to repair a node", DefaultValueFactory = _ => 24.0 };
        public Option<bool> JsonOut { get; } = new("--json") { Description = "Print one JSON object" };
        public Option<bool> NoPreemption { get; } = new("--no-preemption") { Description = "Turn the engine's preemption off (what-if)" };

        public void AddTo(Command c)
        {
            foreach (var o in new Option[] { Trace, Format, Synthetic, Mix, Seed, Fleet, TargetLoad, Mapping, WalltimeFactor, CycleInterval, HorizonDays, Mtbf, Repair, JsonOut, NoPreemption })
            {
                c.Options.Add(o);
            }
        }

        public WorkloadSource Source(ParseResult p)
        {
            var trace = p.GetValue(Trace);
            var synthetic = p.GetValue(Synthetic);
            if (trace is null && synthetic is null)
            {
                throw new CliException("give a trace (--trace PATH) or a synthetic workload (--synthetic JOBS)", CliRunner.Usage);
            }

            if (trace is not null && synthetic is not null)
            {
                throw new CliException("--trace and --synthetic exclude each other", CliRunner.Usage);
            }

            if (synthetic is < 1)
            {
                throw new CliException("--synthetic must be at least 1", CliRunner.Usage);
            }

            if (trace is not null && !File.Exists(trace))
            {
                throw new CliException($"no such trace file: {trace}", CliRunner.NotFound);
            }

            return new WorkloadSource
            {
                TracePath = trace,
                Format = TraceReader.ParseFormat(p.GetValue(Format)!),
                SyntheticJobs = synthetic,
                Mix = p.GetValue(Mix)!.ToLowerInvariant(),
                Seed = p.GetValue(Seed),
                TargetLoad = p.GetValue(TargetLoad),
                Mapping = TenantMapping.Parse(p.GetValue(Mapping)!),
            };
        }

        public SimulationOptions Options(ParseResult p, string policy, TextWriter? schedule = null, TextWriter? series = null, Action<SimulationProgress>? progress = null,
            IReadOnlyList<FleetEvent>? timeline = null)
        {
            var factor = p.GetValue(WalltimeFactor);
            var interval = p.GetValue(CycleInterval);
            var horizon = p.GetValue(HorizonDays);
            if (!(factor >= 1))
            {
                throw new CliException("--walltime-factor must be at least 1", CliRunner.Usage);
            }

            if (!(interval >= 0))
            {
                throw new CliException("--cycle-interval must be zero or more", CliRunner.Usage);
            }

            if (horizon is <= 0 || p.GetValue(Mtbf) < 0 || !(p.GetValue(Repair) > 0))
            {
                throw new CliException("--horizon-days and --repair-hours must be positive, --mtbf-hours zero or more", CliRunner.Usage);
            }

            var scheduler = Policies.Create(policy);
            scheduler.Preemption = !p.GetValue(NoPreemption);
            return new SimulationOptions
            {
                Scheduler = scheduler,
                PolicyName = policy,
                WalltimeFactor = factor,
                CycleIntervalSeconds = interval,
                HorizonSeconds = horizon * 86400,
                NodeMtbfHours = p.GetValue(Mtbf),
                RepairHours = p.GetValue(Repair),
                Seed = p.GetValue(Seed),
                ScheduleOut = schedule,
                TimeSeriesOut = series,
                Progress = progress,
                Timeline = timeline ?? [],
            };
        }
    }

    private static Command Simulate()
    {
        var w = new WorkloadOptions();
        var policy = new Option<string>("--policy") { Description = $"Scheduling policy: {string.Join(", ", Policies.Names)}", DefaultValueFactory = _ => "multifactor" };
        var scheduleOut = new Option<string?>("--schedule-out") { Description = "Write the schedule CSV (one row per run segment) here" };
        var jobsOut = new Option<string?>("--jobs-out") { Description = "Write the jobs as replayed, in the GpuCommons job CSV, here" };
        var seriesOut = new Option<string?>("--timeseries-out") { Description = "Write the time-series CSV here" };
        var report = new Option<string?>("--report") { Description = "Write a self-contained HTML report with plots here" };
        var awards = new Option<string?>("--awards")
        {
            Description = "A round's awards (JSON of GET /api/awards): each capacity award holds its GPUs from its start month to its end, and the workload runs as the shared queue on the rest",
        };
        var start = new Option<string?>("--start") { Description = "With --awards: the calendar month of the simulation's start, yyyy-MM (default: the first award's start)" };
        var cmd = new Command("simulate", "Replay a trace or a synthetic national workload against a fleet with the production scheduler");
        w.AddTo(cmd);
        cmd.Options.Add(awards);
        cmd.Options.Add(start);
        cmd.Options.Add(policy);
        cmd.Options.Add(scheduleOut);
        cmd.Options.Add(jobsOut);
        cmd.Options.Add(seriesOut);
        cmd.Options.Add(report);
        cmd.SetAction(p =>
        {
            var json = p.GetValue(w.JsonOut);
            var total = System.Diagnostics.Stopwatch.StartNew();
            var name = p.GetValue(policy)!.ToLowerInvariant();
            Policies.Create(name);
            var fleet = LoadFleet(p.GetValue(w.Fleet)!);
            var workload = w.Source(p).Build(fleet);
            using var jobsWriter = Open(p.GetValue(jobsOut));
            if (jobsWriter is not null)
            {
                workload = Tee(workload, new JobCsvWriter(jobsWriter));
            }

            (AwardDedication Dedication, int Start)? dedication = p.GetValue(awards) is { } awardsPath ? DedicateAwards(fleet, awardsPath, p.GetValue(start), new SimulationOptions().MonthSeconds) : null;
            using var scheduleWriter = Open(p.GetValue(scheduleOut));
            using var seriesWriter = Open(p.GetValue(seriesOut));
            var result = RunWithProgress(fleet, workload, progress => w.Options(p, name, scheduleWriter, seriesWriter, progress, dedication?.Dedication.Events), json, $"simulate {name}");
            jobsWriter?.Flush();
            if (p.GetValue(report) is { } path)
            {
                File.WriteAllText(path, HtmlReport.Render([result], $"GpuCommons simulation: {workload.Name} on {fleet.Name}"));
            }

            if (json)
            {
                var summary = result.ToJson();
                summary["total_wall_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 3);
                if (dedication is { } d)
                {
                    foreach (var (k, v) in AwardsJson(d.Dedication, d.Start, result))
                    {
                        summary[k] = v;
                    }
                }

                Console.WriteLine(JsonSerializer.Serialize(summary, Json));
            }
            else
            {
                PrintSummary(result);
                if (dedication is { } d)
                {
                    PrintAwards(d.Dedication, d.Start, result);
                }
            }

            return 0;
        });
        return cmd;
    }

    /// <summary>Reads <c>--awards</c> and lays the capacity awards over the simulation from <c>--start</c> (or the first award's month).</summary>
    private static (GpuCommons.Simulation.Planning.AwardDedication Dedication, int Start) DedicateAwards(GpuCommons.Core.Fleet.Fleet fleet, string path, string? start, double monthSeconds)
    {
        var awards = GpuCommons.Simulation.Planning.DedicatedAwards.Read(File.Exists(path) ? File.ReadAllText(path) : throw new CliException($"--awards: {path} does not exist", CliRunner.Usage), "--awards");
        int first;
        if (start is not null)
        {
            if (!GpuCommons.Core.Rounds.Months.TryParse(start, out first))
            {
                throw new CliException("--start: must be a month, yyyy-MM", CliRunner.Usage);
            }
        }
        else
        {
            first = awards.Count > 0 ? awards.Min(a => GpuCommons.Core.Rounds.Months.Of(a.Start)) : GpuCommons.Core.Rounds.Months.Of(TimeProvider.System.GetUtcNow());
        }

        return (GpuCommons.Simulation.Planning.DedicatedAwards.Dedicate(fleet, awards, first, monthSeconds), first);
    }

    /// <summary>
    /// The keys <c>gpuc simulate --awards --json</c> adds to the summary: the awards, per partition and month what they
    /// dedicate and what is left for the shared queue, and per month what the shared queue (the workload) got.
    /// </summary>
    private static Dictionary<string, object?> AwardsJson(GpuCommons.Simulation.Planning.AwardDedication d, int start, SimulationResult result) => new()
    {
        ["awards"] = d.Awards,
        ["awards_start"] = GpuCommons.Core.Rounds.Months.Name(start),
        ["awards_feasible"] = d.Feasible,
        ["dedicated"] = d.Rows.Select(r => new Dictionary<string, object?>
        {
            ["partition"] = r.Partition, ["month"] = GpuCommons.Core.Rounds.Months.Name(r.Month), ["capacity"] = r.Capacity,
            ["dedicated"] = r.Added, ["shared_queue"] = r.SharedQueue, ["over"] = r.Over,
        }).ToList(),
        ["shared_queue_months"] = result.Months.Select(m => new Dictionary<string, object?>
        {
            ["month"] = GpuCommons.Core.Rounds.Months.Name(start + m.Month),
            ["shared_queue_gpus"] = SharedQueueGpus(d, start + m.Month, result.Gpus),
            ["demand_gpu_hours"] = Math.Round(m.DemandGpuHours.Sum(), 1),
            ["allocated_gpu_hours"] = Math.Round(m.AllocatedGpuHours.Sum(), 1),
            ["unserved_gpu_hours"] = Math.Round(m.UnservedGpuHours.Sum(), 1),
        }).ToList(),
    };

    /// <summary>GPUs the shared queue has in a month: the fleet's less what the awards dedicate that month.</summary>
    private static int SharedQueueGpus(GpuCommons.Simulation.Planning.AwardDedication d, int month, int fleetGpus) =>
        fleetGpus - d.Rows.Where(r => r.Month == month).Sum(r => Math.Min(r.Added, r.Capacity));

    private static void PrintAwards(GpuCommons.Simulation.Planning.AwardDedication d, int start, SimulationResult result)
    {
        var t = new Table().Title($"{d.Awards} capacity awards from {GpuCommons.Core.Rounds.Months.Name(start)}: what the shared queue gets")
            .AddColumns("MONTH", "SHARED-QUEUE GPUS", "DEMAND GPU-H", "ALLOCATED GPU-H", "UNSERVED GPU-H");
        foreach (var m in result.Months)
        {
            t.AddRow(GpuCommons.Core.Rounds.Months.Name(start + m.Month), SharedQueueGpus(d, start + m.Month, result.Gpus).ToString("N0", CultureInfo.InvariantCulture),
                m.DemandGpuHours.Sum().ToString("N0", CultureInfo.InvariantCulture), m.AllocatedGpuHours.Sum().ToString("N0", CultureInfo.InvariantCulture),
                m.UnservedGpuHours.Sum().ToString("N0", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(t);
        foreach (var r in d.Rows.Where(r => r.Over))
        {
            AnsiConsole.MarkupLine($"[red]{Markup.Escape(r.Partition)} in {GpuCommons.Core.Rounds.Months.Name(r.Month)}: {r.Added:N0} GPUs awarded of {r.Capacity:N0}[/]");
        }
    }

    private static Command Compare()
    {
        var w = new WorkloadOptions();
        var policies = new Option<string>("--policies") { Description = "Comma-separated policies", DefaultValueFactory = _ => string.Join(",", Policies.CompareDefault) };
        var report = new Option<string?>("--report") { Description = "Write a self-contained HTML report comparing the policies here" };
        var cmd = new Command("compare", "Run several policies on the same workload and fleet and print a table");
        w.AddTo(cmd);
        cmd.Options.Add(policies);
        cmd.Options.Add(report);
        cmd.SetAction(p =>
        {
            var json = p.GetValue(w.JsonOut);
            var names = p.GetValue(policies)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList();
            if (names.Count == 0)
            {
                throw new CliException("--policies is empty", CliRunner.Usage);
            }

            foreach (var n in names)
            {
                Policies.Create(n);
            }

            var fleet = LoadFleet(p.GetValue(w.Fleet)!);
            var source = w.Source(p);
            var results = new List<SimulationResult>();
            foreach (var n in names)
            {
                var workload = source.Build(fleet);
                results.Add(RunWithProgress(fleet, workload, progress => w.Options(p, n, progress: progress), json, $"compare {n}"));
            }

            if (p.GetValue(report) is { } path)
            {
                File.WriteAllText(path, HtmlReport.Render(results, $"GpuCommons policy comparison on {fleet.Name}"));
            }

            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
                {
                    ["fleet"] = fleet.Name,
                    ["policies"] = results.Select(r => r.ToJson()).ToList(),
                }, Json));
                return 0;
            }

            var table = new Table().Title("policy comparison (ratio = average JCT / its lower bound)");
            foreach (var h in new[] { "policy", "jobs", "avg JCT", "ratio", "mean wait", "p95 wait", "p99 wait", "slowdown", "FTF max", "allocation", "preempt", "wall s" })
            {
                table.AddColumn(h == "policy" ? new TableColumn(h) : new TableColumn(h).RightAligned());
            }

            foreach (var r in results)
            {
                table.AddRow(
                    Markup.Escape(r.Policy), N(r.Jobs), Dur(r.All.Jct.Mean), r.AvgJctRatio.ToString("0.00", CultureInfo.InvariantCulture),
                    Dur(r.All.Wait.Mean), Dur(r.All.Wait.Quantile(0.95)), Dur(r.All.Wait.Quantile(0.99)),
                    r.All.Slowdown.Mean.ToString("0.00", CultureInfo.InvariantCulture), (r.All.FinishTimeFairness.Count == 0 ? 0 : r.All.FinishTimeFairness.Max).ToString("0.0", CultureInfo.InvariantCulture),
                    r.GpuAllocation.ToString("P1", CultureInfo.InvariantCulture), N(r.All.Preemptions), r.WallSeconds.ToString("0.0", CultureInfo.InvariantCulture));
            }

            AnsiConsole.Write(table);
            if (results.Count > 0)
            {
                AnsiConsole.MarkupLine($"[grey]lower bounds: average JCT {Dur(results[0].AvgJctLowerBound)}, makespan {Dur(results[0].MakespanLowerBound)}; offered load {results[0].OfferedLoad:0.000}[/]");
            }

            return 0;
        });
        return cmd;
    }

    private static Command Plan()
    {
        var fleetOpt = new Option<string>("--fleet") { Description = "Shipped fleet name, fleet JSON or node-list CSV", DefaultValueFactory = _ => "national" };
        var scenarios = new Option<string>("--scenarios") { Description = $"Comma-separated scenarios: {string.Join(", ", CapacityPlanner.ScenarioNames)}", DefaultValueFactory = _ => "on-time,delay-6mo,half" };
        var arriving = new Option<string?>("--arriving") { Description = "Comma-separated partitions that are still to arrive (default: national B200 pools, or the largest partition)" };
        var arrivalMonth = new Option<double>("--arrival-month") { Description = "Month the arriving partitions come into service on time", DefaultValueFactory = _ => 1.0 };
        var months = new Option<int>("--months") { Description = "Months to simulate", DefaultValueFactory = _ => 12 };
        var load = new Option<double>("--load") { Description = "Offered load of month 0's demand on the whole (on-time) fleet", DefaultValueFactory = _ => 0.6 };
        var growth = new Option<double>("--growth") { Description = "Monthly demand growth (0.05 = 5% a month)", DefaultValueFactory = _ => 0.05 };
        var policy = new Option<string>("--policy") { Description = "Scheduling policy", DefaultValueFactory = _ => "multifactor" };
        var seed = new Option<int>("--seed") { Description = "Seed of the synthetic demand", DefaultValueFactory = _ => 42 };
        var cycle = new Option<double>("--cycle-interval") { Description = "Virtual seconds between full cycles", DefaultValueFactory = _ => 300.0 };
        var report = new Option<string?>("--report") { Description = "Write an HTML report of the scenarios here" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var parallel = new Option<int>("--parallel") { Description = "Scenarios simulated at once (0: one per processor); the results do not depend on it", DefaultValueFactory = _ => 0 };
        var awards = new Option<string?>("--awards") { Description = "A round's awards (JSON of GET /api/awards): per scenario, partition and month, the capacity they dedicate and what is left for the shared queue" };
        var start = new Option<string?>("--start") { Description = "Calendar month of the plan's month 1, yyyy-MM (default: the first award's start)" };
        var cmd = new Command("plan", "Capacity planning: compare fleet timelines (on time, delayed, half the GPUs) against growing national demand")
        {
            fleetOpt, scenarios, arriving, arrivalMonth, months, load, growth, policy, seed, cycle, report, json, parallel, awards, start,
        };
        cmd.SetAction(p =>
        {
            var quiet = p.GetValue(json);
            if (p.GetValue(months) is < 1 or > 120 || !(p.GetValue(load) > 0) || p.GetValue(growth) <= -1 || p.GetValue(parallel) < 0)
            {
                throw new CliException("--months must be 1–120, --load positive, --growth above -1, --parallel 0 or more", CliRunner.Usage);
            }

            Policies.Create(p.GetValue(policy)!);
            var plan = new CapacityPlanner
            {
                Fleet = FleetSpecLoader.Load(p.GetValue(fleetOpt)!),
                Months = p.GetValue(months),
                Load = p.GetValue(load),
                MonthlyGrowth = p.GetValue(growth),
                Policy = p.GetValue(policy)!.ToLowerInvariant(),
                Seed = p.GetValue(seed),
                ArrivalMonth = p.GetValue(arrivalMonth),
                CycleIntervalSeconds = p.GetValue(cycle),
                Arriving = p.GetValue(arriving)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            };
            var names = p.GetValue(scenarios)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
            if (p.GetValue(awards) is { } awardsPath)
            {
                return PlanAwards(plan, names, awardsPath, p.GetValue(start), quiet);
            }

            var results = RunPlan(plan, names, p.GetValue(parallel), quiet);

            if (p.GetValue(report) is { } path)
            {
                File.WriteAllText(path, HtmlReport.RenderPlan(results, plan));
            }

            if (quiet)
            {
                Console.WriteLine(JsonSerializer.Serialize(CapacityPlanner.ToJson(plan, results), Json));
                return 0;
            }

            PrintPlan(plan, results);
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// <c>gpuc plan --awards</c>: a round's capacity awards on each scenario's fleet timeline: per partition and month, the
    /// GPUs in service, what the awards dedicate, and what is left for the shared queue; over-promised months are flagged.
    /// </summary>
    private static int PlanAwards(CapacityPlanner plan, IReadOnlyList<string> names, string path, string? start, bool json)
    {
        var awards = GpuCommons.Simulation.Planning.DedicatedAwards.Read(File.Exists(path) ? File.ReadAllText(path) : throw new CliException($"--awards: {path} does not exist", CliRunner.Usage), "--awards");
        int first;
        if (start is not null)
        {
            if (!GpuCommons.Core.Rounds.Months.TryParse(start, out first))
            {
                throw new CliException("--start: must be a month, yyyy-MM", CliRunner.Usage);
            }
        }
        else
        {
            first = awards.Count > 0 ? awards.Min(a => GpuCommons.Core.Rounds.Months.Of(a.Start)) : GpuCommons.Core.Rounds.Months.Of(TimeProvider.System.GetUtcNow());
        }

        var output = new List<Dictionary<string, object?>>();
        foreach (var name in names)
        {
            var scenario = plan.Scenario(name);
            var report = GpuCommons.Simulation.Planning.DedicatedAwards.Check(plan.Fleet, scenario, plan.Months, plan.MonthSeconds, first, awards);
            output.Add(new Dictionary<string, object?>
            {
                ["name"] = scenario.Name,
                ["description"] = scenario.Description,
                ["feasible"] = report.Feasible,
                ["months"] = report.Rows.Select(r => new Dictionary<string, object?>
                {
                    ["partition"] = r.Partition, ["month"] = GpuCommons.Core.Rounds.Months.Name(r.Month), ["capacity"] = r.Capacity,
                    ["dedicated"] = r.Added, ["shared_queue"] = r.SharedQueue, ["over"] = r.Over,
                }).ToList(),
            });
            if (!json)
            {
                var t = new Table().Title($"{Markup.Escape(scenario.Name)}: {Markup.Escape(scenario.Description)}").AddColumns("PARTITION", "MONTH", "IN SERVICE", "DEDICATED", "SHARED QUEUE");
                foreach (var r in report.Rows.Where(r => r.Added > 0 || r.Capacity > 0))
                {
                    t.AddRow(Markup.Escape(r.Partition), GpuCommons.Core.Rounds.Months.Name(r.Month), r.Capacity.ToString("N0", CultureInfo.InvariantCulture), r.Added.ToString("N0", CultureInfo.InvariantCulture),
                        r.Over ? $"[red]{r.SharedQueue:N0} over[/]" : r.SharedQueue.ToString("N0", CultureInfo.InvariantCulture));
                }

                AnsiConsole.Write(t);
            }
        }

        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?> { ["fleet"] = plan.Fleet.Name, ["awards"] = awards.Count, ["start"] = GpuCommons.Core.Rounds.Months.Name(first), ["scenarios"] = output }, Json));
        }

        return 0;
    }

    /// <summary>A shipped fleet, a fleet file, or <c>mixed-N</c>: N nodes of 1, 2, 4 and 8 GPUs (the packing benchmark's fleet).</summary>
    private static Fleet LoadFleet(string name)
    {
        if (name.StartsWith("mixed-", StringComparison.OrdinalIgnoreCase) && !File.Exists(name)
            && int.TryParse(name.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out var nodes) && nodes is > 0 and <= 100_000)
        {
            return FractionalPacking.MixedFleet(nodes);
        }

        return FleetSpecLoader.Load(name);
    }

    /// <summary>Runs the plan's scenarios (several at once), with one progress bar each on a terminal.</summary>
    private static IReadOnlyList<PlanResult> RunPlan(CapacityPlanner plan, IReadOnlyList<string> names, int parallel, bool quiet)
    {
        if (quiet || Console.IsOutputRedirected)
        {
            return plan.Run(names, parallel);
        }

        IReadOnlyList<PlanResult>? results = null;
        AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var tasks = names.Distinct(StringComparer.Ordinal).ToDictionary(n => n, n => ctx.AddTask(Markup.Escape($"plan {n}"), maxValue: 1000), StringComparer.Ordinal);
                results = plan.Run(names, parallel, name => tasks.TryGetValue(name, out var task)
                    ? pr =>
                    {
                        var fraction = pr.HorizonSeconds is { } h && h > 0 ? pr.VirtualSeconds / h : 0;
                        task.Value = Math.Clamp(fraction, 0, 1) * 1000;
                    }
                    : null);
                foreach (var task in tasks.Values)
                {
                    task.Value = 1000;
                }
            });
        return results!;
    }

    private static SimulationResult RunWithProgress(Fleet fleet, Workload workload, Func<Action<SimulationProgress>?, SimulationOptions> options, bool quiet, string label)
    {
        if (quiet || Console.IsOutputRedirected)
        {
            return Simulator.Run(fleet, workload, options(null));
        }

        SimulationResult? result = null;
        AnsiConsole.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(label), maxValue: 1000);
                result = Simulator.Run(fleet, workload, options(pr =>
                {
                    var fraction = pr.HorizonSeconds is { } h && h > 0 ? pr.VirtualSeconds / h
                        : pr.Expected is { } n && n > 0 ? pr.Ended / (double)n : 0;
                    task.Value = Math.Clamp(fraction, 0, 1) * 1000;
                }));
                task.Value = 1000;
            });
        return result!;
    }

    private static Workload Tee(Workload workload, JobCsvWriter writer)
    {
        static IEnumerable<TraceJob> Write(IEnumerable<TraceJob> jobs, JobCsvWriter w)
        {
            var any = false;
            foreach (var j in jobs)
            {
                any = true;
                w.Write(j);
                yield return j;
            }

            if (!any)
            {
                w.WriteAll([]);
            }
        }

        return new Workload
        {
            Name = workload.Name,
            Tenancy = workload.Tenancy,
            Jobs = Write(workload.Jobs, writer),
            ClassOfProject = workload.ClassOfProject,
            Count = workload.Count,
            SpanSeconds = workload.SpanSeconds,
            MayHavePreemptibleJobs = workload.MayHavePreemptibleJobs,
        };
    }

    private static StreamWriter? Open(string? path)
    {
        if (path is null)
        {
            return null;
        }

        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null && !Directory.Exists(dir))
        {
            throw new CliException($"no such directory: {dir}", CliRunner.NotFound);
        }

        return new StreamWriter(path, append: false, new System.Text.UTF8Encoding(false), 1 << 16) { NewLine = "\n" };
    }

    private static void PrintSummary(SimulationResult r)
    {
        var table = new Table().Title($"{Markup.Escape(r.Workload)} on {Markup.Escape(r.Fleet)} ({r.Gpus:N0} GPUs), policy {Markup.Escape(r.Policy)}")
            .AddColumn("figure").AddColumn(new TableColumn("value").RightAligned());
        table.AddRow("jobs (finished / failed / rejected / left)", $"{r.Jobs:N0} ({r.All.Finished:N0} / {r.All.Failed:N0} / {r.All.Rejected:N0} / {r.Unfinished:N0})");
        table.AddRow("average JCT (lower bound, ratio)", $"{Dur(r.All.Jct.Mean)} ({Dur(r.AvgJctLowerBound)}, {r.AvgJctRatio:0.00}×)");
        table.AddRow("wait mean / p50 / p95 / p99", $"{Dur(r.All.Wait.Mean)} / {Dur(r.All.Wait.Quantile(0.5))} / {Dur(r.All.Wait.Quantile(0.95))} / {Dur(r.All.Wait.Quantile(0.99))}");
        table.AddRow("bounded slowdown (mean)", r.All.Slowdown.Mean.ToString("0.00", CultureInfo.InvariantCulture));
        table.AddRow("finish-time fairness mean / max", $"{r.All.FinishTimeFairness.Mean:0.00} / {(r.All.FinishTimeFairness.Count == 0 ? 0 : r.All.FinishTimeFairness.Max):0.00}");
        table.AddRow("makespan (lower bound)", $"{Dur(r.MakespanSeconds)} ({Dur(r.MakespanLowerBound)})");
        table.AddRow("offered load / GPU allocation / utilization", $"{r.OfferedLoad:0.000} / {r.GpuAllocation:P1} / {r.GpuUtilization:P1}");
        table.AddRow("stranded GPUs (average)", r.StrandedGpusAvg.ToString("0.0", CultureInfo.InvariantCulture));
        table.AddRow("preemptions / lost GPU-hours", $"{r.All.Preemptions:N0} / {r.All.LostGpuHours:N0}");
        table.AddRow("wall time / peak memory", $"{r.WallSeconds:0.00} s / {r.PeakMemoryMb:N0} MB");
        AnsiConsole.Write(table);
        var byClass = new Table().Title("by tenant class").AddColumn("class");
        foreach (var h in new[] { "jobs", "avg JCT", "mean wait", "p95 wait", "p99 wait", "FTF max", "GPU-hours" })
        {
            byClass.AddColumn(new TableColumn(h).RightAligned());
        }

        foreach (var g in r.ByClass.Where(g => g.Submitted > 0).Concat(r.BySize.Where(g => g.Submitted > 0)))
        {
            byClass.AddRow(Markup.Escape(r.BySize.Contains(g) ? $"size {g.Name} GPUs" : g.Name), N(g.Submitted), Dur(g.Jct.Mean), Dur(g.Wait.Mean), Dur(g.Wait.Quantile(0.95)), Dur(g.Wait.Quantile(0.99)),
                (g.FinishTimeFairness.Count == 0 ? 0 : g.FinishTimeFairness.Max).ToString("0.0", CultureInfo.InvariantCulture), N((long)g.ChargedGpuHours));
        }

        AnsiConsole.Write(byClass);
    }

    private static void PrintPlan(CapacityPlanner plan, IReadOnlyList<PlanResult> results)
    {
        AnsiConsole.MarkupLine($"[bold]capacity plan[/]: {plan.Fleet.Name} ({plan.Fleet.TotalGpus:N0} GPUs), demand at load {plan.Load:0.00} growing {plan.MonthlyGrowth:P0}/month, {plan.Months} months, policy {Markup.Escape(plan.Policy)}");
        foreach (var (scenario, r) in results)
        {
            var table = new Table().Title($"{Markup.Escape(scenario.Name)}: {Markup.Escape(scenario.Description)}").AddColumn("month");
            var classes = r.Classes.Where((c, i) => r.ByClass[i].Submitted > 0).ToList();
            foreach (var c in classes)
            {
                table.AddColumn(new TableColumn($"{Markup.Escape(c)} wait").RightAligned());
            }

            foreach (var c in classes)
            {
                table.AddColumn(new TableColumn($"{Markup.Escape(c)} unserved GPU-h").RightAligned());
            }

            foreach (var m in r.Months.Take(plan.Months))
            {
                var row = new List<string> { (m.Month + 1).ToString(CultureInfo.InvariantCulture) };
                foreach (var c in classes)
                {
                    row.Add(Dur(m.Wait[r.Classes.ToList().IndexOf(c)].Mean));
                }

                foreach (var c in classes)
                {
                    row.Add(N((long)m.UnservedGpuHours[r.Classes.ToList().IndexOf(c)]));
                }

                table.AddRow([.. row]);
            }

            AnsiConsole.Write(table);
        }

        var summary = new Table().Title("scenarios side by side").AddColumn("scenario");
        foreach (var h in new[] { "jobs", "never started", "mean wait (started)", "p95 wait (started)", "unserved GPU-h", "allocation", "wall s" })
        {
            summary.AddColumn(new TableColumn(h).RightAligned());
        }

        foreach (var (scenario, r) in results)
        {
            summary.AddRow(Markup.Escape(scenario.Name), N(r.Jobs), N(r.Months.Take(plan.Months).Sum(m => (long)m.NeverStarted.Sum())), Dur(r.All.Wait.Mean), Dur(r.All.Wait.Quantile(0.95)),
                N((long)r.Months.Sum(m => m.UnservedGpuHours.Sum())), r.GpuAllocation.ToString("P1", CultureInfo.InvariantCulture), r.WallSeconds.ToString("0.0", CultureInfo.InvariantCulture));
        }

        AnsiConsole.Write(summary);
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>A duration in the largest sensible unit.</summary>
    internal static string Dur(double seconds) => seconds switch
    {
        < 120 => seconds.ToString("0.#", CultureInfo.InvariantCulture) + " s",
        < 7200 => (seconds / 60).ToString("0.#", CultureInfo.InvariantCulture) + " min",
        < 172800 => (seconds / 3600).ToString("0.#", CultureInfo.InvariantCulture) + " h",
        _ => (seconds / 86400).ToString("0.#", CultureInfo.InvariantCulture) + " d",
    };
}
