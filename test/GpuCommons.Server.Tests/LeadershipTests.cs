using GpuCommons.Server.Data;
using GpuCommons.Server.Leadership;
using Npgsql;

namespace GpuCommons.Server.Tests;

/// <summary>The lease, the fence on writes and on backend calls, and SQLite's single instance.</summary>
public sealed class LeadershipTests
{
    private sealed class FixedLeadership(bool valid, long epoch = 3) : ILeadership
    {
        public bool MultiInstance => true;
        public bool IsLeader => valid;
        public long Epoch => epoch;
        public bool IsLeaseValidLocally => valid;
        public string? LeaderUrl => null;
        public long ObservedEpoch => epoch;
        public double? SecondsSinceTakeover => null;
        public int Takeovers => 0;
        public CancellationToken Lost => CancellationToken.None;
        public bool SteppedDown => !valid;
        public Task WaitForLeadershipAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static async Task<TestDatabase> MigratedAsync()
    {
        var db = TestDatabase.Postgres();
        await new GpucDbFactory("postgres", db.ConnectionString!).MigrateAsync(CancellationToken.None);
        return db;
    }

    private static async Task InsertEventAsync(string connectionString, string kind)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("INSERT INTO events (\"Time\", \"Actor\", \"Kind\", \"Subject\") VALUES (now(), 'test', @k, 'x')", conn);
        cmd.Parameters.AddWithValue("k", kind);
        await cmd.ExecuteNonQueryAsync();
    }

    private static async Task ExpireAsync(string connectionString)
    {
        await using var conn = new NpgsqlConnection(connectionString);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand("UPDATE leader_lease SET expires_at = now() - interval '1 second'", conn);
        await cmd.ExecuteNonQueryAsync();
    }

    [PostgresFact]
    public async Task Lease_TakenOnce_MovesOnlyWhenExpired_AndAStaleLeadersWritesAreRefused()
    {
        var db = await MigratedAsync();
        try
        {
            await using var source = NpgsqlDataSource.Create(db.ConnectionString!);
            var a = new LeaderLease(source, "a", "http://a");
            var b = new LeaderLease(source, "b", "http://b");
            var lease = TimeSpan.FromMinutes(1);

            var (ea, _) = await a.TryAcquireAsync(lease, default);
            ea.ShouldBe(1);
            var (eb, seen) = await b.TryAcquireAsync(lease, default);
            eb.ShouldBeNull("the lease is held and unexpired");
            seen.HolderUrl.ShouldBe("http://a");
            (await a.RenewAsync(1, lease, default)).ShouldBeTrue();
            await a.EnsureFenceAsync(default);

            var fencedA = LeaderLease.Fenced(db.ConnectionString!, 1, TimeSpan.FromSeconds(3));
            await InsertEventAsync(fencedA, "by-a-while-leading");

            await ExpireAsync(db.ConnectionString!);
            (eb, _) = await b.TryAcquireAsync(lease, default);
            eb.ShouldBe(2);
            (await a.RenewAsync(1, lease, default)).ShouldBeFalse("the lease moved on");

            var refused = await Should.ThrowAsync<PostgresException>(() => InsertEventAsync(fencedA, "by-a-after-takeover"));
            refused.MessageText.ShouldStartWith(FenceSql.StaleMessage);
            await InsertEventAsync(LeaderLease.Fenced(db.ConnectionString!, 2, TimeSpan.FromSeconds(3)), "by-b");
            await InsertEventAsync(db.ConnectionString!, "unfenced (a standby's submission, a migration)");

            await using var conn = new NpgsqlConnection(db.ConnectionString);
            await conn.OpenAsync();
            await using var kinds = new NpgsqlCommand("SELECT string_agg(\"Kind\", ',' ORDER BY \"Id\") FROM events WHERE \"Actor\" = 'test'", conn);
            ((string)(await kinds.ExecuteScalarAsync())!).ShouldBe("by-a-while-leading,by-b,unfenced (a standby's submission, a migration)");
        }
        finally
        {
            await ServerHarness.DropAsync(db);
        }
    }

