using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Migrations.Operations;
using Npgsql;

namespace GpuCommons.Server.Tests.Upgrade;

/// <summary>Runs only where the previous release's gpuc is built (<c>bash ci/previous-release.sh</c>, or GPUC_PREVIOUS_RELEASE).</summary>
public sealed class PreviousReleaseFactAttribute : FactAttribute
{
    public static string? Dll
    {
        get
        {
            if (Environment.GetEnvironmentVariable("GPUC_PREVIOUS_RELEASE") is { Length: > 0 } set)
            {
                return File.Exists(set) ? set : null;
            }

            var rev = File.ReadAllText(Path.Combine(UpgradeRules.FrozenDir, "rev.txt")).Trim();
            var dll = Path.Combine(Path.GetTempPath(), "gpuc-previous-release", rev, "out", "gpuc.dll");
            return File.Exists(dll) ? dll : null;
        }
    }

    public PreviousReleaseFactAttribute()
    {
        if (new PostgresFactAttribute().Skip is { } noPg)
        {
            Skip = noPg;
        }
        else if (Dll is null)
        {
            Skip = "the previous release is not built: bash ci/previous-release.sh (or set GPUC_PREVIOUS_RELEASE to its gpuc.dll)";
        }
    }
}

/// <summary>
/// Rolling upgrades: the expand-then-contract rule as checks on the migrations and on the schema (against the previous
/// release's, frozen in Upgrade/previous-release/), this release on a database the previous one migrated, and real servers
/// of both releases on one database, each taking over from the other.
/// </summary>
[Collection("processes")]
public sealed class UpgradeTests(Xunit.Abstractions.ITestOutputHelper output)
{
    // ---- the rule, without a database ----

    [Fact]
    public void MigrationsSinceThePreviousRelease_DropRenameOrRetypeNothingItReads_AndItsOwnMigrationsAreAllStillHere()
    {
        var previous = UpgradeRules.PreviousColumns();
        previous.Count.ShouldBeGreaterThan(100);
        var shipped = UpgradeRules.PreviousMigrations();
        var here = UpgradeRules.PostgresMigrations();
        // A shipped migration is never removed or renamed: the previous release's history must stay a prefix-set of ours.
        shipped.Except(here.Select(m => m.Id)).ShouldBeEmpty("a migration the previous release applied is missing from this build");
        var newer = here.Where(m => !shipped.Contains(m.Id)).ToList();
        output.WriteLine("migrations since the previous release: " + string.Join(", ", newer.Select(m => m.Id)));
        newer.SelectMany(m => UpgradeRules.CheckOperations(m.Id, m.Migration.UpOperations, previous)).ShouldBeEmpty();
    }

    [Fact]
    public void TheRule_RefusesDropsRenamesRetypesAndNewNotNulls_OnWhatThePreviousReleaseReads_AndAllowsExpandAndContract()
    {
        var previous = UpgradeRules.PreviousColumns();
        previous.ShouldContain(c => c.Table == "jobs" && c.Column == "State");
        var mb = new MigrationBuilder("Npgsql.EntityFrameworkCore.PostgreSQL");
        mb.DropColumn("State", "jobs");
        mb.RenameColumn("User", "jobs", "Owner");
        mb.DropTable("ledger");
        mb.RenameTable("events", newName: "audit_events");
        mb.AlterColumn<string>("Command", "jobs", type: "text", nullable: false, oldType: "text", oldNullable: true);
        mb.AlterColumn<long>("Gpus", "jobs", type: "bigint", nullable: false, oldType: "integer", oldNullable: false);
        mb.AddColumn<int>("Weight", "jobs", type: "integer", nullable: false);
        mb.CreateIndex("IX_jobs_Name", "jobs", "Name", unique: true);
        mb.AddColumn<long>("BatchId", "jobs", type: "bigint", nullable: true, defaultValue: 0L); // every old insert writes 0: they collide
        mb.CreateIndex("IX_jobs_BatchId_Name", "jobs", ["BatchId", "Name"], unique: true);
        mb.Sql("ALTER TABLE jobs DROP COLUMN \"Name\"");
        var wrong = UpgradeRules.CheckOperations("Bad", mb.Operations, previous);
        output.WriteLine(string.Join('\n', wrong));
        wrong.Count.ShouldBe(10);
        wrong.ShouldContain(w => w.Contains("drops column jobs.State", StringComparison.Ordinal));
        wrong.ShouldContain(w => w.Contains("renames column jobs.User", StringComparison.Ordinal));
        wrong.ShouldContain(w => w.Contains("NOT NULL without a default", StringComparison.Ordinal));

        // Expand (a nullable column, a column with a default, a new table) and contract (a column only this release had).
        var ok = new MigrationBuilder("Npgsql.EntityFrameworkCore.PostgreSQL");
        ok.AddColumn<string>("Note", "jobs", type: "text", nullable: true);
        ok.AddColumn<int>("Weight", "jobs", type: "integer", nullable: false, defaultValue: 1);
        ok.CreateTable("things", t => new { Id = t.Column<long>(type: "bigint", nullable: false) });
        ok.CreateIndex("IX_jobs_Note", "jobs", "Note");
        ok.AddColumn<long>("BatchId", "jobs", type: "bigint", nullable: true);
        ok.CreateIndex("IX_jobs_BatchId_Name", "jobs", ["BatchId", "Name"], unique: true); // the previous release leaves BatchId null
        ok.DropColumn("OnlyInThisRelease", "jobs");
        ok.Sql("CREATE INDEX IF NOT EXISTS ix_x ON jobs (\"Note\")");
        UpgradeRules.CheckOperations("Good", ok.Operations, previous).ShouldBeEmpty();
    }

