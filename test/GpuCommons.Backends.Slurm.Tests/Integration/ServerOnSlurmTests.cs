using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Backends.Slurm.Parsing;
using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests.Integration;

/// <summary>
/// The whole server (API, loop, ledger, reconciliation) on the real local Slurm: what operators see and what the ledger
/// says must match what Slurm itself reports.
/// </summary>
[Collection("slurm")]
public sealed class ServerOnSlurmTests
{
    private const decimal Rate = 1000m;

    public ServerOnSlurmTests() => LocalSlurm.Require();

    [SlurmFact]
    public async Task Ledger_EqualsSacct_GpusTimesElapsedTimesRate()
    {
        await using var s = await SlurmServer.StartAsync();
        var id = await s.SubmitAsync(2, ["sleep", "4"]);

        await s.WaitAsync(id, j => j.GetProperty("state").GetString() == "finished", TimeSpan.FromSeconds(120));

        var slurmId = await s.SlurmIdAsync(id);
        var acct = await FinalSacctAsync(slurmId);
        await using var db = s.Db.Create();
        var entry = await db.Ledger.SingleAsync(l => l.JobId == id);
        var job = await s.JobAsync(id);
        // Slurm's own start and end, not when the server placed the job or noticed its end.
        job.GetProperty("startTime").GetDateTimeOffset().ShouldBe(acct.Start!.Value);
        job.GetProperty("endTime").GetDateTimeOffset().ShouldBe(acct.End!.Value);
        entry.Seconds.ShouldBe((double)acct.ElapsedSeconds!.Value);
        (acct.End!.Value - acct.Start!.Value).TotalSeconds.ShouldBe((double)acct.ElapsedSeconds!.Value);
        acct.ElapsedSeconds!.Value.ShouldBeGreaterThanOrEqualTo(4);
        acct.Gpus.ShouldBe(2);
        entry.GpuHours.ShouldBe(acct.Gpus!.Value * acct.ElapsedSeconds!.Value / 3600.0, 1e-9);
        entry.Amount.ShouldBe((decimal)entry.GpuHours * Rate, 0.0001m);
    }

    [SlurmFact]
    public async Task ArrayTasks_EachAPinnedSbatch_SeeTheirTaskIdsInSlurm()
    {
        await using var s = await SlurmServer.StartAsync();
        var r = await s.Client("bob").PostAsJsonAsync("/api/jobs", new
        {
            project = "demo", gpus = 1, walltime = "5m", array = new { indices = "3,7" },
            command = new[] { "sh", "-c", "echo task=$SLURM_ARRAY_TASK_ID gpuc=$GPUC_ARRAY_TASK_ID array=$SLURM_ARRAY_JOB_ID count=$SLURM_ARRAY_TASK_COUNT" },
        });
        r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        var array = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await s.WaitAsync(array, j => j.GetProperty("state").GetString() != "pending", TimeSpan.FromSeconds(180));
        (await s.JobAsync(array)).GetProperty("state").GetString().ShouldBe("finished");
        foreach (var task in new[] { 3, 7 })
        {
            var t = await s.Client("bob").GetFromJsonAsync<JsonElement>($"/api/jobs/{array}/tasks/{task}");
            var id = t.GetProperty("id").GetInt64();
            id.ShouldNotBe(array);
            (await s.SlurmIdAsync(id)).ShouldNotBeNullOrEmpty(); // its own sbatch
            var log = await s.Client("bob").GetStringAsync($"/api/jobs/{id}/logs");
            log.ShouldContain($"task={task} gpuc={task} array={array} count=2");
        }
    }

