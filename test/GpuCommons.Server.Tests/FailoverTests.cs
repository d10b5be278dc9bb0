using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;

namespace GpuCommons.Server.Tests;

/// <summary>
/// Leader and standby as real <c>gpuc serve</c> processes on one PostgreSQL database, each with its own local backend (on a
/// center both share Slurm): roles, a kill -9 of the leader, and a leader paused past its lease that must not act.
/// </summary>
[Collection("processes")]
public sealed class FailoverTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private sealed class Pair : IAsyncDisposable
    {
        public required TestDatabase Db { get; init; }
        public required ServeProcess A { get; set; }
        public required ServeProcess B { get; set; }
        public required string RunsDir { get; init; }
        public string Runs => Path.Combine(RunsDir, "runs.txt");

        public static async Task<Pair> StartAsync()
        {
            var db = TestDatabase.Postgres();
            var runsDir = Path.Combine(Path.GetTempPath(), "gpuc-ha-runs-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(runsDir);
            await File.WriteAllTextAsync(Path.Combine(runsDir, "runs.txt"), "");
            if (!OperatingSystem.IsWindows())
            {
                // The jobs run as the demo users' own accounts when the server is root: they append to a file outside its data directory.
                File.SetUnixFileMode(runsDir, (UnixFileMode)0b111_101_101);
                File.SetUnixFileMode(Path.Combine(runsDir, "runs.txt"), (UnixFileMode)0b110_110_110);
            }

            string[] pg = ["--db", "postgres", "--connection", db.ConnectionString!];
            var a = await ServeProcess.StartAsync(db.DataDir + "-a", null, pg);
            await ServerHarness.EventuallyAsync(async () => await a.HealthAsync() == "leader", "the first server to lead", 30_000);
            var b = await ServeProcess.StartAsync(db.DataDir + "-b", null, pg);
            return new Pair { Db = db, A = a, B = b, RunsDir = runsDir };
        }

        public async ValueTask DisposeAsync()
        {
            A.Pause(stop: false);
            await A.DisposeAsync();
            await B.DisposeAsync();
            await ServerHarness.DropAsync(Db);
            foreach (var d in new[] { Db.DataDir + "-a", Db.DataDir + "-b", RunsDir })
            {
                try
                {
                    Directory.Delete(d, true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }
        }
    }

    private static async Task<long> SubmitAsync(HttpClient c, string key, object body, HttpStatusCode expected = HttpStatusCode.Created)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(body) };
        req.Headers.Add("Idempotency-Key", key);
        var r = await c.SendAsync(req);
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(expected, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64();
    }

    private static async Task<string> StateAsync(HttpClient c, long id) =>
        (await c.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}")).GetProperty("state").GetString()!;

    private static async Task<T> ScalarAsync<T>(TestDatabase db, string sql)
    {
        await using var conn = new NpgsqlConnection(db.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    [PostgresFact]
    public async Task TwoServers_OneLeads_KillMinus9_StandbyLeadsWithin10s_AndJobsSubmittedToEitherRunOnce()
    {
        await using var p = await Pair.StartAsync();
        (await p.A.HealthAsync()).ShouldBe("leader");
        (await p.B.HealthAsync()).ShouldBe("standby");
        var toA = p.A.Client("bob");
        var toB = p.B.ClientWithTokensOf(p.A, "bob");

        // A job holds all 8 GPUs of the leader's machine; the others queue behind it.
        var blocker = await SubmitAsync(toA, "blocker", new { project = "demo", gpus = 8, walltime = "5m", requeueable = false, command = new[] { "sh", "-c", "sleep 40" } });
        await ServerHarness.EventuallyAsync(async () => await StateAsync(toA, blocker) == "running", "the blocker to run", 30_000);
        var ids = new Dictionary<string, long>();
        for (var i = 0; i < 10; i++)
        {
            foreach (var (side, c) in new[] { ("a", toA), ("b", toB) })
            {
                var key = $"{side}{i}";
                ids[key] = await SubmitAsync(c, key, new { project = "demo", gpus = 1, walltime = "5m", command = new[] { "sh", "-c", $"echo {key} >> {p.Runs}" } });
            }
        }

        // The standby answers reads from the database, and a retry of a submission it took replays the same job.
        (await StateAsync(toB, ids["a3"])).ShouldBe("pending");
        using (var again = new HttpRequestMessage(HttpMethod.Post, "/api/jobs"))
        {
            again.Content = JsonContent.Create(new { project = "demo", gpus = 1, walltime = "5m", command = new[] { "sh", "-c", $"echo b4 >> {p.Runs}" } });
            again.Headers.Add("Idempotency-Key", "b4");
            var r = await toB.SendAsync(again);
            r.StatusCode.ShouldBe(HttpStatusCode.OK);
            (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64().ShouldBe(ids["b4"]);
        }

        var metrics = await (await toB.GetAsync("/metrics")).Content.ReadAsStringAsync();
        metrics.ShouldContain("gpuc_leader 0");
        metrics.ShouldContain("gpuc_leader_epoch 1");

        var clock = Stopwatch.StartNew();
        p.A.KillHard();
        await ServerHarness.EventuallyAsync(async () => await p.B.HealthAsync() == "leader", "the standby to lead", 20_000);
        var takeover = clock.Elapsed;
        takeover.ShouldBeLessThan(TimeSpan.FromSeconds(10), p.B.Output);
        output.WriteLine($"takeover after kill -9: {takeover.TotalMilliseconds:0} ms");

        // A client given both URLs gets through to the survivor.
        var cli = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var x in new[] { Path.Combine(AppContext.BaseDirectory, "gpuc.dll"), "submit", "--project", "demo", "--gpus", "1", "--time", "5m", "--", "sh", "-c", $"echo cli >> {p.Runs}" })
        {
            cli.ArgumentList.Add(x);
        }

        cli.Environment["GPUC_URL"] = p.A.Url + "," + p.B.Url;
        cli.Environment["GPUC_TOKEN"] = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(p.A.DataDir, "demo-tokens.json")))!["bob"];
        using (var proc = Process.Start(cli)!)
        {
            var output = await proc.StandardOutput.ReadToEndAsync() + await proc.StandardError.ReadToEndAsync();
            await proc.WaitForExitAsync();
            proc.ExitCode.ShouldBe(0, output);
            output.ShouldContain("Submitted job");
        }

        // The blocker's run was on the dead machine: lost, not rerun (not requeueable). Everything else runs once.
        await ServerHarness.EventuallyAsync(async () =>
        {
            var page = await toB.GetFromJsonAsync<JsonElement>("/api/jobs?state=pending,running&limit=1");
            return page.GetProperty("items").GetArrayLength() == 0;
        }, "the queue to drain on the new leader", 90_000);
        (await StateAsync(toB, blocker)).ShouldBe("failed");
        var lines = await File.ReadAllLinesAsync(p.Runs);
        lines.GroupBy(l => l).Where(g => g.Count() > 1).Select(g => g.Key).ShouldBeEmpty("a job ran twice");
        foreach (var key in ids.Keys.Append("cli"))
        {
            lines.ShouldContain(key);
        }

        (await ScalarAsync<long>(p.Db, "SELECT count(*) FROM jobs")).ShouldBe(22);
        (await ScalarAsync<long>(p.Db, "SELECT count(*) FROM jobs j WHERE j.\"State\" = 'finished' AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.\"JobId\" = j.\"Id\")")).ShouldBe(0, "a finished job was not charged");
        (await ScalarAsync<long>(p.Db, "SELECT count(*) - count(DISTINCT (\"JobId\", \"Attempt\")) FROM ledger")).ShouldBe(0);
        (await ScalarAsync<long>(p.Db, "SELECT epoch FROM leader_lease")).ShouldBe(2);
    }

    [PostgresFact]
    public async Task LeaderPausedPastItsLease_StandbyTakesOver_ResumedLeaderStepsDownWithoutActing()
    {
        await using var p = await Pair.StartAsync();
        var toA = p.A.Client("bob");
        var toB = p.B.ClientWithTokensOf(p.A, "bob");

        // The first job holds every GPU for 8 s; the second waits for them. When the paused leader wakes up, its first job
        // has ended in its backend: it would charge that end and start the second job, were it not fenced.
        var first = await SubmitAsync(toA, "first", new { project = "demo", gpus = 8, walltime = "5m", requeueable = false, command = new[] { "sh", "-c", $"echo first >> {p.Runs}; sleep 8" } });
        var second = await SubmitAsync(toA, "second", new { project = "demo", gpus = 8, walltime = "5m", command = new[] { "sh", "-c", $"echo second >> {p.Runs}" } });
        await ServerHarness.EventuallyAsync(async () => await StateAsync(toA, first) == "running", "the first job to run", 30_000);

        // "running" is recorded when the start is handed to the backend; pause the leader only once the process has begun,
        // or the pause lands on a start in flight, which the new leader rightly counts as lost and never ran.
        await ServerHarness.EventuallyAsync(async () => File.Exists(p.Runs) && (await File.ReadAllLinesAsync(p.Runs)).Contains("first"), "the first job's process to begin", 30_000);
        var ran = Stopwatch.StartNew();

        p.A.Pause(stop: true);
        await ServerHarness.EventuallyAsync(async () => await p.B.HealthAsync() == "leader", "the standby to lead", 20_000);

        // The new leader finds the first job's run lost with the old machine, charges it once, and runs the second.
        await ServerHarness.EventuallyAsync(async () => await StateAsync(toB, second) == "finished", "the second job to run on the new leader", 60_000);
        (await StateAsync(toB, first)).ShouldBe("failed");
        while (ran.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(200); // the first job's process on the old machine has ended
        }

        const string Snapshot = "SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT concat_ws(',', \"Id\", \"State\", \"Attempt\", \"StartTime\", \"EndTime\", \"BackendId\") AS x FROM jobs UNION ALL SELECT concat_ws(',', 'ledger', \"JobId\", \"Attempt\", \"GpuHours\") FROM ledger) s";
        var before = await ScalarAsync<string>(p.Db, Snapshot);
        before.ShouldContain($"ledger,{first},0");

        p.A.Pause(stop: false);
        await ServerHarness.EventuallyAsync(async () => p.A.Output.Contains("lost the lease of epoch 1", StringComparison.Ordinal), "the old leader to notice", 20_000);
        await ServerHarness.EventuallyAsync(async () => await p.A.HealthAsync() == "standby", "the old leader to come back as a standby", 60_000);

        // It did nothing: no write (jobs, charges), no start of the second job in its backend, no second run.
        (await ScalarAsync<string>(p.Db, Snapshot)).ShouldBe(before, p.A.Output);
        Directory.Exists(Path.Combine(p.A.DataDir, "backend", "jobs", second.ToString(System.Globalization.CultureInfo.InvariantCulture))).ShouldBeFalse();
        var lines = await File.ReadAllLinesAsync(p.Runs);
        lines.Count(l => l == "second").ShouldBe(1);
        lines.Count(l => l == "first").ShouldBe(1);
        (await p.B.HealthAsync()).ShouldBe("leader");
        (await ScalarAsync<long>(p.Db, "SELECT epoch FROM leader_lease")).ShouldBe(2);
        output.WriteLine("the old leader after it woke up:\n" + string.Join('\n', p.A.Output.Split('\n').Where(l => l.Contains("fence", StringComparison.Ordinal) || l.Contains("lease", StringComparison.Ordinal) || l.Contains("stepped", StringComparison.Ordinal))));
    }
}