    // ---- the rule on a real database ----

    private static async Task<List<SchemaColumn>> ColumnsAsync(string cs)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(UpgradeRules.ColumnsSql, conn);
        await using var r = await cmd.ExecuteReaderAsync();
        var list = new List<SchemaColumn>();
        while (await r.ReadAsync())
        {
            list.Add(new SchemaColumn(r.GetString(0), r.GetString(1), r.GetString(2), r.GetBoolean(3), r.GetBoolean(4)));
        }

        return list;
    }

    /// <summary>
    /// A database restored on another machine maps its users and projects to that machine's accounts (uid, gid), as an
    /// admin moving a center does: where the tests run as root (jobs as the users' own accounts), each mapped account
    /// and group is made when missing and the rows take this machine's ids.
    /// </summary>
    private static async Task MapAccountsOnThisMachineAsync(string cs)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            return; // a user's server runs every job as itself: no mapping is read
        }

        static string Run(params string[] args)
        {
            var psi = new System.Diagnostics.ProcessStartInfo(args[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in args.Skip(1))
            {
                psi.ArgumentList.Add(a);
            }

            using var p = System.Diagnostics.Process.Start(psi)!;
            var o = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return p.ExitCode == 0 ? o.Trim() : "";
        }

        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        var users = new List<string>();
        await using (var q = new NpgsqlCommand("SELECT \"PosixName\" FROM users WHERE \"PosixName\" IS NOT NULL", conn))
        await using (var r = await q.ExecuteReaderAsync())
        {
            while (await r.ReadAsync())
            {
                users.Add(r.GetString(0));
            }
        }

        foreach (var login in users)
        {
            if (Run("getent", "passwd", login).Length == 0)
            {
                Run("useradd", "--create-home", "--shell", "/bin/bash", login);
            }

            await using var u = new NpgsqlCommand("UPDATE users SET \"Uid\" = @id WHERE \"PosixName\" = @n", conn);
            u.Parameters.AddWithValue("id", int.Parse(Run("id", "-u", login), System.Globalization.CultureInfo.InvariantCulture));
            u.Parameters.AddWithValue("n", login);
            await u.ExecuteNonQueryAsync();
        }

        var groups = new List<string>();
        await using (var q = new NpgsqlCommand("SELECT \"PosixGroup\" FROM projects WHERE \"PosixGroup\" IS NOT NULL", conn))
        await using (var r = await q.ExecuteReaderAsync())
        {
            while (await r.ReadAsync())
            {
                groups.Add(r.GetString(0));
            }
        }

        foreach (var group in groups)
        {
            if (Run("getent", "group", group).Length == 0)
            {
                Run("groupadd", group);
            }

            await using var g = new NpgsqlCommand("UPDATE projects SET \"Gid\" = @id WHERE \"PosixGroup\" = @n", conn);
            g.Parameters.AddWithValue("id", int.Parse(Run("getent", "group", group).Split(':')[2], System.Globalization.CultureInfo.InvariantCulture));
            g.Parameters.AddWithValue("n", group);
            await g.ExecuteNonQueryAsync();
        }
    }

    private static async Task ExecAsync(string cs, string sql)
    {
        await using var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(cs) { Pooling = false }.ConnectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    [PostgresFact]
    public async Task ThisReleasesSchema_KeepsEveryColumnThePreviousReleaseReads_AndTheCheckFailsOnARename()
    {
        var db = TestDatabase.Postgres();
        try
        {
            await new GpucDbFactory("postgres", db.ConnectionString!).MigrateAsync(CancellationToken.None);
            var previous = UpgradeRules.PreviousColumns();
            UpgradeRules.CompareSchemas(previous, await ColumnsAsync(db.ConnectionString!)).ShouldBeEmpty();

            // What a careless migration would do: the check names it.
            await ExecAsync(db.ConnectionString!, "ALTER TABLE jobs RENAME COLUMN \"Name\" TO \"Title\"; ALTER TABLE ledger ADD COLUMN \"Kind\" text NOT NULL DEFAULT 'x'; ALTER TABLE ledger ALTER COLUMN \"Kind\" DROP DEFAULT");
            var wrong = UpgradeRules.CompareSchemas(previous, await ColumnsAsync(db.ConnectionString!));
            output.WriteLine(string.Join('\n', wrong));
            // A rename is both: the old name is gone, and the new one is a NOT NULL column the old release's inserts leave out.
            wrong.ShouldBe([
                "jobs.Name: the column is gone (dropped or renamed), and the previous release reads it",
                "jobs.Title: a NOT NULL column without a default; the previous release's inserts into jobs leave it out",
                "ledger.Kind: a NOT NULL column without a default; the previous release's inserts into ledger leave it out",
            ]);
        }
        finally
        {
            await ServerHarness.DropAsync(db);
        }
    }

    [PostgresFact]
    public async Task ThisRelease_RunsOnTheDatabaseThePreviousReleaseMigrated_ReadsItsJobsAndCharges_AndRunsNewOnes()
    {
        // The previous release's database as it left it (Upgrade/previous-release/dump.sql: its migrations, the demo
        // tenancy, two jobs it ran and charged), restored into a fresh database.
        var db = TestDatabase.Postgres();
        await using (var admin = new NpgsqlConnection(PostgresFactAttribute.Connection))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{new NpgsqlConnectionStringBuilder(db.ConnectionString).Database}\"", admin);
            await create.ExecuteNonQueryAsync();
        }

        ServeProcess? server = null;
        try
        {
            await ExecAsync(db.ConnectionString!, await File.ReadAllTextAsync(Path.Combine(UpgradeRules.FrozenDir, "dump.sql")));
            (await CountAsync(db.ConnectionString!, "SELECT count(*) FROM \"__EFMigrationsHistory\"")).ShouldBe(UpgradeRules.PreviousMigrations().Count);
            UpgradeRules.CompareSchemas(UpgradeRules.PreviousColumns(), await ColumnsAsync(db.ConnectionString!)).ShouldBeEmpty("the dump is the frozen schema");

            await MapAccountsOnThisMachineAsync(db.ConnectionString!);
            server = await ServeProcess.StartAsync(db.DataDir, null, "--db", "postgres", "--connection", db.ConnectionString!);
            await ServerHarness.EventuallyAsync(async () => await server.HealthAsync() == "leader", "this release to lead on the old database", 30_000);
            (await CountAsync(db.ConnectionString!, "SELECT count(*) FROM \"__EFMigrationsHistory\"")).ShouldBe(UpgradeRules.PostgresMigrations().Count, "this release migrated it forward");

            var tokens = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(UpgradeRules.FrozenDir, "demo-tokens.json")))!;
            using var bob = new HttpClient { BaseAddress = new Uri(server.Url) };
            bob.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", tokens["bob"]);
            var old = (await bob.GetFromJsonAsync<JsonElement>("/api/jobs?limit=10")).GetProperty("items").EnumerateArray().ToList();
            old.Count.ShouldBe(2);
            old.ShouldAllBe(j => j.GetProperty("state").GetString() == "finished");
            (await CountAsync(db.ConnectionString!, "SELECT count(*) FROM ledger")).ShouldBe(2);

            // The same key as one of the old release's jobs replays it; a new one runs and is charged once.
            using (var again = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(new { project = "demo", gpus = 1, walltime = "5m", command = new[] { "true" } }) })
            {
                again.Headers.Add("Idempotency-Key", "frozen-1");
                var r = await bob.SendAsync(again);
                r.StatusCode.ShouldBe(HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
            }

            var id = await SubmitAsync(bob, "after-upgrade", new { project = "demo", gpus = 1, walltime = "5m", command = new[] { "true" } });
            await ServerHarness.EventuallyAsync(async () => await StateAsync(bob, id) == "finished", "a job to run on the upgraded database", 60_000);
            await ServerHarness.EventuallyAsync(async () => await CountAsync(db.ConnectionString!, "SELECT count(*) FROM ledger") == 3, "its charge", 30_000);
            (await CountAsync(db.ConnectionString!, "SELECT count(*) - count(DISTINCT (\"JobId\", \"Attempt\")) FROM ledger")).ShouldBe(0);
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }

            await ServerHarness.DropAsync(db);
            Cleanup(db.DataDir);
        }
    }

    // ---- servers of both releases on one database ----

    private sealed class Runs : IDisposable
    {
        public Runs()
        {
            Dir = Path.Combine(Path.GetTempPath(), "gpuc-upgrade-runs-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Dir);
            System.IO.File.WriteAllText(File, "");
            if (!OperatingSystem.IsWindows())
            {
                // Jobs run as the demo users' own accounts when the server is root: they append to a file outside its data directory.
                System.IO.File.SetUnixFileMode(Dir, (UnixFileMode)0b111_101_101);
                System.IO.File.SetUnixFileMode(File, (UnixFileMode)0b110_110_110);
            }
        }

        public string Dir { get; }
        public string File => Path.Combine(Dir, "runs.txt");

        public object Job(string key, int gpus = 1, string then = "") =>
            new { project = "demo", gpus, walltime = "5m", requeueable = false, command = new[] { "sh", "-c", $"echo {key} >> {File}{then}" } };

        public void Dispose()
        {
            try
            {
                Directory.Delete(Dir, true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private static async Task<long> SubmitAsync(HttpClient c, string key, object body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(body) };
        req.Headers.Add("Idempotency-Key", key);
        var r = await c.SendAsync(req);
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64();
    }

    private static async Task<string> StateAsync(HttpClient c, long id) =>
        (await c.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}")).GetProperty("state").GetString()!;

    private static async Task<long> CountAsync(string cs, string sql)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static void Cleanup(params string[] dirs)
    {
        foreach (var d in dirs)
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

    /// <summary>
    /// The queue drains on <paramref name="survivor"/>; every job ran exactly once (the blocker, whose run was on the dead
    /// machine's local backend, failed without a rerun), every attempt is charged once, and the job count is what was acknowledged.
    /// </summary>
    private static async Task DrainedAndExactlyOnceAsync(TestDatabase db, HttpClient survivor, Runs runs, long blocker, IReadOnlyCollection<string> keys)
    {
        await ServerHarness.EventuallyAsync(async () =>
        {
            var page = await survivor.GetFromJsonAsync<JsonElement>("/api/jobs?state=pending,running&limit=1");
            return page.GetProperty("items").GetArrayLength() == 0;
        }, "the queue to drain on the new leader", 90_000);
        (await StateAsync(survivor, blocker)).ShouldBe("failed");
        var lines = await System.IO.File.ReadAllLinesAsync(runs.File);
        lines.GroupBy(l => l).Where(g => g.Count() > 1).Select(g => g.Key).ShouldBeEmpty("a job ran twice");
        foreach (var key in keys)
        {
            lines.ShouldContain(key);
        }

        (await CountAsync(db.ConnectionString!, "SELECT count(*) FROM jobs")).ShouldBe(keys.Count + 1);
        (await CountAsync(db.ConnectionString!, "SELECT count(*) FROM jobs j WHERE j.\"State\" = 'finished' AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.\"JobId\" = j.\"Id\")")).ShouldBe(0, "a finished job was not charged");
        (await CountAsync(db.ConnectionString!, "SELECT count(*) - count(DISTINCT (\"JobId\", \"Attempt\")) FROM ledger")).ShouldBe(0, "an attempt was charged twice");
    }

    [PreviousReleaseFact]
    public async Task RollingUpgrade_ANewerStandbyMigratesUnderAnOlderLeader_WhichKeepsWorking_ThenTakesOverAfterKillMinus9()
    {
        var db = TestDatabase.Postgres();
        using var runs = new Runs();
        string[] pg = ["--db", "postgres", "--connection", db.ConnectionString!];
        var older = await ServeProcess.StartWithAsync(PreviousReleaseFactAttribute.Dll!, db.DataDir + "-old", null, pg);
        ServeProcess? newer = null;
        try
        {
            await ServerHarness.EventuallyAsync(async () => await older.HealthAsync() == "leader", "the older release to lead", 30_000);
            var shipped = UpgradeRules.PreviousMigrations();
            (await CountAsync(db.ConnectionString!, "SELECT count(*) FROM \"__EFMigrationsHistory\"")).ShouldBe(shipped.Count, "the older release migrated the database to its own schema");
            var toOld = older.Client("bob");
            var blocker = await SubmitAsync(toOld, "blocker", runs.Job("blocker", gpus: 8, then: "; sleep 60"));
            await ServerHarness.EventuallyAsync(async () => await StateAsync(toOld, blocker) == "running", "the blocker to run", 30_000);
            var keys = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                await SubmitAsync(toOld, $"before{i}", runs.Job($"before{i}"));
                keys.Add($"before{i}");
            }

            // The newer release starts beside it: it migrates the database forward (expand only) and stands by.
            newer = await ServeProcess.StartAsync(db.DataDir + "-new", null, pg);
            (await newer.HealthAsync()).ShouldBe("standby");
            (await CountAsync(db.ConnectionString!, "SELECT count(*) FROM \"__EFMigrationsHistory\"")).ShouldBe(UpgradeRules.PostgresMigrations().Count);
            (await older.HealthAsync()).ShouldBe("leader");

            // The older leader works on the expanded schema: its own submissions and the newer standby's (through the inbox).
            var toNew = newer.ClientWithTokensOf(older, "bob");
            for (var i = 0; i < 3; i++)
            {
                await SubmitAsync(toOld, $"old{i}", runs.Job($"old{i}"));
                await SubmitAsync(toNew, $"new{i}", runs.Job($"new{i}"));
                keys.AddRange([$"old{i}", $"new{i}"]);
            }

            // The newer standby reads what the older leader wrote.
            (await StateAsync(toNew, blocker)).ShouldBe("running");

            var clock = Stopwatch.StartNew();
            older.KillHard();
            await ServerHarness.EventuallyAsync(async () => await newer.HealthAsync() == "leader", "the newer standby to lead", 20_000);
            output.WriteLine($"newer release took over from the older one in {clock.Elapsed.TotalMilliseconds:0} ms");
            clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(10));
            await DrainedAndExactlyOnceAsync(db, toNew, runs, blocker, keys);
        }
        finally
        {
            await older.DisposeAsync();
            if (newer is not null)
            {
                await newer.DisposeAsync();
            }

            await ServerHarness.DropAsync(db);
            Cleanup(db.DataDir + "-old", db.DataDir + "-new");
        }
    }

    [PreviousReleaseFact]
    public async Task RollingBack_AnOlderStandbyRunsOnTheDatabaseTheNewerReleaseMigrated_AndTakesOverAfterKillMinus9()
    {
        var db = TestDatabase.Postgres();
        using var runs = new Runs();
        string[] pg = ["--db", "postgres", "--connection", db.ConnectionString!];
        var newer = await ServeProcess.StartAsync(db.DataDir + "-new", null, pg);
        ServeProcess? older = null;
        try
        {
            await ServerHarness.EventuallyAsync(async () => await newer.HealthAsync() == "leader", "the newer release to lead", 30_000);
            var toNew = newer.Client("bob");
            var blocker = await SubmitAsync(toNew, "blocker", runs.Job("blocker", gpus: 8, then: "; sleep 60"));
            await ServerHarness.EventuallyAsync(async () => await StateAsync(toNew, blocker) == "running", "the blocker to run", 30_000);

            // The older release on a database with a migration it does not know: it applies nothing and stands by.
            older = await ServeProcess.StartWithAsync(PreviousReleaseFactAttribute.Dll!, db.DataDir + "-old", null, pg);
            (await older.HealthAsync()).ShouldBe("standby");
            var toOld = older.ClientWithTokensOf(newer, "bob");
            var keys = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                await SubmitAsync(toNew, $"new{i}", runs.Job($"new{i}"));
                await SubmitAsync(toOld, $"old{i}", runs.Job($"old{i}"));
                keys.AddRange([$"new{i}", $"old{i}"]);
            }

            (await StateAsync(toOld, blocker)).ShouldBe("running");
            var clock = Stopwatch.StartNew();
            newer.KillHard();
            await ServerHarness.EventuallyAsync(async () => await older.HealthAsync() == "leader", "the older standby to lead", 20_000);
            output.WriteLine($"older release took over from the newer one in {clock.Elapsed.TotalMilliseconds:0} ms");
            clock.Elapsed.ShouldBeLessThan(TimeSpan.FromSeconds(10));
            await DrainedAndExactlyOnceAsync(db, toOld, runs, blocker, keys);
        }
        finally
        {
            await newer.DisposeAsync();
            if (older is not null)
            {
                await older.DisposeAsync();
            }

            await ServerHarness.DropAsync(db);
            Cleanup(db.DataDir + "-old", db.DataDir + "-new");
        }
    }
}
