using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using GpuCommons.Backends;
using GpuCommons.Backends.Slurm;
using GpuCommons.Core.Jobs;
using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc bench server --slurm-wave N</c>: a wave of N starts on the real Slurm backend while clients submit. N one-GPU
/// jobs wait behind a reservation of the whole fleet; deleting the reservation releases them in one cycle, and every start
/// goes through <see cref="SlurmBackend.StartAsync"/> (a real, pinned <c>sbatch</c>). Meanwhile the clients keep
/// submitting through HTTP; the figure is their request latency while the wave is being started.
/// </summary>
/// <remarks>
/// The local Slurm has 4 nodes × 8 GPUs, so the engine is shown N/8 nodes of 8 GPUs that map round-robin onto the real
/// nodes, and jobs are submitted held (<c>--hold</c>, as <c>bench/GpuCommons.Slurm.Bench</c> does): slurmctld accepts
/// and queues every one, none runs, and they are cancelled after. Every sbatch is real; only the GPUs behind them are not.
/// </remarks>
internal static class BenchServerWave
{
    public static async Task<Dictionary<string, object?>> RunAsync(int wave, int clients, int concurrentStarts, int niceness, CancellationToken ct)
    {
        if (wave < 8 || clients < 1 || concurrentStarts < 1 || niceness is < 0 or > 19)
        {
            throw new CliException("--slurm-wave ≥ 8, --clients ≥ 1, --max-concurrent-starts ≥ 1 and --slurm-niceness 0 to 19", CliRunner.Usage);
        }

        var dir = Path.Combine(Path.GetTempPath(), "gpuc-bench-wave-" + Guid.NewGuid().ToString("N"));
        var prefix = "gpucwave" + Guid.NewGuid().ToString("N")[..6] + "-";
        var slurmOptions = new SlurmBackendOptions { JobNamePrefix = prefix, CommandTimeout = TimeSpan.FromSeconds(30), CommandNiceness = niceness };
        slurmOptions.ExtraSbatchArguments.Add("--hold");
        var slurm = new SlurmBackend(slurmOptions);
        var backend = new WideFleet(slurm, (wave + 7) / 8);
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var options = new ServerOptions
        {
            DataDir = dir,
            SeedDemo = true,
            Accounts = GpuCommons.Server.Security.AccountMode.SingleUser,
            PollInterval = TimeSpan.FromMilliseconds(100),
            ReconcileInterval = TimeSpan.FromHours(1),
            MaxConcurrentStarts = concurrentStarts,
        };
        var app = ServerApp.Build(options, backend, b =>
        {
            b.WebHost.UseUrls(url);
            b.Logging.ClearProviders();
        });
        var result = new Dictionary<string, object?>
        {
            ["benchmark"] = "slurm_wave",
            ["wave_starts"] = wave,
            ["clients"] = clients,
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            ["backend"] = $"slurm (real sbatch, held; engine sees {backend.NodeCount} nodes × 8 GPUs mapped onto the real nodes)",
            ["max_concurrent_starts"] = options.MaxConcurrentStarts,
            ["slurm_command_niceness"] = slurmOptions.CommandNiceness,
        };
        try
        {
            await ServerApp.InitialiseAsync(app, ct);
            await app.StartAsync(ct);
            await app.Services.GetRequiredService<Coordinator>().Ready.WaitAsync(ct);
            var bob = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(dir, "demo-tokens.json"), ct))!["bob"];
            var admin = (await File.ReadAllTextAsync(Path.Combine(dir, "admin-token"), ct)).Trim();
            using var adminHttp = Client(url, admin, 1);
            var nodes = backend.NodeNames;
            var res = await adminHttp.PostAsJsonAsync("/api/reservations", new
            {
                name = "hold-wave", nodes, start = TimeProvider.System.GetUtcNow().AddMinutes(-1), end = TimeProvider.System.GetUtcNow().AddDays(1), project = "startup-demo",
            }, ct);
            res.StatusCode.ShouldBe(HttpStatusCode.Created, await res.Content.ReadAsStringAsync(ct));

