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
        var cmd = new Command("failover", "Takeover time after kill -9 of the leader during a submission burst (p50/p99 over trials)") { connection, trials, json };
        cmd.SetAction(async (parse, ct) =>
        {
            var result = await RunAsync(parse.GetValue(connection)!, parse.GetValue(trials), ct);
            Console.WriteLine(parse.GetValue(json) ? result.ToJsonString() : result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return result["lost"]!.GetValue<int>() == 0 && result["duplicated"]!.GetValue<int>() == 0 ? 0 : 1;
        });
        return cmd;
    }

    private sealed class Server(string dir, int port)
    {
        public string Dir { get; } = dir;
        public string Url { get; } = $"http://127.0.0.1:{port}";
        public Process? Process { get; set; }
    }

    private static async Task<JsonObject> RunAsync(string connection, int trials, CancellationToken ct)
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
        try
        {
            await StartAsync(servers[0], csb.ConnectionString, "leader", ct);
            await StartAsync(servers[1], csb.ConnectionString, "standby", ct);
            var token = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(servers[0].Dir, "demo-tokens.json"), ct))!["bob"];
            var leader = 0;
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
                await StartAsync(dead, csb.ConnectionString, "standby", ct);
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

            return new JsonObject
            {
                ["trials"] = trials,
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
                ["what"] = "kill -9 of the leader during a burst of submissions to both servers; takeover = until the standby's /healthz says leader (lease expired, taken, engine rebuilt, loop scheduling)",
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

    private static async Task StartAsync(Server s, string connection, string role, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "gpuc.dll"), "serve", "--db", "postgres", "--connection", connection, "--urls", s.Url, "--data-dir", s.Dir, "--gpus", "virtual", "--virtual-gpus", "8" })
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
