using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using GpuCommons.Backends.Local;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc bench server</c>: the control plane's speed through real HTTP on loopback — durable submissions per second from
/// N concurrent clients, submit-to-start latency on free GPUs, and a page of <c>GET /api/jobs</c> with 100,000 jobs stored.
/// </summary>
internal static class BenchServerCommand
{
    public static Command Create()
    {
        var db = new Option<string>("--db") { Description = "sqlite or postgres", DefaultValueFactory = _ => "sqlite" };
        var connection = new Option<string?>("--connection") { Description = "PostgreSQL connection string (a fresh database is created and dropped)" };
        var clients = new Option<int>("--clients") { Description = "Concurrent submitting clients", DefaultValueFactory = _ => 8 };
        var inflight = new Option<int>("--inflight") { Description = "Requests each client keeps in flight (each on its own connection)", DefaultValueFactory = _ => 1 };
        var seconds = new Option<double>("--seconds") { Description = "Seconds of submissions", DefaultValueFactory = _ => 10 };
        var latencySamples = new Option<int>("--latency-samples") { Description = "Submit-to-start samples", DefaultValueFactory = _ => 200 };
        var pageJobs = new Option<int>("--page-jobs") { Description = "Jobs in the database for the paging test", DefaultValueFactory = _ => 100_000 };
        var pageSamples = new Option<int>("--page-samples") { Description = "Pages fetched", DefaultValueFactory = _ => 500 };
        var dataDir = new Option<string?>("--data-dir") { Description = "Where the SQLite file goes (default: a temp folder, deleted)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var sbatch = new Option<bool>("--sbatch") { Description = "Also time Slurm's sbatch from the same number of concurrent submitters, for the same time, in this run (held jobs, cancelled after)" };
        var wave = new Option<int>("--slurm-wave")
        {
            Description = "Instead: a wave of this many starts on the real local Slurm (held sbatch) while --clients submit; prints submit latency during the wave",
        };
        var concurrentStarts = new Option<int>("--max-concurrent-starts")
        {
            Description = "With --slurm-wave: the server's starts in flight at once (sbatch processes at a time)",
            DefaultValueFactory = _ => GpuCommons.Server.ServerOptions.DefaultConcurrentStarts,
        };
        var niceness = new Option<int>("--slurm-niceness")
        {
            Description = "With --slurm-wave: the niceness the Slurm commands run at, 0-19 (0: the server's own priority)",
            DefaultValueFactory = _ => new GpuCommons.Backends.Slurm.SlurmBackendOptions().CommandNiceness,
        };
        var cmd = new Command("server", "Durable HTTP submissions/s, submit-to-start p99 and GET /api/jobs p99 with many jobs")
        {
            db, connection, clients, inflight, seconds, latencySamples, pageJobs, pageSamples, dataDir, json, sbatch, wave, concurrentStarts, niceness,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(wave) > 0)
            {
                var w = await BenchServerWave.RunAsync(parse.GetValue(wave), parse.GetValue(clients), parse.GetValue(concurrentStarts), parse.GetValue(niceness), ct);
                Console.WriteLine(JsonSerializer.Serialize(w, new JsonSerializerOptions { WriteIndented = !parse.GetValue(json) }));
                return 0;
            }

            var result = await RunAsync(parse.GetValue(db)!, parse.GetValue(connection), parse.GetValue(clients), parse.GetValue(inflight), parse.GetValue(seconds),
                parse.GetValue(latencySamples), parse.GetValue(pageJobs), parse.GetValue(pageSamples), parse.GetValue(dataDir), parse.GetValue(sbatch), ct);
            Console.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = !parse.GetValue(json) }));
            return 0;
        });
        return cmd;
    }

    private static async Task<Dictionary<string, object?>> RunAsync(string provider, string? connection, int clients, int inflight, double seconds, int latencySamples,
        int pageJobs, int pageSamples, string? dataDir, bool sbatch, CancellationToken ct)
    {
        if (provider is not ("sqlite" or "postgres") || (provider == "postgres") != (connection is not null) || clients < 1 || seconds <= 0)
        {
            throw new CliException("--db sqlite|postgres (--connection with postgres only), --clients ≥ 1, --seconds > 0", CliRunner.Usage);
        }

        var temp = dataDir is null;
        var dir = dataDir ?? Path.Combine(Path.GetTempPath(), "gpuc-bench-" + Guid.NewGuid().ToString("N"));
        string? dbName = null;
        if (provider == "postgres")
        {
            var csb = new Npgsql.NpgsqlConnectionStringBuilder(connection) { Database = "gpuc_bench_" + Guid.NewGuid().ToString("N")[..12] };
            dbName = csb.Database;
            connection = csb.ConnectionString;
        }

        var result = new Dictionary<string, object?>
        {
            ["db"] = provider,
            ["clients"] = clients,
            ["inflight_per_client"] = inflight,
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
        };
        if (provider == "postgres")
        {
            result["postgres"] = await PostgresSettingsAsync(connection!, ct);
        }

        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var options = new ServerOptions { DataDir = dir, Provider = provider, ConnectionString = connection, SeedDemo = true, PollInterval = TimeSpan.FromMilliseconds(Environment.GetEnvironmentVariable("GPUC_BENCH_POLL_MS") is { } pm ? int.Parse(pm, System.Globalization.CultureInfo.InvariantCulture) : 20) };
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
            await app.Services.GetRequiredService<Coordinator>().Ready.WaitAsync(ct);
            var bob = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(dir, "demo-tokens.json"), ct))!["bob"];
            var admin = (await File.ReadAllTextAsync(Path.Combine(dir, "admin-token"), ct)).Trim();

            // 1. Submit-to-start latency with free GPUs: one job at a time, each runs `true` and ends before the next.
            using (var http = Client(url, bob))
            {
                var lat = new List<double>();
                for (var i = 0; i < latencySamples + 5; i++)
                {
                    var sw = Stopwatch.StartNew();
                    var r = await http.PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 8, walltime = "10m", command = new[] { "true" } }, ct);
                    r.EnsureSuccessStatusCode();
                    var id = (await r.Content.ReadFromJsonAsync(ContractsJson.Default.JobDto, ct))!.Id;
                    JobState state;
                    double started = -1;
                    do
                    {
                        var j = await http.GetFromJsonAsync($"/api/jobs/{id}", ContractsJson.Default.JobDto, ct);
                        state = j!.State;
                        if (started < 0 && state != JobState.Pending)
                        {
                            started = sw.Elapsed.TotalMilliseconds;
                        }

                        if (state is JobState.Pending or JobState.Running)
                        {
                            await Task.Delay(1, ct);
                        }
                    }
                    while (state is JobState.Pending or JobState.Running);
                    if (i >= 5)
                    {
                        lat.Add(started);
                    }
                }

                result["submit_to_start_ms"] = Stats(lat);

                // The same jobs seen by the scheduler: from accepting the submission to placing it (both in the same
                // group commit when GPUs are free, so this is the engine's share; the rest of the client's figure is
                // HTTP, one durable commit and the process start).
                var factory0 = app.Services.GetRequiredService<GpucDbFactory>();
                await using var db0 = factory0.Create();
                var times = db0.Jobs.Where(j => j.Id > 5 && j.StartTime != null).Select(j => new { j.SubmitTime, j.StartTime }).ToList();
                result["scheduler_decision_ms"] = Stats(times.Select(t => (t.StartTime!.Value - t.SubmitTime).TotalMilliseconds).ToList());
            }

            // 2. Durable submissions: N clients, each its own connection, for the given time.
            var streams = clients * Math.Max(1, inflight);
            var latencies = new List<double>[streams];
            var counts = new long[streams];
            var errors = 0L;
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
            var total = Stopwatch.StartNew();
            var shared = Enumerable.Range(0, clients).Select(_ => Client(url, bob, Math.Max(1, inflight))).ToArray();
            var tasks = Enumerable.Range(0, streams).Select(c => Task.Run(async () =>
            {
                latencies[c] = new List<double>(100_000);
                var http = shared[c % clients];
                var body = Encoding.UTF8.GetBytes("""{"project":"demo","gpus":1,"walltime":"1h","command":["sleep","120"]}""");
                var n = 0;
                while (!stop.IsCancellationRequested)
                {
                    using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = new ByteArrayContent(body) };
                    req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                    req.Headers.Add("Idempotency-Key", $"bench-{c}-{n++}");
                    var sw = Stopwatch.StartNew();
                    using var resp = await http.SendAsync(req, CancellationToken.None);
                    if (resp.StatusCode == HttpStatusCode.Created)
                    {
                        latencies[c].Add(sw.Elapsed.TotalMilliseconds);
                        counts[c]++;
                    }
                    else
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
            }, ct)).ToArray();
            await Task.WhenAll(tasks);
            total.Stop();
            foreach (var h in shared)
            {
                h.Dispose();
            }

            var accepted = counts.Sum();
            result["submissions"] = new Dictionary<string, object?>
            {
                ["accepted"] = accepted,
                ["errors"] = errors,
                ["seconds"] = Math.Round(total.Elapsed.TotalSeconds, 2),
                ["jobs_per_second"] = Math.Round(accepted / total.Elapsed.TotalSeconds, 0),
                ["request_ms"] = Stats(latencies.SelectMany(l => l).ToList()),
                ["durability"] = provider == "sqlite" ? "SQLite WAL, synchronous=FULL, one transaction per group of submissions, committed before any 201" : "PostgreSQL as configured (see postgres), one transaction per group, committed before any 201",
            };

            if (sbatch)
            {
                var s = await SbatchAsync(clients, seconds, ct);
                if (s.TryGetValue("jobs_per_second", out var sj) && sj is double rate && rate > 0)
                {
                    s["ratio_gpucommons_to_sbatch"] = Math.Round(accepted / total.Elapsed.TotalSeconds / rate, 1);
                }

                result["sbatch"] = s;
            }

            // 3. GET /api/jobs pages with many jobs stored.
            var factory = app.Services.GetRequiredService<GpucDbFactory>();
            var have = await CountAsync(factory, ct);
            var fillSw = Stopwatch.StartNew();
            await FillAsync(factory, pageJobs - have, ct);
            fillSw.Stop();
            var stored = await CountAsync(factory, ct);
            var maxId = stored;
            var rnd = new Random(7);
            var pages = new Dictionary<string, object?> { ["jobs_stored"] = stored, ["fill_seconds"] = Math.Round(fillSw.Elapsed.TotalSeconds, 1) };
            foreach (var (who, token, query) in new[] { ("admin", admin, ""), ("member", bob, "&project=demo"), ("member_pending", bob, "&state=pending") })
            {
                using var http = Client(url, token);
                var lat = new List<double>();
                for (var i = 0; i < pageSamples + 20; i++)
                {
                    var after = rnd.NextInt64(0, Math.Max(1, maxId - 100));
                    var sw = Stopwatch.StartNew();
                    var resp = await http.GetAsync($"/api/jobs?limit=100&after={after}{query}", ct);
                    var bytes = await resp.Content.ReadAsByteArrayAsync(ct);
                    resp.EnsureSuccessStatusCode();
                    if (i >= 20)
                    {
                        lat.Add(sw.Elapsed.TotalMilliseconds);
                    }

                    _ = bytes;
                }

                pages[who + "_page_of_100_ms"] = Stats(lat);
            }

            result["get_jobs"] = pages;
        }
        finally
        {
            // Stop the bench's own running jobs (sleep) before the server goes.
            var co = app.Services.GetRequiredService<Coordinator>();
            if (co.IsReady)
            {
                await using var db = app.Services.GetRequiredService<GpucDbFactory>().Create();
                foreach (var id in db.Jobs.Where(j => j.State == JobState.Running).Select(j => j.Id).ToList())
                {
                    await co.CancelAsync(id, "bench");
                }

                await Task.Delay(500, CancellationToken.None);
            }

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

            if (temp)
            {
                try
                {
                    Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                    Directory.Delete(dir, true);
                }
                catch (IOException)
                {
                }
            }
        }

        return result;
    }

    /// <summary>
    /// Slurm's own submission rate for comparison: the same number of concurrent submitters, each running
    /// <c>sbatch --hold --wrap true</c> one after another for the same time; the held jobs are cancelled after.
    /// </summary>
    private static async Task<Dictionary<string, object?>> SbatchAsync(int clients, double seconds, CancellationToken ct)
    {
        var name = "gpuc-bench-sbatch-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var counts = new long[clients];
        var errors = 0L;
        string? lastError = null;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var psi = new ProcessStartInfo("sbatch") { RedirectStandardOutput = true, RedirectStandardError = true };
                foreach (var a in new[] { "--hold", "--parsable", "-J", name, "-o", "/dev/null", "--wrap", "true" })
                {
                    psi.ArgumentList.Add(a);
                }

                try
                {
                    using var p = Process.Start(psi)!;
                    var err = p.StandardError.ReadToEndAsync(ct);
                    await p.StandardOutput.ReadToEndAsync(ct);
                    await p.WaitForExitAsync(ct);
                    if (p.ExitCode == 0)
                    {
                        counts[c]++;
                    }
                    else
                    {
                        Interlocked.Increment(ref errors);
                        lastError = (await err).Trim();
                    }
                }
                catch (System.ComponentModel.Win32Exception e)
                {
                    lastError = "sbatch: " + e.Message;
                    return;
                }
            }
        }, ct)));
        sw.Stop();
        try
        {
            using var cancel = Process.Start(new ProcessStartInfo("scancel", ["-n", name]) { RedirectStandardError = true })!;
            await cancel.WaitForExitAsync(ct);
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }

        var n = counts.Sum();
        return new Dictionary<string, object?>
        {
            ["submitters"] = clients,
            ["accepted"] = n,
            ["errors"] = errors,
            ["last_error"] = lastError,
            ["seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2),
            ["jobs_per_second"] = Math.Round(n / sw.Elapsed.TotalSeconds, 1),
        };
    }

    private static async Task<int> CountAsync(GpucDbFactory factory, CancellationToken ct)
    {
        await using var db = factory.Create();
        return await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.CountAsync(db.Jobs, ct);
    }

    private static async Task FillAsync(GpucDbFactory factory, int n, CancellationToken ct)
    {
        if (n <= 0)
        {
            return;
        }

        await using var db0 = factory.Create();
        var next = (await Microsoft.EntityFrameworkCore.EntityFrameworkQueryableExtensions.MaxAsync(db0.Jobs, j => (long?)j.Id, ct) ?? 0) + 1;
        var t = DateTimeOffset.UnixEpoch.AddYears(56);
        const int batch = 5000;
        for (var done = 0; done < n; done += batch)
        {
            await using var db = factory.Create();
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            for (var i = 0; i < Math.Min(batch, n - done); i++)
            {
                var id = next++;
                db.Jobs.Add(new JobRow
                {
                    Id = id,
                    Project = id % 3 == 0 ? "startup-demo" : "demo",
                    User = id % 3 == 0 ? "sam" : "bob",
                    Name = "filler",
                    Gpus = 1 + (id % 8),
                    WalltimeSeconds = 3600,
                    Command = """["true"]""",
                    State = id % 10 == 0 ? JobState.Failed : JobState.Finished,
                    SubmitTime = t,
                    StartTime = t,
                    EndTime = t.AddMinutes(5),
                    Placement = "bench-1:0",
                    AllocationId = "demo-2026",
                    ExitCode = 0,
                    Outcome = "finished",
                });
            }

            await db.SaveChangesAsync(ct);
        }
    }

    private static async Task<Dictionary<string, string>> PostgresSettingsAsync(string connection, CancellationToken ct)
    {
        var csb = new Npgsql.NpgsqlConnectionStringBuilder(connection) { Database = "postgres" };
        await using var conn = new Npgsql.NpgsqlConnection(csb.ConnectionString);
        await conn.OpenAsync(ct);
        var d = new Dictionary<string, string>();
        foreach (var s in new[] { "server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method" })
        {
            await using var cmd = new Npgsql.NpgsqlCommand($"SHOW {s}", conn);
            d[s] = (string)(await cmd.ExecuteScalarAsync(ct))!;
        }

        return d;
    }

    private static HttpClient Client(string url, string token, int connections = 1)
    {
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(10) };
        var c = new HttpClient(handler) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return c;
    }

    internal static Dictionary<string, double> Stats(List<double> values)
    {
        if (values.Count == 0)
        {
            return new Dictionary<string, double> { ["n"] = 0 };
        }

        values.Sort();
        double P(double q) => Math.Round(values[Math.Min(values.Count - 1, (int)Math.Ceiling(q * values.Count) - 1)], 2);
        return new Dictionary<string, double>
        {
            ["n"] = values.Count,
            ["p50"] = P(0.50),
            ["p90"] = P(0.90),
            ["p99"] = P(0.99),
            ["max"] = Math.Round(values[^1], 2),
            ["mean"] = Math.Round(values.Average(), 2),
        };
    }

    internal static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
