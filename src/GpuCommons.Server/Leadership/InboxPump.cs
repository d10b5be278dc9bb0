using System.Text.Json;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// The leader's side of the inbox: LISTENs for standbys' submissions (and looks every
/// <see cref="LeadershipOptions.InboxPollInterval"/> besides, for a missed notification or rows left by an earlier leader),
/// submits each through the scheduler loop under its idempotency key, and records the job id or the refusal on the row.
/// Its writes go through the fenced connection: a stale leader cannot mark a row.
/// </summary>
public sealed partial class InboxPump(Coordinator coordinator, GpucDbFactory factory, ServerOptions options, ILogger<InboxPump> log) : BackgroundService
{
    private const int Batch = 1000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await coordinator.Ready.WaitAsync(stoppingToken);
        var interval = options.Leadership.InboxPollInterval;
        var retention = options.Leadership.InboxRetention;
        // Taken rows are swept at a tenth of the retention (at least every second): the table stays bounded.
        var sweepEvery = TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerSecond, retention.Ticks / 10));
        var lastSweep = long.MinValue;
        NpgsqlConnection? listen = null;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    if (listen is null)
                    {
                        listen = new NpgsqlConnection(factory.ConnectionString);
                        await listen.OpenAsync(stoppingToken);
                        await using var cmd = new NpgsqlCommand($"LISTEN {StandbyInbox.Channel}", listen);
                        await cmd.ExecuteNonQueryAsync(stoppingToken);
                    }

                    while (await DrainAsync(stoppingToken) == Batch)
                    {
                    }

                    if (lastSweep == long.MinValue || TimeProvider.System.GetElapsedTime(lastSweep) >= sweepEvery)
                    {
                        lastSweep = TimeProvider.System.GetTimestamp();
                        await SweepAsync(retention, stoppingToken);
                    }

                    // A NOTIFY (or the interval) wakes it.
                    await listen.WaitAsync(interval, stoppingToken);
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception e)
                {
                    LogPumpFailed(e);
                    if (listen is not null)
                    {
                        await listen.DisposeAsync();
                        listen = null;
                    }

                    await Task.Delay(interval, stoppingToken);
                }
            }
        }
        finally
        {
            if (listen is not null)
            {
                await listen.DisposeAsync();
            }
        }
    }

    /// <summary>Takes up to one batch of open inbox rows; returns how many there were.</summary>
    private async Task<int> DrainAsync(CancellationToken ct)
    {
        var open = new List<(long Id, JobRow Row)>();
        await using (var db = factory.Create())
        {
            var conn = (NpgsqlConnection)db.Database.GetDbConnection();
            await conn.OpenAsync(ct);
            await using var cmd = new NpgsqlCommand($"SELECT id, payload FROM job_inbox WHERE taken_at IS NULL ORDER BY id LIMIT {Batch}", conn);
            await using var r = await cmd.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct))
            {
                open.Add((r.GetInt64(0), JsonSerializer.Deserialize<JobRow>(r.GetString(1))!));
            }
        }

        if (open.Count == 0)
        {
            return 0;
        }

        // All at once: the loop writes them as one group, as it does a burst of API submissions.
        var outcomes = await Task.WhenAll(open.Select(o => coordinator.SubmitAsync(o.Row)));
        await using (var db = factory.Create())
        {
            var conn = (NpgsqlConnection)db.Database.GetDbConnection();
            await conn.OpenAsync(ct);
            // One statement (the fence runs once), committed before the standbys are told.
            await using var cmd = new NpgsqlCommand(
                "UPDATE job_inbox i SET job_id = v.job_id, error = v.error, taken_at = now() FROM unnest(@ids, @jobs, @errors) AS v(id, job_id, error) WHERE i.id = v.id AND i.taken_at IS NULL",
                conn);
            cmd.Parameters.AddWithValue("ids", open.Select(o => o.Id).ToArray());
            cmd.Parameters.AddWithValue("jobs", outcomes.Select(o => o.Job?.Id).ToArray());
            cmd.Parameters.AddWithValue("errors", outcomes.Select(o => o.Error is { } e ? JsonSerializer.Serialize(new InboxError(e.Field, e.Reason)) : null).ToArray());
            await cmd.ExecuteNonQueryAsync(ct);
        }

        LogTaken(open.Count);
        return open.Count;
    }

    /// <summary>
    /// Deletes rows taken longer than <paramref name="retention"/> ago, through the fenced connection (a stale leader
    /// deletes nothing). Safe: a standby waits on a row for less than the retention, and a retry of a submission whose row
    /// is gone finds its job by the idempotency key (the standby looks there first, and the leader replays under the key).
    /// </summary>
    internal async Task<int> SweepAsync(TimeSpan retention, CancellationToken ct)
    {
        await using var db = factory.Create();
        var conn = (NpgsqlConnection)db.Database.GetDbConnection();
        await conn.OpenAsync(ct);
        await using var cmd = new NpgsqlCommand("DELETE FROM job_inbox WHERE taken_at < now() - @retention", conn);
        cmd.Parameters.AddWithValue("retention", retention);
        var deleted = await cmd.ExecuteNonQueryAsync(ct);
        if (deleted > 0)
        {
            LogSwept(deleted);
        }

        return deleted;
    }

    [LoggerMessage(EventId = 722, Level = LogLevel.Debug, Message = "leadership: removed {Count} taken rows from the standby inbox")]
    private partial void LogSwept(int count);

    [LoggerMessage(EventId = 720, Level = LogLevel.Information, Message = "leadership: took {Count} submissions from the standby inbox")]
    private partial void LogTaken(int count);

    [LoggerMessage(EventId = 721, Level = LogLevel.Warning, Message = "leadership: the standby inbox could not be read")]
    private partial void LogPumpFailed(Exception e);
}