            // The wave: N one-GPU jobs queued behind the reservation.
            using (var http = Client(url, bob, 8))
            {
                var body = """{"project":"demo","gpus":1,"walltime":"1h","command":["sleep","600"]}""";
                await Task.WhenAll(Enumerable.Range(0, 8).Select(k => Task.Run(async () =>
                {
                    for (var i = k; i < wave; i += 8)
                    {
                        using var r = await http.PostAsync("/api/jobs", new StringContent(body, Encoding.UTF8, "application/json"), ct);
                        r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync(ct));
                    }
                }, ct)));
            }

            var factory = app.Services.GetRequiredService<GpucDbFactory>();
            var firstClientJob = await MaxIdAsync(factory, ct) + 1;

            // The clients: each submits one request after another, recording when each was sent and how long it took.
            var samples = new List<(double At, double Ms)>[clients];
            var errors = 0L;
            using var stop = new CancellationTokenSource();
            var clock = Stopwatch.StartNew();
            var clientHttp = Enumerable.Range(0, clients).Select(_ => Client(url, bob, 1)).ToArray();
            var tasks = Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
            {
                samples[c] = new List<(double, double)>(50_000);
                var body = Encoding.UTF8.GetBytes("""{"project":"demo","gpus":1,"walltime":"1h","command":["sleep","600"]}""");
                var n = 0;
                while (!stop.IsCancellationRequested)
                {
                    using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = new ByteArrayContent(body) };
                    req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                    req.Headers.Add("Idempotency-Key", $"wave-{c}-{n++}");
                    var at = clock.Elapsed.TotalMilliseconds;
                    using var resp = await clientHttp[c].SendAsync(req, CancellationToken.None);
                    if (resp.StatusCode == HttpStatusCode.Created)
                    {
                        samples[c].Add((at, clock.Elapsed.TotalMilliseconds - at));
                    }
                    else
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
            }, ct)).ToArray();

            // Warm-up with the clients alone, then release the wave.
            await Task.Delay(TimeSpan.FromSeconds(3), ct);
            var trigger = clock.Elapsed.TotalMilliseconds;
            var del = await adminHttp.DeleteAsync("/api/reservations/hold-wave", ct);
            del.EnsureSuccessStatusCode();
            var deleteMs = clock.Elapsed.TotalMilliseconds - trigger;

            // The wave ends when every one of its jobs has a Slurm job id on disk.
            double handedOver = -1, written = -1;
            var timeout = Stopwatch.StartNew();
            while (timeout.Elapsed < TimeSpan.FromMinutes(10))
            {
                await using var db = factory.Create();
                var running = await db.Jobs.CountAsync(j => j.Id < firstClientJob && j.State == JobState.Running, ct);
                var withHandle = await db.Jobs.CountAsync(j => j.Id < firstClientJob && j.BackendId != null, ct);
                if (written < 0 && running >= wave)
                {
                    written = clock.Elapsed.TotalMilliseconds;
                }

                if (withHandle >= wave)
                {
                    handedOver = clock.Elapsed.TotalMilliseconds;
                    break;
                }

                await Task.Delay(50, ct);
            }

            var waveEnd = handedOver > 0 ? handedOver : clock.Elapsed.TotalMilliseconds;
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
            stop.Cancel();
            await Task.WhenAll(tasks);
            foreach (var h in clientHttp)
            {
                h.Dispose();
            }

            var all = samples.SelectMany(s => s).ToList();
            var during = all.Where(s => s.At + s.Ms >= trigger && s.At <= waveEnd).Select(s => s.Ms).ToList();
            var before = all.Where(s => s.At + s.Ms < trigger).Select(s => s.Ms).ToList();
            await using (var db = factory.Create())
            {
                result["wave_jobs_running"] = await db.Jobs.CountAsync(j => j.Id < firstClientJob && j.State == JobState.Running, ct);
                result["wave_jobs_with_slurm_id"] = await db.Jobs.CountAsync(j => j.Id < firstClientJob && j.BackendId != null, ct);
                result["wave_jobs_failed"] = await db.Jobs.CountAsync(j => j.Id < firstClientJob && j.State == JobState.Failed, ct);
            }

            result["wave_complete"] = handedOver > 0;
            result["wave_written_s"] = written > 0 ? Math.Round((written - trigger) / 1000, 2) : null;
            result["wave_seconds"] = Math.Round((waveEnd - trigger) / 1000, 2);
            result["starts_per_second"] = Math.Round(wave / ((waveEnd - trigger) / 1000), 1);
            result["release_request_ms"] = Math.Round(deleteMs, 1);
            result["submit_ms_during_wave"] = Stats(during);
            result["submit_ms_before_wave"] = Stats(before);
            result["submissions"] = all.Count;
            result["errors"] = errors;
            var metrics = app.Services.GetRequiredService<ServerMetrics>();
            result["loop_pass_max_ms"] = Math.Round(metrics.LoopPassMaxSeconds * 1000, 1);
            result["schedule_max_ms"] = Math.Round(metrics.ScheduleMaxSeconds * 1000, 1);
            result["loop_phase_max_ms"] = metrics.PhaseMaxSeconds.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => Math.Round(p.Value * 1000, 1));

            result["target"] = "submit p99 ≤ 50 ms during the wave";
        }
        finally
        {
            try
            {
                await using var db = app.Services.GetRequiredService<GpucDbFactory>().Create();
                var ids = await db.Jobs.Where(j => j.BackendId != null).Select(j => j.BackendId!).ToListAsync(CancellationToken.None);
                await app.StopAsync(CancellationToken.None);
                foreach (var chunk in ids.Chunk(500))
                {
                    using var p = Process.Start(new ProcessStartInfo("scancel", chunk) { RedirectStandardError = true, RedirectStandardOutput = true })!;
                    await p.WaitForExitAsync(CancellationToken.None);
                }

                // Any the server submitted but did not record (stopped mid-wave): by name.
                using var q = Process.Start(new ProcessStartInfo("squeue", ["-h", "-o", "%i %j"]) { RedirectStandardOutput = true })!;
                var left = (await q.StandardOutput.ReadToEndAsync(CancellationToken.None)).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                    .Select(l => l.Split(' ')).Where(p => p.Length == 2 && p[1].StartsWith(prefix, StringComparison.Ordinal)).Select(p => p[0]).ToList();
                foreach (var chunk in left.Chunk(500))
                {
                    using var p = Process.Start(new ProcessStartInfo("scancel", chunk) { RedirectStandardError = true })!;
                    await p.WaitForExitAsync(CancellationToken.None);
                }
            }
            finally
            {
                await app.DisposeAsync();
                await backend.DisposeAsync();
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

    private static async Task<long> MaxIdAsync(GpucDbFactory factory, CancellationToken ct)
    {
        await using var db = factory.Create();
        return await db.Jobs.MaxAsync(j => (long?)j.Id, ct) ?? 0;
    }

    private static void ShouldBe(this HttpStatusCode actual, HttpStatusCode expected, string body)
    {
        if (actual != expected)
        {
            throw new CliException($"bench setup failed: HTTP {(int)actual}: {body}", 1);
        }
    }

    private static HttpClient Client(string url, string token, int connections)
    {
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(10) };
        var c = new HttpClient(handler) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(5) };
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return c;
    }

    private static Dictionary<string, double> Stats(List<double> values)
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

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>The real Slurm backend behind a wider fleet: node <c>w0007</c> is real node 7 mod 4, its GPUs the same indexes.</summary>
    private sealed class WideFleet(SlurmBackend inner, int nodes) : IJobBackend
    {
        private string[] _real = [];
        private string _partition = "gpu";

        public int NodeCount => nodes;

        public IReadOnlyList<string> NodeNames => Enumerable.Range(0, nodes).Select(NodeName).ToList();

        public string Name => inner.Name;

        public string RunScope => inner.RunScope;

        private static string NodeName(int i) => "w" + i.ToString("D4", CultureInfo.InvariantCulture);

        public async Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken)
        {
            var real = await inner.DiscoverAsync(cancellationToken);
            _real = real.Nodes.Select(n => n.Name).ToArray();
            _partition = real.Nodes[0].Partition;
            var model = real.Nodes[0].GpuModel;
            var list = Enumerable.Range(0, nodes).Select(i => new DiscoveredNode(NodeName(i), _partition, model,
                Enumerable.Range(0, 8).Select(g => new DiscoveredGpu(g, "", model, 0)).ToList())).ToList();
            return new DiscoveredFleet(real.Source + " (widened for the bench)", list, true, $"{nodes} nodes mapped onto {string.Join(',', _real)}");
        }

        public Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken)
        {
            var mapped = job.Nodes.Select(n => n with { Node = _real[int.Parse(n.Node.AsSpan(1), CultureInfo.InvariantCulture) % _real.Length] }).ToList();
            return inner.StartAsync(job with { Nodes = mapped }, cancellationToken);
        }

        public Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken) => inner.CancelAsync(jobId, grace, cancellationToken);

        public Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken) => inner.PollAsync(cancellationToken);

        public Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken) => inner.ReattachAsync(jobId, handle, cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