    [PostgresFact]
    public async Task Takeover_WaitsForTheOldLeadersWriteInFlight_ThenItsNextWriteIsRefused()
    {
        var db = await MigratedAsync();
        try
        {
            await using var source = NpgsqlDataSource.Create(db.ConnectionString!);
            var a = new LeaderLease(source, "a", null);
            var b = new LeaderLease(source, "b", null);
            (await a.TryAcquireAsync(TimeSpan.FromMinutes(1), default)).Epoch.ShouldBe(1);
            await a.EnsureFenceAsync(default);

            // The old leader is inside a write transaction (it has passed the fence) when its lease runs out.
            await using var old = new NpgsqlConnection(LeaderLease.Fenced(db.ConnectionString!, 1, TimeSpan.FromSeconds(30)));
            await old.OpenAsync();
            await using var tx = await old.BeginTransactionAsync();
            await using (var write = new NpgsqlCommand("INSERT INTO events (\"Time\", \"Actor\", \"Kind\", \"Subject\") VALUES (now(), 'test', 'in-flight', 'x')", old, tx))
            {
                await write.ExecuteNonQueryAsync();
            }

            await ExpireAsync(db.ConnectionString!);
            // The takeover cannot pass the write in flight (its lock waits, and gives up after 2 s).
            var blocked = await Should.ThrowAsync<PostgresException>(() => b.TryAcquireAsync(TimeSpan.FromMinutes(1), default));
            blocked.SqlState.ShouldBe(PostgresErrorCodes.LockNotAvailable);

            await tx.CommitAsync();
            (await b.TryAcquireAsync(TimeSpan.FromMinutes(1), default)).Epoch.ShouldBe(2);
            await Should.ThrowAsync<PostgresException>(() => InsertEventAsync(LeaderLease.Fenced(db.ConnectionString!, 1, TimeSpan.FromSeconds(3)), "after"));
        }
        finally
        {
            await ServerHarness.DropAsync(db);
        }
    }

    [Fact]
    public async Task FencedBackend_RefusesStartAndCancel_WhenTheLeaseIsNotValidHere_AndPassesReads()
    {
        var inner = new TestBackend();
        var fenced = FencedBackend.Wrap(inner, new FixedLeadership(valid: false));
        var job = new GpuCommons.Backends.BackendJob(7, "j", "demo", "bob", ["true"], null, new Dictionary<string, string>(),
            [new GpuCommons.Backends.AssignedNode("test-1", [0], [], null)], TimeSpan.FromMinutes(1), Path.GetTempPath(), false);
        (await Should.ThrowAsync<FencedException>(() => fenced.StartAsync(job, default))).Message.ShouldContain("start of job 7 refused");
        await Should.ThrowAsync<FencedException>(() => fenced.CancelAsync(7, TimeSpan.Zero, default));
        inner.Cancelled.ShouldBeEmpty();
        (await fenced.DiscoverAsync(default)).Nodes.Count.ShouldBe(1);

        var leading = FencedBackend.Wrap(inner, new FixedLeadership(valid: true));
        await leading.CancelAsync(7, TimeSpan.Zero, default);
        inner.Cancelled.ShouldContain(7L);
    }

    [Fact]
    public async Task Sqlite_ASecondServerOnTheSameFile_IsRefusedWithAMessage()
    {
        var db = TestDatabase.Sqlite();
        await using var first = await ServerHarness.StartAsync(db);
        var options = new ServerOptions { DataDir = db.DataDir, Provider = "sqlite" };
        var e = Should.Throw<InvalidOperationException>(() => ServerApp.Build(options, new TestBackend()));
        e.Message.ShouldContain("SQLite is single-instance");
        e.Message.ShouldContain("--db postgres");
        (await first.Client("admin").GetStringAsync("/healthz")).ShouldBe("leader");
    }
}