    [SlurmFact]
    public async Task StrayJobNamedLikeOurs_IsShownToOperators_AndLeftRunning()
    {
        await using var s = await SlurmServer.StartAsync(prefix: "gpuc-");
        var (code, outp) = LocalSlurm.Run("sbatch", "--parsable", "-J", "gpuc-999999", "-H", "--gpus=1", "-o", "/dev/null", "--wrap=true");
        code.ShouldBe(0, outp);
        var slurmId = outp.Trim().Split(';')[0];
        try
        {
            // Two passes: a stray the database does not know is never cancelled, however often it is seen.
            await s.Reconciliation.RunOnceAsync(default);
            await s.Reconciliation.RunOnceAsync(default);

            var report = await s.DiscrepanciesAsync("oscar");
            report.GetProperty("reconciliation").GetProperty("reachable").GetBoolean().ShouldBeTrue();
            var stray = report.GetProperty("items").EnumerateArray()
                .Single(i => i.GetProperty("kind").GetString() == "unknown" && i.GetProperty("externalId").GetString() == slurmId);
            stray.GetProperty("jobId").GetInt64().ShouldBe(999_999);
            stray.GetProperty("seen").GetInt32().ShouldBe(2);
            stray.GetProperty("detail").GetString()!.ShouldContain("gpuc-999999");
            stray.TryGetProperty("action", out _).ShouldBeFalse();
            LocalSlurm.Run("squeue", "-h", "-j", slurmId, "-o", "%T").Output.Trim().ShouldBe("PENDING");
            (await s.Client("bob").GetAsync("/api/fleet/discrepancies")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        }
        finally
        {
            LocalSlurm.Run("scancel", slurmId);
        }

        // Gone from Slurm: the next pass resolves it.
        await s.Reconciliation.RunOnceAsync(default);
        var after = await s.DiscrepanciesAsync("oscar");
        after.GetProperty("items").EnumerateArray().ShouldNotContain(i => i.GetProperty("externalId").ToString() == slurmId);
    }

    [SlurmFact]
    public async Task UnreadableOutputAndControllerDown_AreShownToOperators_AndNoJobStateIsGuessed()
    {
        var runner = new CorruptingRunner(new ProcessSlurmCommandRunner());
        await using var s = await SlurmServer.StartAsync(runner);
        var id = await s.SubmitAsync(1, ["sleep", "40"]);
        await s.WaitAsync(id, j => j.GetProperty("state").GetString() == "running", TimeSpan.FromSeconds(60));
        await s.SlurmIdAsync(id);
        try
        {
            runner.Corrupt = true;
            await s.Reconciliation.RunOnceAsync(default);
            var report = await s.DiscrepanciesAsync("admin");
            report.GetProperty("items").EnumerateArray().ShouldContain(i => i.GetProperty("kind").GetString() == "malformed_output"
                && i.GetProperty("detail").GetString()!.Contains(CorruptingRunner.Garbage, StringComparison.Ordinal));
            report.GetProperty("reconciliation").GetProperty("problem").GetString()!.ShouldContain("could not be read");
            runner.Corrupt = false;

            await LocalSlurm.StopControllerAsync();
            try
            {
                await s.Reconciliation.RunOnceAsync(default);
                report = await s.DiscrepanciesAsync("oscar");
                report.GetProperty("reconciliation").GetProperty("reachable").GetBoolean().ShouldBeFalse();
                report.GetProperty("reconciliation").GetProperty("problem").GetString()!.ShouldContain("does not answer");
                report.GetProperty("items").EnumerateArray().ShouldContain(i => i.GetProperty("kind").GetString() == "unreachable");
                // Nothing guessed: the job is still running as far as GpuCommons knows.
                (await s.JobAsync(id)).GetProperty("state").GetString().ShouldBe("running");
            }
            finally
            {
                await LocalSlurm.StartControllerAsync();
            }

            // Back: after the back-off a pass reaches it and the outage is resolved.
            var until = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                var pass = await s.Reconciliation.RunOnceAsync(default);
                if (pass.Reachable || DateTime.UtcNow > until)
                {
                    pass.Reachable.ShouldBeTrue();
                    break;
                }

                await Task.Delay(500);
            }

            (await s.DiscrepanciesAsync("oscar")).GetProperty("items").EnumerateArray()
                .ShouldNotContain(i => i.GetProperty("kind").GetString() == "unreachable" || i.GetProperty("kind").GetString() == "malformed_output");
            (await s.JobAsync(id)).GetProperty("state").GetString().ShouldBe("running");
        }
        finally
        {
            runner.Corrupt = false;
            await s.CancelAsync(id);
        }
    }

