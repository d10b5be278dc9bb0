using GpuCommons.Server.Data;
using GpuCommons.Server.Leadership;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace GpuCommons.Server.Tests;

/// <summary>The standbys' submission inbox stays bounded: the leader removes the rows it took, and only under its epoch.</summary>
public sealed class InboxTests
{
    private static async Task<long> ScalarAsync(string cs, string sql)
    {
        await using var conn = new NpgsqlConnection(cs);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [PostgresFact]
    public async Task Sweep_RemovesRowsTakenLongerAgoThanTheRetention_KeepsOpenAndRecentOnes_AndAStaleLeaderRemovesNothing()
    {
        var db = TestDatabase.Postgres();
        await new GpucDbFactory("postgres", db.ConnectionString!).MigrateAsync(CancellationToken.None);
        try
        {
            await using var source = NpgsqlDataSource.Create(db.ConnectionString!);
            var lease = new LeaderLease(source, "a", null);
            (await lease.TryAcquireAsync(TimeSpan.FromMinutes(1), default)).Epoch.ShouldBe(1);
            await lease.EnsureFenceAsync(default);

            // As a standby writes them (no epoch), then as the leader marks them.
            await ScalarAsync(db.ConnectionString!, """
                INSERT INTO job_inbox (user_name, idempotency_key, payload, job_id, taken_at) VALUES
                    ('bob', 'old-1', '{}', 1, now() - interval '10 minutes'),
                    ('bob', 'old-2', '{}', NULL, now() - interval '3 minutes'),
                    ('bob', 'recent', '{}', 3, now() - interval '30 seconds');
                INSERT INTO job_inbox (user_name, idempotency_key, payload) VALUES ('bob', 'open', '{}');
                SELECT 0;
                """);

            var options = new ServerOptions();
            var leaderFactory = new GpucDbFactory("postgres", LeaderLease.Fenced(db.ConnectionString!, 1, TimeSpan.FromSeconds(3)));
            var pump = new InboxPump(null!, leaderFactory, options, NullLogger<InboxPump>.Instance);
            (await pump.SweepAsync(TimeSpan.FromMinutes(2), default)).ShouldBe(2);
            (await ScalarAsync(db.ConnectionString!, "SELECT count(*) FROM job_inbox WHERE idempotency_key IN ('recent', 'open')")).ShouldBe(2);
            (await ScalarAsync(db.ConnectionString!, "SELECT count(*) FROM job_inbox")).ShouldBe(2);

            // Another server takes the lease: the old leader's sweep is fenced like any other write.
            await ScalarAsync(db.ConnectionString!, "UPDATE leader_lease SET expires_at = now() - interval '1 second'; SELECT 0");
            (await new LeaderLease(source, "b", null).TryAcquireAsync(TimeSpan.FromMinutes(1), default)).Epoch.ShouldBe(2);
            var e = await Should.ThrowAsync<PostgresException>(() => pump.SweepAsync(TimeSpan.Zero, default));
            e.MessageText.ShouldStartWith(FenceSql.StaleMessage);
            (await ScalarAsync(db.ConnectionString!, "SELECT count(*) FROM job_inbox")).ShouldBe(2);
        }
        finally
        {
            await ServerHarness.DropAsync(db);
        }
    }

    [Fact]
    public void Options_ARetentionNotLongerThanAStandbysWait_IsRefused()
    {
        var o = new LeadershipOptions { InboxRetention = TimeSpan.FromSeconds(5), StandbySubmitWait = TimeSpan.FromSeconds(5) };
        Should.Throw<ArgumentException>(o.Validate).Message.ShouldContain("inbox retention");
        new LeadershipOptions().Validate();
    }
}
