using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Backends.Local;
using GpuCommons.Server;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc bench arrays</c>: a job array is one record. Times <c>POST /api/jobs</c> of an N-task array over HTTP on loopback
/// (durable before the 201) against a single job; measures what the engine holds and its full cycle with the array pending
/// against one pending job (and against N separate jobs); and, in the same run, times Slurm's
/// <c>sbatch --array=0-(N-1) --hold</c> against a single held sbatch on the local Slurm, then cancels them.
/// </summary>
internal static class BenchArraysCommand
{
    public static Command Create()
    {
        var tasks = new Option<int>("--tasks") { Description = "Tasks in the array", DefaultValueFactory = _ => 10_000 };
        var samples = new Option<int>("--samples") { Description = "Submissions timed of each kind", DefaultValueFactory = _ => 50 };
        var cycles = new Option<int>("--cycles") { Description = "Full cycles timed in each state", DefaultValueFactory = _ => 21 };
        var db = new Option<string>("--db") { Description = "sqlite or postgres", DefaultValueFactory = _ => "sqlite" };
        var connection = new Option<string?>("--connection") { Description = "PostgreSQL connection string (a fresh database is created and dropped)" };
        var noSlurm = new Option<bool>("--no-sbatch") { Description = "Skip the comparison with the local Slurm's sbatch --array" };
        var json = new Option<bool>("--json") { Description = "Print one line of JSON" };
        var cmd = new Command("arrays", "A job array accepted durably in one request, and its cost to the engine, against one job and against sbatch --array")
        {
            tasks, samples, cycles, db, connection, noSlurm, json,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var r = await RunAsync(parse.GetValue(tasks), parse.GetValue(samples), parse.GetValue(cycles), parse.GetValue(db)!, parse.GetValue(connection), !parse.GetValue(noSlurm), ct);
            Console.WriteLine(JsonSerializer.Serialize(r, new JsonSerializerOptions { WriteIndented = !parse.GetValue(json) }));
            return 0;
        });
        return cmd;
    }

    private static async Task<Dictionary<string, object?>> RunAsync(int tasks, int samples, int cycles, string provider, string? connection, bool slurm, CancellationToken ct)
    {
        if (tasks < 1 || samples < 1 || cycles < 1 || provider is not ("sqlite" or "postgres") || (provider == "postgres") != (connection is not null))
        {
            throw new CliException("--tasks, --samples and --cycles ≥ 1; --db sqlite|postgres (--connection with postgres only)", CliRunner.Usage);
        }

        var dir = Path.Combine(Path.GetTempPath(), "gpuc-bench-arrays-" + Guid.NewGuid().ToString("N"));
        string? dbName = null;
        if (provider == "postgres")
        {
            var csb = new Npgsql.NpgsqlConnectionStringBuilder(connection) { Database = "gpuc_bench_" + Guid.NewGuid().ToString("N")[..12] };
            dbName = csb.Database;
            connection = csb.ConnectionString;
        }

        var result = new Dictionary<string, object?>
        {
            ["tasks"] = tasks,
            ["db"] = provider,
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
        };
        var port = BenchServerCommand.FreePort();
        var url = $"http://127.0.0.1:{port}";
        var options = new ServerOptions { DataDir = dir, Provider = provider, ConnectionString = connection, SeedDemo = true, MaxArrayTasks = Math.Max(tasks, 1_000_000) };
        var backend = new LocalBackend(new LocalBackendOptions { StateDirectory = Path.Combine(dir, "backend"), GpuMode = LocalGpuMode.Virtual, VirtualGpuCount = 8, NodeName = "bench-1", HealthCheckInterval = TimeSpan.FromHours(1), GpuUsageSampleInterval = TimeSpan.Zero });
        var app = ServerApp.Build(options, backend, b =>
        {
            b.WebHost.UseUrls(url);
            b.Logging.ClearProviders();
        });
        try
        {
            await ServerApp.InitialiseAsync(app, ct);
            await app.StartAsync(ct);
            var co = app.Services.GetRequiredService<Coordinator>();
            await co.Ready.WaitAsync(ct);
            var bob = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(dir, "demo-tokens.json"), ct))!["bob"];
            using var http = new HttpClient { BaseAddress = new Uri(url) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bob);

            // The fleet is full (one job holds all 8 GPUs), so whatever is submitted stays pending.
            await PostAsync(http, new { project = "demo", name = "filler", gpus = 8, walltime = "1h", command = new[] { "sleep", "3600" } }, ct);
            await WaitAsync(() => co.View.RunningCount == 1, ct);

            // 1. Engine cost: nothing pending, one job pending, one N-task array pending, N jobs pending.
            var engine = new Dictionary<string, object?>();
            engine["empty"] = await MeasureAsync(co, cycles);
            var single = await PostAsync(http, new { project = "demo", name = "one", gpus = 1, walltime = "1h", command = new[] { "true" } }, ct);
            engine["one_job_pending"] = await MeasureAsync(co, cycles);
            await CancelAsync(http, single, ct);
            var array = await PostAsync(http, new { project = "demo", name = "array", gpus = 1, walltime = "1h", command = new[] { "true" }, array = new { indices = $"0-{tasks - 1}" } }, ct);
            await WaitAsync(() => co.View.PendingCount >= Math.Min(tasks, options.ArrayPendingWindow), ct);
            engine["array_pending"] = await MeasureAsync(co, cycles);
            await CancelAsync(http, array, ct);
            await WaitAsync(() => co.View.PendingCount == 0, ct);
            var ids = new List<long>(tasks);
            for (var i = 0; i < tasks; i++)
            {
                ids.Add(await PostAsync(http, new { project = "demo", name = "many", gpus = 1, walltime = "1h", command = new[] { "true" } }, ct));
            }

            engine["n_jobs_pending"] = await MeasureAsync(co, cycles);
            foreach (var id in ids)
            {
                await co.CancelAsync(id, "bench");
            }

            engine["window"] = options.ArrayPendingWindow;
            result["engine"] = engine;

            // 2. Durable acceptance over HTTP: an N-task array against a single job (each answered 201 after its commit).
            var one = new List<double>();
            var arr = new List<double>();
            for (var i = 0; i < samples + 5; i++)
            {
                var sw = Stopwatch.StartNew();
                var j = await PostAsync(http, new { project = "demo", name = "one", gpus = 1, walltime = "1h", command = new[] { "true" } }, ct);
                if (i >= 5)
                {
                    one.Add(sw.Elapsed.TotalMilliseconds);
                }

                await CancelAsync(http, j, ct);
                sw.Restart();
                var a = await PostAsync(http, new { project = "demo", name = "array", gpus = 1, walltime = "1h", command = new[] { "true" }, array = new { indices = $"0-{tasks - 1}" } }, ct);
                if (i >= 5)
                {
                    arr.Add(sw.Elapsed.TotalMilliseconds);
                }

                await CancelAsync(http, a, ct);
            }

            var arrayStats = BenchServerCommand.Stats(arr);
            result["submit_ms"] = new Dictionary<string, object?>
            {
                ["single_job"] = BenchServerCommand.Stats(one),
                ["array"] = arrayStats,
                ["target_ms"] = 20,
                ["durability"] = provider == "sqlite" ? "SQLite WAL, synchronous=FULL, committed before the 201" : "PostgreSQL as configured, committed before the 201",
            };

            if (slurm)
            {
                var sbatch = await SbatchAsync(tasks, samples, ct);
                result["sbatch"] = sbatch;
                if (sbatch.TryGetValue("array_p50_ms", out var slurmP50) && slurmP50 is double s50 && s50 > 0)
                {
                    // Below 1: GpuCommons accepts the array, durably, faster than Slurm's sbatch does.
                    result["gpuc_array_over_sbatch_array_p50"] = Math.Round(Median(arr) / s50, 2);
                }
            }
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            await backend.DisposeAsync();
            if (dbName is not null)
            {
                var csb = new Npgsql.NpgsqlConnectionStringBuilder(connection) { Database = "postgres" };
                Npgsql.NpgsqlConnection.ClearAllPools();
                await using var conn = new Npgsql.NpgsqlConnection(csb.ConnectionString);
                await conn.OpenAsync(CancellationToken.None);
                await using var drop = new Npgsql.NpgsqlCommand($"DROP DATABASE IF EXISTS \"{dbName}\" WITH (FORCE)", conn);
                await drop.ExecuteNonQueryAsync(CancellationToken.None);
            }

            try
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
            }
        }

        return result;
    }

    private static async Task<Dictionary<string, object?>> MeasureAsync(Coordinator co, int cycles)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var heap = GC.GetTotalMemory(true);
        var (times, pending, running, arrays, held) = await co.MeasureFullCyclesAsync(cycles + 3);
        times = times.Skip(3).ToList();
        return new Dictionary<string, object?>
        {
            ["engine_pending_jobs"] = pending,
            ["engine_running_jobs"] = running,
            ["arrays_held_by_loop"] = arrays,
            ["jobs_held_by_loop"] = held,
            ["full_cycle_ms"] = BenchServerCommand.Stats(times),
            ["managed_heap_mib"] = Math.Round(heap / 1048576.0, 1),
        };
    }

    private static async Task<long> PostAsync(HttpClient http, object body, CancellationToken ct)
    {
        var r = await http.PostAsJsonAsync("/api/jobs", body, ct);
        if (!r.IsSuccessStatusCode)
        {
            throw new CliException($"bench: submit failed: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}", 1);
        }

        return (await r.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetInt64();
    }

    private static async Task CancelAsync(HttpClient http, long id, CancellationToken ct) =>
        (await http.PostAsync($"/api/jobs/{id}/cancel", null, ct)).EnsureSuccessStatusCode();

    private static async Task WaitAsync(Func<bool> condition, CancellationToken ct)
    {
        for (var i = 0; i < 3000 && !condition(); i++)
        {
            await Task.Delay(10, ct);
        }
    }

    /// <summary>
    /// Slurm's <c>sbatch --array=0-(N-1) --hold</c> and a single <c>sbatch --hold</c>, one after another, each cancelled
    /// after. Where the cluster's MaxArraySize refuses N tasks, the largest array it takes is timed too, and said so.
    /// </summary>
    private static async Task<Dictionary<string, object?>> SbatchAsync(int tasks, int samples, CancellationToken ct)
    {
        var name = "gpuc-bench-array-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var r = new Dictionary<string, object?>();
        try
        {
            var (config, _) = await RunAsync("scontrol", ["show", "config"], ct);
            int Setting(string key, int fallback)
            {
                var line = config.Split('\n').FirstOrDefault(l => l.StartsWith(key + " ", StringComparison.Ordinal));
                return line is null ? fallback : int.Parse(line.Split('=')[1].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }

            var max = Setting("MaxArraySize", 1001);
            var maxJobs = Setting("MaxJobCount", 10000);
            r["max_array_size"] = max;
            r["max_job_count"] = maxJobs;
            async Task<(List<double> Ms, string? Error)> Time(string[] extra, int arrayTasks)
            {
                var ms = new List<double>();
                string? error = null;
                // Every task of a held array counts against MaxJobCount, and a cancelled array keeps counting until
                // MinJobAge purges it: time only as many arrays as the cluster holds at once (one warm-up, at most 10 timed).
                var warmups = extra.Length > 0 ? 1 : 3;
                var n = extra.Length > 0 ? Math.Min(Math.Min(samples, 10), Math.Max(1, (maxJobs / Math.Max(1, arrayTasks)) - warmups - 1)) : samples;
                for (var i = 0; i < n + warmups; i++)
                {
                    var sw = Stopwatch.StartNew();
                    var (id, err) = await RunAsync("sbatch", ["--hold", "--parsable", "-J", name, "-o", "/dev/null", .. extra, "--wrap", "true"], ct);
                    if (err is not null)
                    {
                        error = err;
                        break;
                    }

                    if (i >= warmups)
                    {
                        ms.Add(sw.Elapsed.TotalMilliseconds);
                    }

                    if (extra.Length > 0)
                    {
                        // A held array counts all its tasks against MaxJobCount: cancelled before the next is timed.
                        await RunAsync("scancel", [id.Trim()], ct);
                    }
                }

                return (ms, error);
            }

            var (single, e1) = await Time([], 1);
            r["single_ms"] = e1 ?? (object)BenchServerCommand.Stats(single);
            var (full, e2) = await Time([$"--array=0-{tasks - 1}"], tasks);
            r[$"array_0-{tasks - 1}_ms"] = e2 is null ? BenchServerCommand.Stats(full) : "refused: " + e2;
            if (e2 is null && single.Count > 0 && full.Count > 0)
            {
                // Slurm's array against Slurm's single job, and GpuCommons' array against Slurm's array, p50 to p50.
                r["slurm_array_over_single_p50"] = Math.Round(Median(full) / Median(single), 2);
                r["array_p50_ms"] = Math.Round(Median(full), 2);
            }
            else if (e2 is not null && max > 1)
            {
                var (capped, e3) = await Time([$"--array=0-{max - 1}"], max);
                r[$"array_0-{max - 1}_ms"] = e3 is null ? BenchServerCommand.Stats(capped) : new { timed = BenchServerCommand.Stats(capped), then_refused = e3 };
            }
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            r["error"] = "sbatch: " + e.Message;
        }
        finally
        {
            try
            {
                await RunAsync("scancel", ["-n", name], CancellationToken.None);
            }
            catch (System.ComponentModel.Win32Exception)
            {
            }
        }

        return r;
    }

    private static double Median(List<double> xs)
    {
        var sorted = xs.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static async Task<(string Out, string? Error)> RunAsync(string file, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync(ct);
        var output = await p.StandardOutput.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        return (output, p.ExitCode == 0 ? null : (await err).Trim());
    }
}
