using System.Text.Json;
using GpuCommons.Core;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// A standby's submissions: written to <c>job_inbox</c> (committed before any answer, with a NOTIFY to the leader), then
/// awaited until the leader has given them a job id. Exactly once: every inbox row has an idempotency key (the client's,
/// or one made here and sent back), and the leader submits it through the scheduler loop under that key, so a row taken
/// twice (a leader dying between the job's commit and marking the row) replays the same job.
/// </summary>
public sealed class StandbyInbox : IDisposable
{
    public const string Channel = "gpuc_inbox";

    private readonly NpgsqlDataSource? _db;
    private readonly GpucDbFactory _factory;
    private readonly LeadershipOptions _options;
    private readonly TimeProvider _time;

    public StandbyInbox(GpucDbFactory factory, ServerOptions options, TimeProvider time)
    {
        _factory = factory;
        _options = options.Leadership;
        _time = time;
        // The standby's own, unfenced connections: a standby writes nothing but submissions.
        _db = factory.Provider == "postgres" ? NpgsqlDataSource.Create(factory.ConnectionString) : null;
    }

    /// <summary>Inbox rows the leader has not yet taken (for /metrics); null where there is no inbox.</summary>
    public async Task<long?> OpenCountAsync(CancellationToken ct)
    {
        if (_db is null)
        {
            return null;
        }

        await using var cmd = _db.CreateCommand("SELECT count(*) FROM job_inbox WHERE taken_at IS NULL");
        return (long)(await cmd.ExecuteScalarAsync(ct))!;
    }

    public async Task<SubmitOutcome?> SubmitAsync(JobRow row, CancellationToken ct)
    {
        if (_db is null)
        {
            throw new InvalidOperationException("a single-instance server has no standby inbox");
        }

        row.IdempotencyKey ??= "standby-" + Guid.NewGuid().ToString("N");
        await using (var look = _factory.Create())
        {
            var existing = await look.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.User == row.User && j.IdempotencyKey == row.IdempotencyKey, ct);
            if (existing is not null)
            {
                return new SubmitOutcome(existing, true, null);
            }
        }

        long id;
        bool replayed;
        await using (var conn = await _db.OpenConnectionAsync(ct))
        await using (var tx = await conn.BeginTransactionAsync(ct))
        {
            // An upsert, so the row it returns exists even when the leader has just swept an older one of the same key away
            // (a plain INSERT … DO NOTHING then SELECT could find nothing).
            await using var insert = new NpgsqlCommand(
                "INSERT INTO job_inbox (user_name, idempotency_key, payload, received_by) VALUES (@u, @k, @p, @by) "
                + "ON CONFLICT (user_name, idempotency_key) DO UPDATE SET user_name = EXCLUDED.user_name RETURNING id, xmax = 0", conn, tx);
            insert.Parameters.AddWithValue("u", row.User);
            insert.Parameters.AddWithValue("k", row.IdempotencyKey);
            insert.Parameters.AddWithValue("p", JsonSerializer.Serialize(row));
            insert.Parameters.AddWithValue("by", Environment.MachineName + "/" + Environment.ProcessId);
            await using (var r = await insert.ExecuteReaderAsync(ct))
            {
                await r.ReadAsync(ct);
                id = r.GetInt64(0);
                replayed = !r.GetBoolean(1);
            }

            await using var notify = new NpgsqlCommand($"NOTIFY {Channel}", conn, tx);
            await notify.ExecuteNonQueryAsync(ct);
            await tx.CommitAsync(ct);
        }

        // Durable from here. Wait (briefly) for the leader to give it a job id.
        var started = _time.GetTimestamp();
        var wait = TimeSpan.FromMilliseconds(10);
        while (_time.GetElapsedTime(started) < _options.StandbySubmitWait)
        {
            await Task.Delay(wait, _time, ct);
            wait = TimeSpan.FromMilliseconds(Math.Min(100, wait.TotalMilliseconds * 1.5));
            await using var check = _db.CreateCommand("SELECT job_id, error FROM job_inbox WHERE id = $1");
            check.Parameters.AddWithValue(id);
            await using var r = await check.ExecuteReaderAsync(ct);
            if (!await r.ReadAsync(ct))
            {
                break;
            }

            if (!r.IsDBNull(1))
            {
                var error = JsonSerializer.Deserialize<InboxError>(r.GetString(1))!;
                return new SubmitOutcome(null, false, new SpecException(error.Field, error.Reason));
            }

            if (!r.IsDBNull(0))
            {
                var jobId = r.GetInt64(0);
                await using var db = _factory.Create();
                var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, ct);
                return new SubmitOutcome(job, replayed, null);
            }
        }

        return null;
    }

    public void Dispose() => _db?.Dispose();
}

/// <summary>Why the leader refused an inbox submission (the field and reason the API answers 400 with).</summary>
public sealed record InboxError(string Field, string Reason);
