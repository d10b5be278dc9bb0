using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Backends.Slurm;
using GpuCommons.Backends.Slurm.Parsing;
using Npgsql;

namespace GpuCommons.Server.Tests;

/// <summary>PostgreSQL and a Slurm this machine submits to (<c>sinfo</c> answers); on CI both must be there.</summary>
public sealed class SlurmPostgresFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> WhyNot = new(() =>
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("sinfo", "-h -o %P") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false })!;
            p.StandardOutput.ReadToEnd();
            return p.WaitForExit(10_000) && p.ExitCode == 0 ? null : "sinfo failed: no Slurm controller answers (bash ci/slurm/start.sh)";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "no Slurm on this machine (sinfo not found)";
        }
    });

    public SlurmPostgresFactAttribute()
    {
        var ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (new PostgresFactAttribute().Skip is { } noPg)
        {
            Skip = noPg;
        }
        else if (WhyNot.Value is { } noSlurm && !ci)
        {
            Skip = noSlurm;
        }
    }
}

/// <summary>
/// Leader and standbys as real <c>gpuc serve --db postgres --backend slurm</c> processes on loopback, sharing one database
/// and the real local Slurm. The leader is killed (SIGKILL) or paused (SIGSTOP) while clients submit and the leader hands a
/// stream of starts to Slurm; after each blow and at the end: every acknowledged job exists once, no job runs twice (at
/// once or at all, per attempt) in Slurm by its name, every attempt that ran is charged exactly once, and the ledger equals
/// sacct. The soak does the same with random blows for a bounded time (GPUC_HA_SOAK_SECONDS, default 60; seed
/// GPUC_HA_SOAK_SEED).
/// </summary>
[Collection("processes")]
public sealed class SlurmFailoverTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private sealed class Server(int index, string dataDir, int port)
    {
        public int Index { get; } = index;
        public string DataDir { get; } = dataDir;
        public int Port { get; } = port;
        public string Url => $"http://127.0.0.1:{Port}";
        public ServeProcess? Process { get; set; }
        public bool Paused { get; set; }
        public bool Up => Process is { HasExited: false } && !Paused;
    }

    private sealed class Cluster : IAsyncDisposable
    {
        private readonly ITestOutputHelperShim _log;

        private Cluster(TestDatabase db, string prefix, List<Server> servers, ITestOutputHelperShim log)
        {
            Db = db;
            Prefix = prefix;
            Servers = servers;
            _log = log;
        }

        public TestDatabase Db { get; }
        public string Prefix { get; }
        public List<Server> Servers { get; }
        public DateTimeOffset Began { get; } = DateTimeOffset.UtcNow.AddMinutes(-1);
        public string Token { get; private set; } = "";
        public ConcurrentDictionary<string, long> Acknowledged { get; } = new(StringComparer.Ordinal);
        public ConcurrentDictionary<string, bool> Accepted202 { get; } = new(StringComparer.Ordinal);
        public List<double> TakeoversMs { get; } = [];
        public ConcurrentBag<string> Unexpected { get; } = [];

        private string[] Args => ["--db", "postgres", "--connection", Db.ConnectionString!, "--backend", "slurm", "--slurm-prefix", Prefix];

        public static async Task<Cluster> StartAsync(int count, ITestOutputHelperShim log)
        {
            var db = TestDatabase.Postgres();
            // Its own Slurm job names: a fresh database numbers jobs from 1, and other tests' jobs must not be taken for ours.
            var prefix = "gpuc-ha" + Guid.NewGuid().ToString("N")[..6] + "-";
            var servers = Enumerable.Range(0, count).Select(i => new Server(i, db.DataDir + "-" + i, ServeProcess.FreePort())).ToList();
            var c = new Cluster(db, prefix, servers, log);
            servers[0].Process = await ServeProcess.StartAsync(servers[0].DataDir, servers[0].Port, c.Args);
            await ServerHarness.EventuallyAsync(async () => await servers[0].Process!.HealthAsync() == "leader", "the first server to lead", 60_000);
            c.Token = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(servers[0].DataDir, "demo-tokens.json")))!["bob"];
            foreach (var s in servers.Skip(1))
            {
                s.Process = await ServeProcess.StartAsync(s.DataDir, s.Port, c.Args);
            }

            return c;
        }

        public async Task<Server?> LeaderAsync()
        {
            foreach (var s in Servers.Where(s => s.Up))
            {
                if (await s.Process!.HealthAsync() == "leader")
                {
                    return s;
                }
            }

            return null;
        }

        /// <summary>Waits for a server other than <paramref name="old"/> to say leader; returns the time it took.</summary>
        public async Task<(Server Leader, double Ms)> WaitForNewLeaderAsync(Server old, Stopwatch since)
        {
            Server? now = null;
            await ServerHarness.EventuallyAsync(async () =>
            {
                now = await LeaderAsync();
                return now is not null && now != old;
            }, "a standby to take over", 60_000);
            var ms = since.Elapsed.TotalMilliseconds;
            TakeoversMs.Add(ms);
            return (now!, ms);
        }

        public Task RestartAsync(Server s) => RestartCoreAsync(s);

        private async Task RestartCoreAsync(Server s)
        {
            if (s.Process is not null)
            {
                Directory.CreateDirectory(LogDir);
                await File.AppendAllTextAsync(Path.Combine(LogDir, $"server-{s.Index}.log"), s.Process.Output + "\n---- restarted ----\n");
                await s.Process.DisposeAsync();
            }

            s.Paused = false;
            s.Process = await ServeProcess.StartAsync(s.DataDir, s.Port, Args);
        }

        /// <summary>Clients submitting to the servers in turn (moving on from one that does not answer) until stopped.</summary>
        public Task BurstAsync(int clients, string tag, Random seed, CancellationToken stop)
        {
            var seeds = Enumerable.Range(0, clients).Select(_ => seed.Next()).ToArray();
            return Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
            {
                var rnd = new Random(seeds[c]);
                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    var key = $"{tag}-c{c}-{i}";
                    var body = new { project = "demo", gpus = rnd.Next(3) == 0 ? 2 : 1, walltime = "10m", command = new[] { "sleep", rnd.Next(1, 4).ToString(CultureInfo.InvariantCulture) } };
                    // The same key to each server in turn until one acknowledges it (as gpuc does with several URLs).
                    for (var tries = 0; tries < 20 && !stop.IsCancellationRequested; tries++)
                    {
                        var to = Servers[rnd.Next(Servers.Count)];
                        using var req = new HttpRequestMessage(HttpMethod.Post, to.Url + "/api/jobs") { Content = JsonContent.Create(body) };
                        req.Headers.Add("Idempotency-Key", key);
                        try
                        {
                            using var r = await http.SendAsync(req, CancellationToken.None);
                            if (r.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK)
                            {
                                Acknowledged[key] = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
                                break;
                            }

                            if (r.StatusCode == HttpStatusCode.Accepted)
                            {
                                // Durable in the inbox, no leader yet: it must become a job.
                                Accepted202[key] = true;
                                break;
                            }

                            if (r.StatusCode is not (HttpStatusCode.ServiceUnavailable or HttpStatusCode.BadGateway))
                            {
                                // Anything else is a fault: a client cannot tell whether to retry.
                                Unexpected.Add($"{key} to server {to.Index}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
                            }
                        }
                        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                        {
                        }

                        await Task.Delay(50, CancellationToken.None);
                    }

                    await Task.Delay(rnd.Next(20, 120), CancellationToken.None);
                }
            }, CancellationToken.None)));
        }

        /// <summary>Our Slurm jobs (by name prefix) since the test began, from sacct.</summary>
        public async Task<List<SlurmJobRow>> SacctAsync()
        {
            var psi = new ProcessStartInfo("sacct") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-n", "-X", "-P", "--allusers", "--format=" + SlurmOutputParser.SacctFormat, "--starttime=" + Began.LocalDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture), "--endtime=now" })
            {
                psi.ArgumentList.Add(a);
            }

            using var p = Process.Start(psi)!;
            var text = await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            p.ExitCode.ShouldBe(0, await p.StandardError.ReadToEndAsync());
            return SlurmOutputParser.ParseSacct(text, Prefix).Rows.Where(r => r.Name.StartsWith(Prefix, StringComparison.Ordinal)).ToList();
        }

        public async Task<List<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> read)
        {
            await using var conn = new NpgsqlConnection(Db.ConnectionString);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand(sql, conn);
            await using var r = await cmd.ExecuteReaderAsync();
            var list = new List<T>();
            while (await r.ReadAsync())
            {
                list.Add(read(r));
            }

            return list;
        }

        /// <summary>
        /// The invariants. <paramref name="final"/>: after the queue drained, so also every 202 became a job, every run in
        /// Slurm has ended, and each run is charged exactly once, as sacct says.
        /// </summary>
        public async Task CheckAsync(string when, bool final)
        {
            Unexpected.ShouldBeEmpty($"{when}: answers a client cannot act on (logs: {LogDir})");
            // Every acknowledged submission exists exactly once, with the id it was given.
            var byKey = (await QueryAsync("SELECT \"IdempotencyKey\", \"Id\" FROM jobs WHERE \"IdempotencyKey\" IS NOT NULL", r => (Key: r.GetString(0), Id: r.GetInt64(1))))
                .GroupBy(x => x.Key).ToDictionary(g => g.Key, g => g.Select(x => x.Id).ToList(), StringComparer.Ordinal);
            foreach (var (key, id) in Acknowledged)
            {
                byKey.TryGetValue(key, out var ids).ShouldBeTrue($"{when}: acknowledged job {key} (id {id}) is missing");
                ids!.ShouldBe([id], $"{when}: acknowledged job {key} exists {ids!.Count} times");
            }

            if (final)
            {
                foreach (var key in Accepted202.Keys)
                {
                    byKey.TryGetValue(key, out var ids).ShouldBeTrue($"{when}: submission {key} answered 202 never became a job");
                    ids!.Count.ShouldBe(1, $"{when}: submission {key} became {ids.Count} jobs");
                }
            }

            // No job ran twice in Slurm: one Slurm run per (job, attempt), and a job's runs never overlap.
            var now = DateTimeOffset.UtcNow;
            // A run: it started and took time (a job cancelled while pending gets a start time equal to its end).
            var runs = (await SacctAsync()).Where(r => r.Start is not null && (r.State == SlurmJobState.Running || r.ElapsedSeconds > 0)).Select(r =>
            {
                SlurmJobName.TryParse(Prefix, r.Name, out var job, out var attempt).ShouldBeTrue(r.Name);
                return (Job: job, Attempt: attempt, Row: r);
            }).ToList();
            foreach (var g in runs.GroupBy(r => (r.Job, r.Attempt)))
            {
                g.Count().ShouldBe(1, $"{when}: job {g.Key.Job} attempt {g.Key.Attempt} ran {g.Count()} times in Slurm: {string.Join(", ", g.Select(x => $"{x.Row.SlurmJobId} {x.Row.State} {x.Row.Start:O}..{x.Row.End:O}"))}");
            }

            foreach (var g in runs.GroupBy(r => r.Job))
            {
                var ordered = g.OrderBy(r => r.Row.Start).ToList();
                for (var i = 1; i < ordered.Count; i++)
                {
                    (ordered[i - 1].Row.End ?? now).ShouldBeLessThanOrEqualTo(ordered[i].Row.Start!.Value, $"{when}: job {g.Key} ran twice at once in Slurm ({ordered[i - 1].Row.SlurmJobId} and {ordered[i].Row.SlurmJobId})");
                }
            }

            // Every attempt is charged at most once (exactly once, and as sacct says, once the queue drained).
            var ledger = await QueryAsync("SELECT \"JobId\", \"Attempt\", \"Seconds\", \"GpuHours\" FROM ledger", r => (Job: r.GetInt64(0), Attempt: r.GetInt32(1), Seconds: r.GetDouble(2), GpuHours: r.GetDouble(3)));
            foreach (var g in ledger.GroupBy(l => (l.Job, l.Attempt)).Where(g => g.Count() > 1))
            {
                throw new ShouldAssertException($"{when}: job {g.Key.Job} attempt {g.Key.Attempt} charged {g.Count()} times");
            }

            if (!final)
            {
                return;
            }

            var charged = ledger.ToDictionary(l => (l.Job, l.Attempt));
            var wrong = new List<string>();
            foreach (var run in runs)
            {
                run.Row.End.ShouldNotBeNull($"{when}: Slurm job {run.Row.SlurmJobId} ({run.Row.Name}) has not ended after the queue drained");
                charged.TryGetValue((run.Job, run.Attempt), out var entry).ShouldBeTrue($"{when}: the run of job {run.Job} attempt {run.Attempt} (Slurm {run.Row.SlurmJobId}, {run.Row.State}, {run.Row.ElapsedSeconds} s) was never charged");
                if (entry.Seconds != run.Row.ElapsedSeconds!.Value || Math.Abs(entry.GpuHours - (run.Row.Gpus!.Value * run.Row.ElapsedSeconds!.Value / 3600.0)) > 1e-9)
                {
                    wrong.Add($"job {run.Job} attempt {run.Attempt}: ledger {entry.Seconds} s, {entry.GpuHours:0.######} GPU-h; sacct {run.Row.ElapsedSeconds} s × {run.Row.Gpus} GPUs (Slurm {run.Row.SlurmJobId} {run.Row.Start:O}..{run.Row.End:O})");
                }
            }

            // The charge of every run is Slurm's own elapsed time, to the second, times its GPUs.
            wrong.ShouldBeEmpty($"{when}: the ledger differs from sacct (logs: {LogDir})");

            foreach (var l in ledger.Where(l => l.Seconds > 0))
            {
                runs.ShouldContain(r => r.Job == l.Job && r.Attempt == l.Attempt, $"{when}: job {l.Job} attempt {l.Attempt} is charged {l.Seconds} s without a run in Slurm");
            }

            _log.WriteLine($"{when}: {Acknowledged.Count} acknowledged (+{Accepted202.Count} answered 202), {runs.Count} runs in Slurm, {ledger.Count} ledger entries: all exactly once, ledger = sacct");
        }

        /// <summary>
        /// Waits until nothing of ours is pending or running, in the database and in Slurm, and sacct has every end. How
        /// long that takes follows how many jobs the bursts got in (the clients submit as fast as the servers answer), so
        /// it fails when the queue stops draining: no job of the database ends for <paramref name="stall"/>, or the whole
        /// wait passes <paramref name="cap"/>.
        /// </summary>
        public async Task DrainAsync(TimeSpan stall, TimeSpan cap)
        {
            var until = Stopwatch.StartNew();
            var sinceProgress = Stopwatch.StartNew();
            var fewest = long.MaxValue;
            var first = -1L;
            while (true)
            {
                var open = (await QueryAsync("SELECT count(*) FROM jobs WHERE \"State\" IN ('pending', 'running')", r => r.GetInt64(0)))[0]
                    + (await QueryAsync("SELECT count(*) FROM job_inbox WHERE taken_at IS NULL", r => r.GetInt64(0)))[0];
                var inSlurm = (await SacctAsync()).Count(r => r.End is null);
                if (first < 0)
                {
                    first = open;
                }

                if (open == 0 && inSlurm == 0)
                {
                    _log.WriteLine($"drained {first} open jobs in {until.Elapsed.TotalSeconds:0} s");
                    return;
                }

                if (open < fewest)
                {
                    fewest = open;
                    sinceProgress.Restart();
                }

                if (sinceProgress.Elapsed > stall || until.Elapsed > cap)
                {
                    var why = sinceProgress.Elapsed > stall ? $"no job ended in {stall.TotalSeconds} s" : $"not done in {cap.TotalSeconds} s";
                    throw new TimeoutException($"the queue did not drain ({why}; {first} open when the drain began): {open} open in the database, {inSlurm} in Slurm\n"
                        + string.Join("\n", Servers.Select(s => $"--- server {s.Index} ---\n" + Tail(s.Process?.Output))));
                }

                await Task.Delay(1000);
            }
        }

        public string LogDir => Path.Combine(Path.GetTempPath(), "gpuc-ha-logs", Prefix.TrimEnd('-'));

        public static string Tail(string? text) => text is null ? "" : string.Join('\n', text.Split('\n').TakeLast(40));

        public async ValueTask DisposeAsync()
        {
            // The servers' logs, for a failure's post-mortem (the latest run of each server).
            Directory.CreateDirectory(LogDir);
            foreach (var s in Servers.Where(s => s.Process is not null))
            {
                await File.AppendAllTextAsync(Path.Combine(LogDir, $"server-{s.Index}.log"), s.Process!.Output);
            }

            foreach (var s in Servers)
            {
                if (s.Process is not null)
                {
                    if (s.Paused)
                    {
                        s.Process.Pause(stop: false);
                    }

                    await s.Process.DisposeAsync();
                }
            }

            // Nothing of ours left in Slurm.
            using (var p = Process.Start(new ProcessStartInfo("sh", ["-c", $"squeue -h -o '%i %j' | awk '$2 ~ /^{Prefix}/ {{print $1}}' | xargs -r scancel"]) { UseShellExecute = false }))
            {
                p?.WaitForExit(30_000);
            }

            await ServerHarness.DropAsync(Db);
            foreach (var s in Servers)
            {
                try
                {
                    Directory.Delete(s.DataDir, true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }
        }
    }

    /// <summary>The test output, usable from the cluster's methods.</summary>
    private sealed class ITestOutputHelperShim(Xunit.Abstractions.ITestOutputHelper inner)
    {
        public void WriteLine(string s)
        {
            try
            {
                inner.WriteLine(s);
            }
            catch (InvalidOperationException)
            {
            }
        }
    }

    private enum Blow
    {
        Kill,
        PauseLong,
        PauseShort,
    }

    /// <summary>One blow at the leader during a burst; returns once the cluster has a leader again and the blown server is back (as a standby, or leading again after a short pause).</summary>
    private static async Task StrikeAsync(Cluster c, Blow blow, Random rnd, ITestOutputHelperShim log, string when)
    {
        var leader = await c.LeaderAsync();
        leader.ShouldNotBeNull($"{when}: no leader before the blow");
        var clock = Stopwatch.StartNew();
        switch (blow)
        {
            case Blow.Kill:
                leader.Process!.KillHard();
                var (next, ms) = await c.WaitForNewLeaderAsync(leader, clock);
                log.WriteLine($"{when}: kill -9 of server {leader.Index}: server {next.Index} leads after {ms:0} ms");
                await c.RestartAsync(leader);
                break;
            case Blow.PauseLong:
                leader.Process!.Pause(stop: true);
                leader.Paused = true;
                var (taken, pms) = await c.WaitForNewLeaderAsync(leader, clock);
                log.WriteLine($"{when}: SIGSTOP of server {leader.Index}: server {taken.Index} leads after {pms:0} ms");
                await Task.Delay(rnd.Next(0, 3000));
                leader.Process.Pause(stop: false);
                leader.Paused = false;
                // It wakes up, finds the lease moved, steps down without acting (the fence) and comes back as a standby.
                await ServerHarness.EventuallyAsync(async () => await leader.Process.HealthAsync() == "standby", $"{when}: the paused leader to come back as a standby", 90_000);
                break;
            case Blow.PauseShort:
                // Shorter than the lease less the safety margin: nobody takes over; the leader carries on.
                leader.Process!.Pause(stop: true);
                leader.Paused = true;
                await Task.Delay(rnd.Next(200, 1500));
                leader.Process.Pause(stop: false);
                leader.Paused = false;
                await ServerHarness.EventuallyAsync(async () => await c.LeaderAsync() is not null, $"{when}: a leader after a short pause", 60_000);
                log.WriteLine($"{when}: short SIGSTOP of server {leader.Index}: {(await c.LeaderAsync())!.Index} leads");
                break;
        }
    }

    [SlurmPostgresFact]
    public async Task ThreeServersOnSlurm_KillMinus9AndSigstopOfTheLeaderDuringBursts_EveryJobOnceInSlurm_EveryAttemptChargedOnce_LedgerEqualsSacct()
    {
        var log = new ITestOutputHelperShim(output);
        await using var c = await Cluster.StartAsync(3, log);
        var rnd = new Random(1717);
        Blow[] blows = [Blow.Kill, Blow.PauseLong, Blow.Kill, Blow.PauseLong];
        for (var round = 0; round < blows.Length; round++)
        {
            using var stop = new CancellationTokenSource();
            var burst = c.BurstAsync(3, $"r{round}", rnd, stop.Token);
            // Into the burst: submissions queue and the leader hands a stream of starts to Slurm.
            await Task.Delay(rnd.Next(1500, 3500));
            await StrikeAsync(c, blows[round], rnd, log, $"round {round} ({blows[round]})");
            await Task.Delay(1000);
            await stop.CancelAsync();
            await burst;
            await c.CheckAsync($"after round {round}", final: false);
        }

        await c.DrainAsync(stall: TimeSpan.FromSeconds(90), cap: TimeSpan.FromMinutes(10));
        await c.CheckAsync("at the end", final: true);
        c.Acknowledged.Count.ShouldBeGreaterThan(20);
        log.WriteLine($"takeovers (ms): {string.Join(", ", c.TakeoversMs.Select(x => x.ToString("0", CultureInfo.InvariantCulture)))}");
    }

    [SlurmPostgresFact]
    public async Task Soak_RandomKillsAndPausesOfTheLeader_ForABoundedTime_SameInvariants()
    {
        var seconds = int.TryParse(Environment.GetEnvironmentVariable("GPUC_HA_SOAK_SECONDS"), CultureInfo.InvariantCulture, out var s) ? s : 60;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("GPUC_HA_SOAK_SEED"), CultureInfo.InvariantCulture, out var sd) ? sd : 20261206;
        var log = new ITestOutputHelperShim(output);
        log.WriteLine($"soak: {seconds} s, seed {seed} (GPUC_HA_SOAK_SECONDS, GPUC_HA_SOAK_SEED)");
        await using var c = await Cluster.StartAsync(3, log);
        var rnd = new Random(seed);
        using var stop = new CancellationTokenSource();
        var burst = c.BurstAsync(2, "soak", rnd, stop.Token);
        var clock = Stopwatch.StartNew();
        var blows = new List<Blow>();
        try
        {
            while (clock.Elapsed < TimeSpan.FromSeconds(seconds))
            {
                await Task.Delay(rnd.Next(1000, 6000));
                var blow = (Blow)rnd.Next(3);
                blows.Add(blow);
                await StrikeAsync(c, blow, rnd, log, $"soak blow {blows.Count} at {clock.Elapsed.TotalSeconds:0} s ({blow})");
                await c.CheckAsync($"soak blow {blows.Count}", final: false);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await burst;
        }

        await c.DrainAsync(stall: TimeSpan.FromSeconds(90), cap: TimeSpan.FromMinutes(10));
        await c.CheckAsync($"soak end ({blows.Count} blows: {blows.Count(b => b == Blow.Kill)} kills, {blows.Count(b => b == Blow.PauseLong)} long and {blows.Count(b => b == Blow.PauseShort)} short pauses)", final: true);
        blows.Count.ShouldBeGreaterThan(0);
        log.WriteLine($"takeovers (ms): {string.Join(", ", c.TakeoversMs.Select(x => x.ToString("0", CultureInfo.InvariantCulture)))}");
    }
}
