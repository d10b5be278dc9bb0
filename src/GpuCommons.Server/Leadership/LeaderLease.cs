using Npgsql;

namespace GpuCommons.Server.Leadership;

/// <summary>What the lease row says.</summary>
public sealed record LeaseState(long Epoch, string Holder, string? HolderUrl, bool Expired, double SecondsSinceAcquired);

/// <summary>
/// The leader lease: one row in PostgreSQL with a fencing epoch, its expiry by the database's clock (so the servers'
/// clocks never need to agree). Taking an expired lease bumps the epoch; renewing extends it only under the same epoch and
/// holder, so a leader that was replaced learns it on its next renewal.
/// </summary>
/// <remarks>
/// Why a row and not an advisory lock: an advisory lock lives as long as the holder's session, and PostgreSQL ends the
/// session only when TCP says the peer is gone. A paused leader (SIGSTOP, a long GC, a VM freeze) keeps its socket and so
/// its lock for ever, and a machine that loses power holds it until keepalives time out (minutes by default): neither
/// bounds the takeover. A lease with a database-clock expiry bounds it to the lease, and its epoch is the fencing token
/// every write is checked against (<see cref="FenceSql"/>).
/// </remarks>
public sealed class LeaderLease(NpgsqlDataSource db, string holder, string? url)
{
    public string Holder { get; } = holder;

    /// <summary>Takes the lease if it has expired (or was released); returns the new epoch, or null with what the row says.</summary>
    public async Task<(long? Epoch, LeaseState State)> TryAcquireAsync(TimeSpan lease, CancellationToken ct)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        // FOR UPDATE: waits for writes of the old leader in flight (they hold the row FOR KEY SHARE through the fence).
        await using (var lockCmd = new NpgsqlCommand("SET LOCAL lock_timeout = '2s'", conn, tx))
        {
            await lockCmd.ExecuteNonQueryAsync(ct);
        }

        LeaseState state;
        await using (var read = new NpgsqlCommand(
            "SELECT epoch, holder, holder_url, expires_at < clock_timestamp() OR holder = '', CASE WHEN isfinite(acquired_at) THEN EXTRACT(EPOCH FROM clock_timestamp() - acquired_at)::float8 ELSE 0 END FROM leader_lease WHERE id = 1 FOR UPDATE", conn, tx))
        await using (var r = await read.ExecuteReaderAsync(ct))
        {
            if (!await r.ReadAsync(ct))
            {
                throw new InvalidOperationException("the leader_lease row is missing: run the migrations");
            }

            state = new LeaseState(r.GetInt64(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetBoolean(3), r.GetDouble(4));
        }

        if (!state.Expired)
        {
            await tx.RollbackAsync(ct);
            return (null, state);
        }

        await using var take = new NpgsqlCommand(
            "UPDATE leader_lease SET epoch = epoch + 1, holder = @h, holder_url = @u, acquired_at = clock_timestamp(), renewed_at = clock_timestamp(), expires_at = clock_timestamp() + @l WHERE id = 1 RETURNING epoch", conn, tx);
        take.Parameters.AddWithValue("h", Holder);
        take.Parameters.AddWithValue("u", (object?)url ?? DBNull.Value);
        take.Parameters.AddWithValue("l", lease);
        var epoch = (long)(await take.ExecuteScalarAsync(ct))!;
        await tx.CommitAsync(ct);
        return (epoch, state with { Epoch = epoch, Holder = Holder, HolderUrl = url, Expired = false, SecondsSinceAcquired = 0 });
    }

    /// <summary>Extends the lease; false when it has moved to another epoch or holder (this server no longer leads).</summary>
    public async Task<bool> RenewAsync(long epoch, TimeSpan lease, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand(
            "UPDATE leader_lease SET renewed_at = clock_timestamp(), expires_at = clock_timestamp() + $1 WHERE id = 1 AND epoch = $2 AND holder = $3");
        cmd.Parameters.AddWithValue(lease);
        cmd.Parameters.AddWithValue(epoch);
        cmd.Parameters.AddWithValue(Holder);
        return await cmd.ExecuteNonQueryAsync(ct) == 1;
    }

    /// <summary>Gives the lease up at once (a clean stop): a standby takes over on its next try instead of after the lease.</summary>
    public async Task ReleaseAsync(long epoch, CancellationToken ct)
    {
        await using var cmd = db.CreateCommand("UPDATE leader_lease SET expires_at = '-infinity', holder = '' WHERE id = 1 AND epoch = $1 AND holder = $2");
        cmd.Parameters.AddWithValue(epoch);
        cmd.Parameters.AddWithValue(Holder);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Puts the fence on tables that lack it (new since the last takeover).</summary>
    public async Task EnsureFenceAsync(CancellationToken ct)
    {
        await using var cmd = db.CreateCommand(FenceSql.CreateFunction + "\n" + FenceSql.AttachAll);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>The connection string a leader under <paramref name="epoch"/> writes with: every session carries its epoch.</summary>
    public static string Fenced(string connectionString, long epoch, TimeSpan idleInTransaction)
    {
        var csb = new NpgsqlConnectionStringBuilder(connectionString);
        var options = $"-c {FenceSql.EpochSetting}={epoch} -c idle_in_transaction_session_timeout={(long)idleInTransaction.TotalMilliseconds}";
        csb.Options = string.IsNullOrWhiteSpace(csb.Options) ? options : csb.Options + " " + options;
        return csb.ConnectionString;
    }
}
