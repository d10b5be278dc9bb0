using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace GpuCommons.Server.Tests;

/// <summary>The product as a process: jobs really run, and a kill -9 loses and duplicates nothing.</summary>
[Collection("processes")]
public sealed class ProcessTests
{
    private static async Task<JsonElement> WaitEndedAsync(HttpClient c, long id, int timeoutMs = 30_000)
    {
        JsonElement job = default;
        await ServerHarness.EventuallyAsync(async () =>
        {
            job = await c.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}");
            return job.GetProperty("state").GetString() is "finished" or "failed" or "cancelled";
        }, $"job {id} to end", timeoutMs);
        return job;
    }

    [Fact]
    public async Task Job_RunsAsARealProcess_WithItsGpus_LogsAndIsCharged()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-e2e-" + Guid.NewGuid().ToString("N"));
        var s = await ServeProcess.StartAsync(dir);
        try
        {
            var bob = s.Client("bob");
            var r = await bob.PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 2, walltime = "5m", command = new[] { "sh", "-c", "echo hello-from-job; echo gpus=$CUDA_VISIBLE_DEVICES; sleep 1" } });
            r.StatusCode.ShouldBe(HttpStatusCode.Created);
            var id = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            var job = await WaitEndedAsync(bob, id);
            job.GetProperty("state").GetString().ShouldBe("finished", s.Output);
            job.GetProperty("exitCode").GetInt32().ShouldBe(0);
            var log = await bob.GetStringAsync($"/api/jobs/{id}/logs");
            log.ShouldContain("hello-from-job");
            log.ShouldMatch(@"gpus=\d,\d");
            var usage = await bob.GetFromJsonAsync<List<GpuCommons.Contracts.UsageRow>>("/api/usage?by=member");
            var spent = usage!.Single(u => u.Key == "demo/bob").SpentGpuHours;
            spent.ShouldBeGreaterThan(2 * 0.9 / 3600);
            spent.ShouldBeLessThan(2 * 10.0 / 3600);

            var failing = (await (await bob.PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 1, walltime = "5m", command = new[] { "sh", "-c", "exit 3" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            var f = await WaitEndedAsync(bob, failing);
            f.GetProperty("state").GetString().ShouldBe("failed");
            f.GetProperty("exitCode").GetInt32().ShouldBe(3);
        }
        finally
        {
            await s.DisposeAsync();
            TryDelete(dir);
        }
    }

    [Fact]
    public async Task Preemption_StopsTheRealProcess_ChargesItsRun_RequeuesIt_AndItRunsAgain()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-e2e-" + Guid.NewGuid().ToString("N"));
        var s = await ServeProcess.StartAsync(dir);
        try
        {
            var bob = s.Client("bob");

            // A preemptible job holds every GPU; it notes the stop signal it gets.
            var victim = (await (await bob.PostAsJsonAsync("/api/jobs", new
            {
                project = "demo", gpus = 8, walltime = "10m", priority = "preemptible", checkpointable = true,
                command = new[] { "sh", "-c", "trap 'echo stopped-by-signal; exit 143' TERM USR1; echo started; sleep 300 & wait" },
            })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            await ServerHarness.EventuallyAsync(async () => (await bob.GetStringAsync($"/api/jobs/{victim}/logs")).Contains("started", StringComparison.Ordinal), "the victim runs");

            var urgent = (await (await bob.PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 8, walltime = "5m", priority = "normal", command = new[] { "sh", "-c", "echo urgent; sleep 1" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            var u = await WaitEndedAsync(bob, urgent, 60_000);
            u.GetProperty("state").GetString().ShouldBe("finished", s.Output);

            // The victim was stopped, charged for its first run, requeued with its place, and runs again.
            JsonElement v = default;
            await ServerHarness.EventuallyAsync(async () =>
            {
                v = await bob.GetFromJsonAsync<JsonElement>($"/api/jobs/{victim}");
                return v.GetProperty("state").GetString() == "running" && v.GetProperty("attempt").GetInt32() == 1;
            }, "the victim runs again as attempt 1", 30_000);
            v.GetProperty("outcome").GetString()!.ShouldStartWith("preempted");
            var admin = s.Client("admin");
            var requeued = await admin.GetFromJsonAsync<JsonElement>("/api/events?kind=job.requeued");
            var ev = requeued.GetProperty("items").EnumerateArray().Single(e => e.GetProperty("subject").GetString() == $"job/{victim}");
            ev.GetProperty("detail").GetString()!.ShouldContain("charged 0.0");
            (await bob.PostAsync($"/api/jobs/{victim}/cancel", null)).IsSuccessStatusCode.ShouldBeTrue();
        }
        finally
        {
            await s.DisposeAsync();
            TryDelete(dir);
        }
    }

    [Theory]
    [InlineData("sqlite", "Host=db.example;Username=x", 2, "connection string is not one for sqlite")]
    [InlineData("postgres", "Bogus=1", 2, "connection string is not one for postgres")]
    [InlineData("postgres", "Host=127.0.0.1;Port=1;Username=a;Password=b;Database=c;Timeout=3", 5, "error: database:")]
    public async Task Serve_WithABadDatabase_ExitsWithAMessage_NotAStackTrace(string db, string connection, int exitCode, string message)
    {
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-e2e-" + Guid.NewGuid().ToString("N"));
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "gpuc.dll"), "serve", "--urls", $"http://127.0.0.1:{ServeProcess.FreePort()}", "--data-dir", dir, "--db", db, "--connection", connection })
        {
            psi.ArgumentList.Add(a);
        }

        try
        {
            using var p = System.Diagnostics.Process.Start(psi)!;
            var stderr = p.StandardError.ReadToEndAsync();
            var stdout = p.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await p.WaitForExitAsync(timeout.Token);
            var all = await stdout + await stderr;
            p.ExitCode.ShouldBe(exitCode, all);
            all.ShouldContain(message);
            all.ShouldNotContain("   at ");
        }
        finally
        {
            TryDelete(dir);
        }
    }

    [Fact]
    public async Task KillMinus9_DuringASubmissionBurst_LosesAndDuplicatesNothing()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-kill-" + Guid.NewGuid().ToString("N"));
        // The jobs run as the demo user's own account (multi-user when root): the file they append to lies outside the
        // server's private data directory, writable by them.
        var runsDir = Path.Combine(Path.GetTempPath(), "gpuc-kill-runs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(runsDir);
        var runs = Path.Combine(runsDir, "runs.txt");
        await File.WriteAllTextAsync(runs, "");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(runsDir, (UnixFileMode)0b111_101_101);
            File.SetUnixFileMode(runs, (UnixFileMode)0b110_110_110);
        }

        var port = ServeProcess.FreePort();
        var s = await ServeProcess.StartAsync(dir, port);
        var accepted = new ConcurrentDictionary<string, long>();
        try
        {
            using var stop = new CancellationTokenSource();
            var clients = Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
            {
                using var http = s.Client("bob");
                for (var i = 0; i < 200 && !stop.IsCancellationRequested; i++)
                {
                    var key = $"c{c}-{i}";
                    using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs")
                    {
                        Content = JsonContent.Create(new { project = "demo", gpus = 1, walltime = "5m", command = new[] { "sh", "-c", $"echo {key} >> {runs}" } }),
                    };
                    req.Headers.Add("Idempotency-Key", key);
                    try
                    {
                        var r = await http.SendAsync(req, stop.Token);
                        if (r.StatusCode == HttpStatusCode.Created)
                        {
                            accepted[key] = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or OperationCanceledException or IOException)
                    {
                        return;
                    }
                }
            })).ToArray();

            await ServerHarness.EventuallyAsync(() => Task.FromResult(accepted.Count >= 150), "150 accepted submissions", 60_000);
            s.KillHard();
            await stop.CancelAsync();
            await Task.WhenAll(clients);
            accepted.Count.ShouldBeGreaterThan(0);

            s = await ServeProcess.StartAsync(dir, port);
            var admin = s.Client("admin");

            // Every 201'd job exists, exactly once, with the id it was given.
            foreach (var (key, id) in accepted)
            {
                var job = await admin.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}");
                job.GetProperty("command")[2].GetString()!.ShouldContain(key);
            }

            await using (var conn = new SqliteConnection($"Data Source={Path.Combine(dir, "gpuc.db")};Mode=ReadOnly;Pooling=False"))
            {
                await conn.OpenAsync();
                await using var cmd = conn.CreateCommand();
                cmd.CommandText = "SELECT COUNT(*) - COUNT(DISTINCT IdempotencyKey) FROM jobs";
                ((long)(await cmd.ExecuteScalarAsync())!).ShouldBe(0);
            }

            // Everything drains: every job runs once and is charged once.
            await ServerHarness.EventuallyAsync(async () =>
            {
                var page = await admin.GetFromJsonAsync<JsonElement>("/api/jobs?state=pending,running&limit=1");
                return page.GetProperty("items").GetArrayLength() == 0;
            }, "the queue to drain", 120_000);

            var lines = File.Exists(runs) ? await File.ReadAllLinesAsync(runs) : [];
            lines.GroupBy(l => l).Where(g => g.Count() > 1).Select(g => g.Key).ShouldBeEmpty("a job ran twice");
            foreach (var key in accepted.Keys)
            {
                lines.ShouldContain(key);
            }

            await using (var conn = new SqliteConnection($"Data Source={Path.Combine(dir, "gpuc.db")};Mode=ReadOnly;Pooling=False"))
            {
                await conn.OpenAsync();
                await using var cmd = conn.CreateCommand();
                cmd.CommandText = "SELECT (SELECT COUNT(*) FROM ledger) - (SELECT COUNT(DISTINCT JobId) FROM ledger), (SELECT COUNT(*) FROM jobs WHERE State='finished' AND Id NOT IN (SELECT JobId FROM ledger))";
                await using var rd = await cmd.ExecuteReaderAsync();
                await rd.ReadAsync();
                rd.GetInt64(0).ShouldBe(0, "a job was charged twice");
                rd.GetInt64(1).ShouldBe(0, "a finished job was not charged");
            }
        }
        finally
        {
            await s.DisposeAsync();
            TryDelete(dir);
            TryDelete(runsDir);
        }
    }

    private static void TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
