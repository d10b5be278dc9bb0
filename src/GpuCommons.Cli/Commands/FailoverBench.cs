using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc bench failover</c>: two <c>gpuc serve</c> processes on one fresh PostgreSQL database; in each trial clients
/// submit to both, the leader is killed with SIGKILL, and the time until the other says <c>leader</c> on /healthz (engine
/// rebuilt, scheduling) is taken; the killed one starts again as the standby. At the end every acknowledged submission
/// must exist exactly once.
/// </summary>
internal static class FailoverBench
{
    public static Command Create()
    {
        var connection = new Option<string>("--connection") { Description = "PostgreSQL connection string (a fresh database is created on that server and dropped)", Required = true };
        var trials = new Option<int>("--trials") { Description = "Kills of the leader", DefaultValueFactory = _ => 20 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var backend = new Option<string>("--backend") { Description = "local (each server's own processes) or slurm (the Slurm cluster this machine submits to, shared by both)", DefaultValueFactory = _ => "local" };
        var wave = new Option<int>("--wave") { Description = "Jobs submitted at once to the leader just before each kill (a wave of starts in flight)", DefaultValueFactory = _ => 16 };
        var rateSeconds = new Option<double>("--rate-seconds") { Description = "Before the trials, time durable submissions/s to the leader (fenced) and to a standby (inbox) for this long each (0: skip); the jobs stay queued, so time it with --trials 0", DefaultValueFactory = _ => 0 };
        var rateClients = new Option<int>("--rate-clients") { Description = "Concurrent clients for --rate-seconds", DefaultValueFactory = _ => 8 };
        var cmd = new Command("failover", "Takeover time after kill -9 of the leader during a submission burst and a start wave (p50/p90/p99/max over trials)")
        {
            connection, trials, json, backend, wave, rateSeconds, rateClients,
        };
        cmd.SetAction(async (parse, ct) =>
        {
            var kind = parse.GetValue(backend)!;
            if (kind is not ("local" or "slurm"))
            {
                throw new CliException($"--backend must be local or slurm, got '{kind}'", CliRunner.Usage);
            }

            if (parse.GetValue(trials) < 0 || parse.GetValue(wave) < 0 || parse.GetValue(rateSeconds) < 0 || parse.GetValue(rateClients) < 1)
            {
                throw new CliException("--trials, --wave and --rate-seconds must be ≥ 0 and --rate-clients ≥ 1", CliRunner.Usage);
            }

            var result = await RunAsync(parse.GetValue(connection)!, parse.GetValue(trials), kind, parse.GetValue(wave), parse.GetValue(rateSeconds), parse.GetValue(rateClients), ct);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString() : result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return result["lost"]!.GetValue<int>() == 0 && result["duplicated"]!.GetValue<int>() == 0 && (result["double_runs_in_slurm"]?.GetValue<int>() ?? 0) == 0 ? 0 : 1;
        });
        return cmd;
    }

    private sealed class Server(string dir, int port)
    {
        public string Dir { get; } = dir;
        public string Url { get; } = $"http://127.0.0.1:{port}";
        public Process? Process { get; set; }
    }

    private static async Task<JsonObject> RunAsync(string connection, int trials, string backend, int wave, double rateSeconds, int rateClients, CancellationToken ct)
    {
        var csb = new NpgsqlConnectionStringBuilder(connection);
        var name = "gpuc_failover_" + Guid.NewGuid().ToString("N")[..12];
        var admin = new NpgsqlConnectionStringBuilder(connection) { Database = "postgres" }.ConnectionString;
        csb.Database = name;
        var root = Path.Combine(Path.GetTempPath(), name);
        var servers = new[] { new Server(Path.Combine(root, "a"), FreePort()), new Server(Path.Combine(root, "b"), FreePort()) };
        var takeovers = new List<double>();
        var accepted = new ConcurrentDictionary<string, long>();
        var errors = 0;
        var prefix = "gpuc-fo" + Guid.NewGuid().ToString("N")[..6] + "-";
        var began = TimeProvider.System.GetUtcNow().AddMinutes(-1);
        string[] extra = backend == "slurm" ? ["--backend", "slurm", "--slurm-prefix", prefix] : [];
        var waveAcknowledged = 0;
        JsonObject? rates = null;
        try
        {
            await StartAsync(servers[0], csb.ConnectionString, "leader", extra, ct);
            await StartAsync(servers[1], csb.ConnectionString, "standby", extra, ct);
            var token = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(servers[0].Dir, "demo-tokens.json"), ct))!["bob"];
            var leader = 0;
            if (rateSeconds > 0)
            {
                rates = new JsonObject
                {
                    ["clients"] = rateClients,
                    ["seconds"] = rateSeconds,
                    ["to_leader_per_s"] = await RateAsync(servers[0].Url, token, rateClients, rateSeconds, "rate-leader", ct),
                    ["to_standby_per_s"] = await RateAsync(servers[1].Url, token, rateClients, rateSeconds, "rate-standby", ct),
                };
                Console.Error.WriteLine($"failover: durable submissions/s: {rates["to_leader_per_s"]} to the leader, {rates["to_standby_per_s"]} to the standby");
            }

            for (var t = 0; t < trials; t++)
            {
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var burst = Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
                {
                    using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                    http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    for (var i = 0; !stop.IsCancellationRequested; i++)
                    {
                        var key = $"t{t}-c{c}-{i}";
                        var to = servers[(c + i) % 2];
                        using var req = new HttpRequestMessage(HttpMethod.Post, to.Url + "/api/jobs")
                        {
                            Content = JsonContent.Create(new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "sleep", "1" } }),
                        };
                        req.Headers.Add("Idempotency-Key", key);
                        try
                        {
                            using var r = await http.SendAsync(req, stop.Token);
                            if (r.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK)
                            {
                                accepted[key] = (await r.Content.ReadFromJsonAsync<JsonElement>(stop.Token)).GetProperty("id").GetInt64();
                            }
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or OperationCanceledException)
                        {
                            Interlocked.Increment(ref errors);
                            await Task.Delay(20, CancellationToken.None);
                        }
                    }
                }, CancellationToken.None)).ToArray();

                await Task.Delay(TimeSpan.FromSeconds(1.5), ct);
                // A wave: many jobs at once to the leader, acknowledged (durable), and their starts being handed to the
                // backend when the leader dies.
                using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
                {
                    http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    var waveTasks = Enumerable.Range(0, wave).Select(async w =>
                    {
                        var key = $"t{t}-wave-{w}";
                        using var req = new HttpRequestMessage(HttpMethod.Post, servers[leader].Url + "/api/jobs")
                        {
                            Content = JsonContent.Create(new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "sleep", "2" } }),
                        };
                        req.Headers.Add("Idempotency-Key", key);
                        try
                        {
                            using var r = await http.SendAsync(req, ct);
                            if (r.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK)
                            {
                                accepted[key] = (await r.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetInt64();
                                Interlocked.Increment(ref waveAcknowledged);
                            }
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                        {
                            Interlocked.Increment(ref errors);
                        }
                    });
                    await Task.WhenAll(waveTasks);
                }

                var dead = servers[leader];
                var survivor = servers[1 - leader];
                var clock = Stopwatch.StartNew();
                dead.Process!.Kill();
                await dead.Process.WaitForExitAsync(ct);
                using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) })
                {
                    while (clock.Elapsed < TimeSpan.FromSeconds(120))
                    {
                        try
                        {
                            if ((await http.GetStringAsync(survivor.Url + "/healthz", ct)).Trim() == "leader")
                            {
                                break;
                            }
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                        {
                        }

                        await Task.Delay(20, ct);
                    }
                }

                takeovers.Add(clock.Elapsed.TotalMilliseconds);
                await stop.CancelAsync();
                await Task.WhenAll(burst);
                Console.Error.WriteLine($"failover: trial {t + 1}/{trials}: takeover {clock.Elapsed.TotalMilliseconds:0} ms");
                await StartAsync(dead, csb.ConnectionString, "standby", extra, ct);
                leader = 1 - leader;
            }

            // Every acknowledged submission exists exactly once, with the id it was given.
            var lost = 0;
            var duplicated = 0;
            await using (var conn = new NpgsqlConnection(csb.ConnectionString))
            {
                await conn.OpenAsync(ct);
                var stored = new Dictionary<string, List<long>>(StringComparer.Ordinal);
                await using (var cmd = new NpgsqlCommand("SELECT \"IdempotencyKey\", \"Id\" FROM jobs WHERE \"IdempotencyKey\" IS NOT NULL", conn))
                await using (var r = await cmd.ExecuteReaderAsync(ct))
                {
                    while (await r.ReadAsync(ct))
                    {
                        (stored.TryGetValue(r.GetString(0), out var l) ? l : stored[r.GetString(0)] = []).Add(r.GetInt64(1));
                    }
                }

                foreach (var (key, id) in accepted)
                {
                    if (!stored.TryGetValue(key, out var ids) || !ids.Contains(id))
                    {
                        lost++;
                    }
                    else if (ids.Count > 1)
                    {
                        duplicated++;
                    }
                }
            }

            JsonObject? slurm = null;
            var doubleRuns = 0;
            if (backend == "slurm")
            {
                // Every run in Slurm by name: one per (job, attempt), never two of a job at once.
                await DrainAsync(csb.ConnectionString, prefix, began, TimeSpan.FromMinutes(10), ct);
                var runs = (await SacctAsync(prefix, began, ct)).Where(r => r.Start is not null && (r.State == GpuCommons.Backends.Slurm.Parsing.SlurmJobState.Running || r.ElapsedSeconds > 0)).ToList();
                var parsed = runs.Select(r => (Ok: GpuCommons.Backends.Slurm.SlurmJobName.TryParse(prefix, r.Name, out var job, out var attempt), job, attempt, r)).Where(x => x.Ok).ToList();
                doubleRuns = parsed.GroupBy(x => (x.job, x.attempt)).Sum(g => g.Count() - 1);
                var overlapping = parsed.GroupBy(x => x.job).Count(g =>
                {
                    var o = g.OrderBy(x => x.r.Start).ToList();
                    return o.Zip(o.Skip(1)).Any(p => (p.First.r.End ?? DateTimeOffset.MaxValue) > p.Second.r.Start);
                });
                slurm = new JsonObject { ["runs"] = runs.Count, ["double_runs"] = doubleRuns, ["jobs_running_twice_at_once"] = overlapping };
                doubleRuns += overlapping;
            }

            return new JsonObject
            {
                ["trials"] = trials,
                ["backend"] = backend,
                ["wave"] = wave,
                ["wave_acknowledged"] = waveAcknowledged,
                ["lease_s"] = 5,
                ["renew_s"] = 1.5,
                ["retry_s"] = 0.5,
                ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
                ["takeover_ms"] = Stats(takeovers),
                ["takeover_samples_ms"] = new JsonArray(takeovers.Select(x => (JsonNode?)Math.Round(x)).ToArray()),
                ["submissions_acknowledged"] = accepted.Count,
                ["submission_errors_during_kills"] = errors,
                ["lost"] = lost,
                ["duplicated"] = duplicated,
                ["double_runs_in_slurm"] = backend == "slurm" ? doubleRuns : null,
                ["slurm"] = slurm,
                ["submission_rate"] = rates,
                ["what"] = "kill -9 of the leader during a burst of submissions to both servers, just after a wave of jobs to the leader; takeover = until the standby's /healthz says leader (lease expired, taken, engine rebuilt, loop scheduling)",
            };
        }
        finally
        {
            foreach (var s in servers)
            {
                if (s.Process is { HasExited: false } p)
                {
                    p.Kill();
                    await p.WaitForExitAsync(CancellationToken.None);
                }
            }

            if (backend == "slurm")
            {
                // Nothing of this run left in Slurm.
                using var cancel = Process.Start(new ProcessStartInfo("sh", ["-c", $"squeue -h -o '%i %j' | awk '$2 ~ /^{prefix}/ {{print $1}}' | xargs -r scancel"]) { UseShellExecute = false });
                cancel?.WaitForExit(30_000);
            }

            NpgsqlConnection.ClearAllPools();
            await using (var conn = new NpgsqlConnection(admin))
            {
                await conn.OpenAsync(CancellationToken.None);
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", conn);
                await drop.ExecuteNonQueryAsync(CancellationToken.None);
            }

            try
            {
                Directory.Delete(root, true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>Durable submissions/s from <paramref name="clients"/> clients to one server for <paramref name="seconds"/>.</summary>
    private static async Task<double> RateAsync(string url, string token, int clients, double seconds, string tag, CancellationToken ct)
    {
        var done = 0;
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(seconds);
        await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            for (var i = 0; clock.Elapsed < end; i++)
            {
                using var req = new HttpRequestMessage(HttpMethod.Post, url + "/api/jobs")
                {
                    Content = JsonContent.Create(new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "sleep", "1" } }),
                };
                req.Headers.Add("Idempotency-Key", $"{tag}-{c}-{i}");
                using var r = await http.SendAsync(req, ct);
                if (r.StatusCode != HttpStatusCode.Created)
                {
                    throw new CliException($"a submission to {url} answered {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync(ct)}");
                }

                Interlocked.Increment(ref done);
            }
        }, ct)));
        return Math.Round(done / clock.Elapsed.TotalSeconds, 1);
    }

    private static async Task<List<GpuCommons.Backends.Slurm.Parsing.SlurmJobRow>> SacctAsync(string prefix, DateTimeOffset since, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("sacct") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-n", "-X", "-P", "--allusers", "--format=" + GpuCommons.Backends.Slurm.Parsing.SlurmOutputParser.SacctFormat, "--starttime=" + since.LocalDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture), "--endtime=now" })
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var text = await p.StandardOutput.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        return GpuCommons.Backends.Slurm.Parsing.SlurmOutputParser.ParseSacct(text, prefix).Rows.Where(r => r.Name.StartsWith(prefix, StringComparison.Ordinal)).ToList();
    }

    /// <summary>Waits until no job is pending or running in the database and none of ours is unfinished in Slurm.</summary>
    private static async Task DrainAsync(string connection, string prefix, DateTimeOffset since, TimeSpan within, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < within)
        {
            await using var conn = new NpgsqlConnection(connection);
            await conn.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM jobs WHERE \"State\" IN ('pending', 'running')", conn);
            var open = (long)(await cmd.ExecuteScalarAsync(ct))!;
            if (open == 0 && (await SacctAsync(prefix, since, ct)).All(r => r.End is not null))
            {
                return;
            }

            await Task.Delay(1000, ct);
        }

        Console.Error.WriteLine($"failover: the queue did not drain in {within.TotalSeconds} s; the Slurm check covers what ran");
    }

    private static async Task StartAsync(Server s, string connection, string role, string[] extra, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "gpuc.dll"), "serve", "--db", "postgres", "--connection", connection, "--urls", s.Url, "--data-dir", s.Dir, "--gpus", "virtual", "--virtual-gpus", "8" }.Concat(extra))
        {
            psi.ArgumentList.Add(a);
        }

        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        s.Process = p;
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(1) };
        var until = Stopwatch.StartNew();
        while (until.Elapsed < TimeSpan.FromSeconds(120))
        {
            if (p.HasExited)
            {
                throw new CliException($"gpuc serve ({s.Url}) exited with {p.ExitCode} while starting");
            }

            try
            {
                if ((await http.GetStringAsync(s.Url + "/healthz", ct)).Trim() == role)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(50, ct);
        }

        throw new CliException($"gpuc serve ({s.Url}) did not say {role} in 120 s");
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static JsonObject Stats(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        double P(double p) => sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];
        return new JsonObject
        {
            ["n"] = sorted.Count,
            ["p50"] = Math.Round(P(50)),
            ["p90"] = Math.Round(P(90)),
            ["p99"] = Math.Round(P(99)),
            ["max"] = Math.Round(sorted.Count == 0 ? 0 : sorted[^1]),
            ["mean"] = Math.Round(sorted.Count == 0 ? 0 : sorted.Average()),
        };
    }
}
