using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Sessions;

/// <summary>
/// Stops notebook sessions nobody uses, so their GPUs go back to the queue: every
/// <see cref="ServerOptions.SessionIdleCheckInterval"/> it asks each running session's Jupyter for its last activity
/// (<c>/api/status</c> <c>last_activity</c>, and <c>/api/kernels</c>: a busy kernel is activity), and cancels the job of
/// one idle for <see cref="ServerOptions.SessionIdleTimeout"/>. A Jupyter that does not answer counts from its last answer.
/// </summary>
public sealed partial class SessionIdleService(GpucDbFactory factory, Coordinator coordinator, SessionSecrets secrets, ServerOptions options,
    TimeProvider time, IHttpClientFactory http, ILogger<SessionIdleService> log) : BackgroundService
{
    public const string HttpClientName = "sessions";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await coordinator.Ready.WaitAsync(stoppingToken);
            using var timer = new PeriodicTimer(options.SessionIdleCheckInterval, time);
            do
            {
                try
                {
                    await CheckOnceAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogCheckFailed(e);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One pass over the running sessions; returns the ids it stopped.</summary>
    public async Task<IReadOnlyList<long>> CheckOnceAsync(CancellationToken ct)
    {
        await using var db = factory.Create();
        var sessions = await (from s in db.Sessions
                              join j in db.Jobs on s.JobId equals j.Id
                              where j.State == JobState.Running && s.Port != null && s.ReportedAttempt == j.Attempt && s.IdleStoppedAt == null
                              select new { Session = s, j.Attempt }).ToListAsync(ct);
        var stopped = new List<long>();
        var client = http.CreateClient(HttpClientName);
        foreach (var item in sessions)
        {
            var s = item.Session;
            var activity = await LastActivityAsync(client, s, secrets.Secret(s.JobId, item.Attempt), ct);
            var now = time.GetUtcNow();
            if (activity is { } seen && (s.LastActivity is null || seen > s.LastActivity))
            {
                s.LastActivity = seen > now ? now : seen;
            }

            if (now - (s.LastActivity ?? s.ReadyAt ?? now) >= options.SessionIdleTimeout)
            {
                s.IdleStoppedAt = now;
                db.Events.Add(new EventRow
                {
                    Time = now, Actor = "system", Kind = "session.idle_stopped", Subject = "job/" + s.JobId.ToString(CultureInfo.InvariantCulture),
                    Detail = $"no kernel activity since {s.LastActivity:u}",
                });
                await db.SaveChangesAsync(ct);
                await coordinator.CancelAsync(s.JobId, "idle-timeout");
                stopped.Add(s.JobId);
                LogIdleStopped(s.JobId, s.LastActivity);
            }
        }

        await db.SaveChangesAsync(ct);
        return stopped;
    }

    /// <summary>The latest activity Jupyter reports (now while a kernel is busy); null when it does not answer.</summary>
    private static async Task<DateTimeOffset?> LastActivityAsync(HttpClient client, SessionRow s, string secret, CancellationToken ct)
    {
        var baseUrl = FormattableString.Invariant($"http://{(s.Host!.Contains(':', StringComparison.Ordinal) ? "[" + s.Host + "]" : s.Host)}:{s.Port}/sessions/{s.JobId}/api/");
        try
        {
            DateTimeOffset? latest = null;
            using (var req = new HttpRequestMessage(HttpMethod.Get, baseUrl + "status"))
            {
                req.Headers.Authorization = new AuthenticationHeaderValue("token", secret);
                using var resp = await client.SendAsync(req, ct);
                if (!resp.IsSuccessStatusCode)
                {
                    return null;
                }

                using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync(ct));
                if (doc.RootElement.TryGetProperty("last_activity", out var la) && la.TryGetDateTimeOffset(out var t))
                {
                    latest = t;
                }
            }

            using (var req = new HttpRequestMessage(HttpMethod.Get, baseUrl + "kernels"))
            {
                req.Headers.Authorization = new AuthenticationHeaderValue("token", secret);
                using var resp = await client.SendAsync(req, ct);
                if (resp.IsSuccessStatusCode)
                {
                    using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync(ct));
                    foreach (var k in doc.RootElement.EnumerateArray())
                    {
                        if (k.TryGetProperty("execution_state", out var st) && st.GetString() == "busy")
                        {
                            return DateTimeOffset.MaxValue; // running a cell: active now
                        }

                        if (k.TryGetProperty("last_activity", out var la) && la.TryGetDateTimeOffset(out var t) && (latest is null || t > latest))
                        {
                            latest = t;
                        }
                    }
                }
            }

            return latest;
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or TaskCanceledException or InvalidOperationException)
        {
            return null;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Session idle check failed")]
    private partial void LogCheckFailed(Exception e);

    [LoggerMessage(Level = LogLevel.Information, Message = "Session {JobId} stopped: idle since {LastActivity}")]
    private partial void LogIdleStopped(long jobId, DateTimeOffset? lastActivity);
}