    /// <summary>
    /// Issue 16: on a Slurm with consumable cores and memory and no default memory per CPU, the engine packs 1-GPU jobs onto
    /// one node and the backend pins them there with exactly the cores and memory placed, so every one starts at once: none
    /// waits for Resources (a job that named no memory would hold the whole node's), none becomes a not_started discrepancy.
    /// </summary>
    [SlurmFact]
    public async Task OneGpuJobsPinnedToOneNode_AllStartAtOnce_NoneWaitsForResources()
    {
        LocalSlurm.Run("scontrol", "show", "config").Output.ShouldContain("CR_CORE_MEMORY", Case.Insensitive);
        LocalSlurm.Run("scontrol", "show", "config").Output.ShouldNotContain("DefMemPerCPU", Case.Insensitive);
        await using var s = await SlurmServer.StartAsync(reconciler: new SlurmReconcilerOptions { StartTimeout = TimeSpan.FromSeconds(2) });
        var ids = new List<long>();
        for (var i = 0; i < 4; i++)
        {
            ids.Add(await s.SubmitAsync(1, ["sleep", "60"]));
        }

        try
        {
            var slurmIds = new List<string>();
            foreach (var id in ids)
            {
                slurmIds.Add(await s.SlurmIdAsync(id));
            }

            // Slurm's view: every job running, on the node the engine pinned them all to, with the cores and memory placed.
            var rows = new List<string[]>();
            for (var attempt = 0; ; attempt++)
            {
                rows = [.. LocalSlurm.Run("squeue", "-h", "-j", string.Join(',', slurmIds), "-o", "%i|%T|%r|%N|%C|%m").Output
                    .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('|'))];
                if ((rows.Count == 4 && rows.All(r => r[1] == "RUNNING")) || attempt >= 60)
                {
                    break;
                }

                await Task.Delay(500);
            }

            rows.Count.ShouldBe(4);
            var seen = string.Join("; ", rows.Select(r => string.Join(' ', r)));
            rows.Where(r => r[1] != "RUNNING").Select(r => $"{r[0]} {r[1]} reason {r[2]}").ShouldBeEmpty("every pinned job starts at once; squeue: " + seen);
            rows.Select(r => r[3]).Distinct().ShouldHaveSingleItem("the engine packs 1-GPU jobs onto one node");
            rows.Select(r => (r[4], r[5])).Distinct().ShouldBe([("4", "2000M")], "the partition's share per GPU: " + seen);
            foreach (var id in ids)
            {
                await s.WaitAsync(id, j => j.GetProperty("state").GetString() == "running", TimeSpan.FromSeconds(60));
            }

            await Task.Delay(TimeSpan.FromSeconds(3)); // past the start timeout: a job still pending would be reported now
            var pass = await s.Reconciliation.RunOnceAsync(default);
            pass.Reachable.ShouldBeTrue();
            (await s.DiscrepanciesAsync("admin")).GetProperty("items").EnumerateArray()
                .ShouldNotContain(i => i.GetProperty("kind").GetString() == DiscrepancyKinds.NotStarted);
        }
        finally
        {
            foreach (var id in ids)
            {
                await s.CancelAsync(id);
            }
        }
    }

    /// <summary>sacct's row for a job once slurmdbd has its end (it records it a moment after slurmctld reports it).</summary>
    private static async Task<SlurmJobRow> FinalSacctAsync(string slurmId)
    {
        for (var attempt = 0; ; attempt++)
        {
            var rows = SlurmOutputParser.ParseSacct(LocalSlurm.Run("sacct", "-n", "-X", "-P", "-j", slurmId, "--format=" + SlurmOutputParser.SacctFormat).Output).Rows;
            if (rows.Count == 1 && rows[0].State.IsTerminal() && rows[0].End is not null && rows[0].ElapsedSeconds is not null)
            {
                return rows[0];
            }

            attempt.ShouldBeLessThan(60, $"sacct has no final row for {slurmId}");
            await Task.Delay(500);
        }
    }

    /// <summary>The real tools, with an unreadable line added to squeue's output while <see cref="Corrupt"/> is set.</summary>
    private sealed class CorruptingRunner(ISlurmCommandRunner inner) : ISlurmCommandRunner
    {
        public const string Garbage = "this-is-not-a-squeue-line";

        public volatile bool Corrupt;

        public async Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, TimeSpan timeout, CancellationToken cancellationToken)
        {
            var r = await inner.RunAsync(tool, args, stdin, timeout, cancellationToken);
            return Corrupt && tool == "squeue" && r.ExitCode == 0 ? r with { Stdout = r.Stdout + Garbage + "\n" } : r;
        }
    }

    /// <summary>A server in memory (TestServer) whose backend is the local Slurm, with its reconciler.</summary>
    private sealed class SlurmServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly SlurmBackend _backend;
        private readonly string _dir;
        private readonly Dictionary<string, string> _tokens;

        private SlurmServer(WebApplication app, SlurmBackend backend, string dir, Dictionary<string, string> tokens)
        {
            _app = app;
            _backend = backend;
            _dir = dir;
            _tokens = tokens;
        }

        public GpucDbFactory Db => _app.Services.GetRequiredService<GpucDbFactory>();

        public ReconciliationService Reconciliation => _app.Services.GetRequiredService<ReconciliationService>();

        /// <param name="prefix">
        /// Slurm name prefix; null: one of its own. A fresh database numbers jobs from 1, and the backend adopts a job it
        /// finds in Slurm under the same name (idempotent submission), so servers that submit get their own prefix.
        /// </param>
        public static async Task<SlurmServer> StartAsync(ISlurmCommandRunner? runner = null, string? prefix = null, SlurmReconcilerOptions? reconciler = null)
        {
            var dir = Path.Combine(Path.GetTempPath(), "gpuc-slurm-server-" + Guid.NewGuid().ToString("N"));
            var options = new ServerOptions
            {
                DataDir = dir,
                PollInterval = TimeSpan.FromMilliseconds(300),
                FullCycleInterval = TimeSpan.FromSeconds(1),
                ReconcileInterval = TimeSpan.FromHours(1), // the tests run the passes
                RatePerGpuHour = Rate,
            };
            var slurmOptions = SlurmTestKit.Options();
            slurmOptions.JobNamePrefix = prefix ?? "gpucit" + Guid.NewGuid().ToString("N")[..8] + "-";
            var backend = SlurmTestKit.Backend(slurmOptions, runner);
            var app = ServerApp.Build(options, backend, b =>
            {
                b.WebHost.UseTestServer();
                b.Services.AddSingleton<IBackendReconciler>(new SlurmReconciler(backend, reconciler));
                b.Logging.ClearProviders();
            });
            await ServerApp.InitialiseAsync(app);
            await app.StartAsync();
            await app.Services.GetRequiredService<Coordinator>().Ready.WaitAsync(TimeSpan.FromSeconds(60));
            var tokens = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(dir, "demo-tokens.json")))!;
            tokens["admin"] = (await File.ReadAllTextAsync(Path.Combine(dir, "admin-token"))).Trim();
            var server = new SlurmServer(app, backend, dir, tokens);
            for (var i = 0; server.Reconciliation.Status.Passes < 1; i++)
            {
                i.ShouldBeLessThan(300, "the first reconciliation pass never ran"); // the background loop's; the tests run the others
                await Task.Delay(100);
            }

            return server;
        }

        public HttpClient Client(string user)
        {
            var c = _app.GetTestClient();
            c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", _tokens[user]);
            return c;
        }

        public async Task<long> SubmitAsync(int gpus, string[] command)
        {
            var r = await Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus, walltime = "5m", command });
            r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
            return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        }

        public async Task<JsonElement> JobAsync(long id) => await Client("admin").GetFromJsonAsync<JsonElement>($"/api/jobs/{id}");

        public async Task<JsonElement> DiscrepanciesAsync(string user)
        {
            var r = await Client(user).GetAsync("/api/fleet/discrepancies");
            r.StatusCode.ShouldBe(HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
            return await r.Content.ReadFromJsonAsync<JsonElement>();
        }

        public async Task WaitAsync(long id, Func<JsonElement, bool> until, TimeSpan timeout)
        {
            var end = DateTime.UtcNow + timeout;
            var job = await JobAsync(id);
            while (!until(job))
            {
                DateTime.UtcNow.ShouldBeLessThan(end, $"job {id}: {job}; last Slurm error: {_backend.Health.LastError}");
                await Task.Delay(300);
                job = await JobAsync(id);
            }
        }

        /// <summary>The Slurm job id the server saved for a job (written with the next batch of the loop).</summary>
        public async Task<string> SlurmIdAsync(long id)
        {
            for (var i = 0; ; i++)
            {
                await using var db = Db.Create();
                if (await db.Jobs.AsNoTracking().Where(j => j.Id == id).Select(j => j.BackendId).SingleAsync() is { } sid)
                {
                    return sid;
                }

                i.ShouldBeLessThan(100, "the Slurm id was never saved");
                await Task.Delay(100);
            }
        }

        public async Task CancelAsync(long id) => await Client("admin").DeleteAsync($"/api/jobs/{id}");

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            await _backend.DisposeAsync();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(_dir, true);
            }
            catch (IOException)
            {
            }
        }
    }
}
