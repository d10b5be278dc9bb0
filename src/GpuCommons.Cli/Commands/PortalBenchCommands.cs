using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using GpuCommons.Backends;
using GpuCommons.Core.Fleet;
using GpuCommons.Portal;
using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc bench portal</c>: seeds the national demo (3,400 nodes, 500 organisations, 2,000 projects, 100,000 jobs)
/// into a fresh SQLite server with the portal, then times each main page's server render (Server-Timing) and prints JSON.
/// </summary>
internal static class PortalBenchCommands
{
    public static Command Create()
    {
        var jobs = new Option<int>("--jobs") { Description = "Jobs in the database (about 15% pending, the rest finished with ledger entries)", DefaultValueFactory = _ => 100_000 };
        var runs = new Option<int>("--runs") { Description = "Timed requests per page", DefaultValueFactory = _ => 10 };
        var fleetName = new Option<string>("--fleet") { Description = "Shipped fleet name or fleet JSON path", DefaultValueFactory = _ => "national" };
        var keep = new Option<string?>("--data-dir") { Description = "Keep the seeded server here (default: a temp folder, deleted)" };
        var cmd = new Command("portal", "Seed national demo data and time each portal page's server render (prints JSON)") { jobs, runs, fleetName, keep };
        cmd.SetAction(async (parse, ct) =>
        {
            var result = await RunAsync(parse.GetValue(jobs), parse.GetValue(runs), parse.GetValue(fleetName)!, parse.GetValue(keep), ct);
            await Console.Out.WriteLineAsync(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return cmd;
    }

    private static async Task<Dictionary<string, object>> RunAsync(int jobCount, int runs, string fleetName, string? keepDir, CancellationToken ct)
    {
        var fleet = FleetSpecLoader.Load(fleetName);
        var dir = keepDir is null ? Path.Combine(Path.GetTempPath(), "gpuc-portal-bench-" + Guid.NewGuid().ToString("N")) : Path.GetFullPath(keepDir);
        // The national demo backend runs no process: its thousands of synthetic people need no accounts.
        var options = new ServerOptions { DataDir = dir, Accounts = GpuCommons.Server.Security.AccountMode.SingleUser };
        var backend = new NationalDemo.Backend(fleet);
        var app = ServerApp.Build(options, backend, b =>
        {
            PortalSetup.AddPortal(b);
            b.WebHost.UseUrls("http://127.0.0.1:0");
            b.Logging.ClearProviders();
        });
        PortalSetup.MapPortal(app);
        try
        {
            await ServerApp.InitialiseAsync(app, ct);
            var seed = Stopwatch.StartNew();
            var seeded = await NationalDemo.SeedAsync(app.Services.GetRequiredService<GpucDbFactory>(), fleet, jobCount, ct);
            seed.Stop();
            await Console.Error.WriteLineAsync($"bench portal: seeded {seeded.Jobs:N0} jobs, {seeded.Projects:N0} projects in {seed.Elapsed.TotalSeconds:0.0} s; starting the server");
            var start = Stopwatch.StartNew();
            await app.StartAsync(ct);
            var co = app.Services.GetRequiredService<Coordinator>();
            await co.Ready.WaitAsync(TimeSpan.FromMinutes(5), ct);
            // Let the scheduler fill the fleet from the queue before measuring.
            var running = 0;
            for (var i = 0; i < 120; i++)
            {
                await Task.Delay(1000, ct);
                var now = co.View.RunningCount;
                if (now > 0 && now == running)
                {
                    break;
                }

                running = now;
            }

            var (runningJobs, pendingJobs) = (co.View.RunningCount, co.View.PendingCount);
            start.Stop();
            await Console.Error.WriteLineAsync($"bench portal: server ready in {start.Elapsed.TotalSeconds:0.0} s: {runningJobs:N0} running, {pendingJobs:N0} pending");

            var baseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
            var tokens = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(dir, "demo-tokens.json"), ct))!;
            tokens["admin"] = (await File.ReadAllTextAsync(Path.Combine(dir, "admin-token"), ct)).Trim();
            HttpClient As(string user)
            {
                var jar = new CookieContainer();
                jar.Add(new Uri(baseUrl), new Cookie(PortalSetup.CookieName, PortalSetup.SessionCookie(app.Services, tokens[user])));
                return new HttpClient(new HttpClientHandler { CookieContainer = jar, AllowAutoRedirect = false }) { BaseAddress = new Uri(baseUrl) };
            }

            var runningJob = seeded.AliceJob;
            var pages = new List<(string Name, string User, string Path)>
            {
                ("home (researcher)", "alice", "/"),
                ("home (admin, all allocations)", "admin", "/"),
                ("submit form", "alice", "/submit"),
                ("queue (researcher)", "alice", "/queue"),
                ("queue (operator, all 100k)", "oscar", "/queue"),
                ("queue (operator, deep page)", "oscar", $"/queue?after={jobCount / 2}"),
                ("job page", "alice", $"/jobs/{runningJob}"),
                ("project (PI)", "alice", "/projects/demo"),
                ("review queue", "carol", "/review"),
                ("fleet (3,400 nodes)", "oscar", "/fleet"),
                ("director report", "admin", "/director"),
                ("director CSV", "admin", "/director?handler=Csv"),
                ("home (Korean)", "alice", "/?lang=ko-KR"),
            };
            var results = new List<Dictionary<string, object>>();
            foreach (var (name, user, path) in pages)
            {
                using var client = As(user);
                var cold = await TimeAsync(client, path, ct);
                await TimeAsync(client, path, ct);
                var server = new List<double>();
                var total = new List<double>();
                long bytes = 0;
                for (var i = 0; i < runs; i++)
                {
                    var t = await TimeAsync(client, path, ct);
                    server.Add(t.ServerMs);
                    total.Add(t.TotalMs);
                    bytes = t.Bytes;
                }

                server.Sort();
                total.Sort();
                results.Add(new Dictionary<string, object>
                {
                    ["page"] = name,
                    ["path"] = path,
                    ["status"] = cold.Status,
                    ["first_ms"] = Math.Round(cold.ServerMs, 1),
                    ["server_median_ms"] = Math.Round(server[server.Count / 2], 1),
                    ["server_max_ms"] = Math.Round(server[^1], 1),
                    ["roundtrip_median_ms"] = Math.Round(total[total.Count / 2], 1),
                    ["bytes"] = bytes,
                    ["within_300ms"] = server[server.Count / 2] <= 300,
                });
            }

            return new Dictionary<string, object>
            {
                ["benchmark"] = "portal",
                ["fleet"] = new { name = fleet.Name, nodes = fleet.Nodes.Count, gpus = fleet.TotalGpus },
                ["jobs"] = seeded.Jobs,
                ["organisations"] = seeded.Organisations,
                ["projects"] = seeded.Projects,
                ["running"] = runningJobs,
                ["pending"] = pendingJobs,
                ["runs_per_page"] = runs,
                ["database"] = "sqlite",
                ["machine"] = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription },
                ["pages"] = results,
            };
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            if (keepDir is null)
            {
                try
                {
                    Directory.Delete(dir, true);
                }
                catch (IOException)
                {
                }
            }
        }
    }

    private static async Task<(int Status, double ServerMs, double TotalMs, long Bytes)> TimeAsync(HttpClient client, string path, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        using var resp = await client.GetAsync(path, ct);
        var body = await resp.Content.ReadAsByteArrayAsync(ct);
        sw.Stop();
        var server = sw.Elapsed.TotalMilliseconds;
        if (resp.Headers.TryGetValues("Server-Timing", out var values) && values.FirstOrDefault() is { } v && v.IndexOf("dur=", StringComparison.Ordinal) is var i and >= 0)
        {
            server = double.Parse(v[(i + 4)..], CultureInfo.InvariantCulture);
        }

        return ((int)resp.StatusCode, server, sw.Elapsed.TotalMilliseconds, body.LongLength);
    }
}
