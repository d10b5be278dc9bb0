using System.Globalization;
using System.Net.Http.Json;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Engine;

/// <summary>
/// Delivers allocation alerts to the configured webhook from the events table (an outbox): at least once, in order,
/// in batches, retried with exponential back-off while the receiver fails, and resumed after a restart from a cursor
/// kept in the database. Each alert carries its event id, so a receiver can drop a repeat.
/// </summary>
public sealed partial class WebhookSender(GpucDbFactory db, ServerOptions options, IHttpClientFactory http, TimeProvider time, ILogger<WebhookSender> log) : BackgroundService
{
    internal const string CursorKey = "webhook.cursor";
    private const string Kind = "allocation.alert";
    private readonly SemaphoreSlim _poke = new(0);
    private long _cursor;

    /// <summary>Wakes the sender: new alerts were written.</summary>
    public void Poke()
    {
        if (_poke.CurrentCount == 0)
        {
            _poke.Release();
        }
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.WebhookUrl is not null)
        {
            // The first time a webhook is configured, it gets the alerts from now on, not the whole history.
            await using var ctx = db.Create();
            var stored = await ctx.ServerState.AsNoTracking().FirstOrDefaultAsync(s => s.Key == CursorKey, cancellationToken);
            if (stored is not null)
            {
                _cursor = long.Parse(stored.Value, CultureInfo.InvariantCulture);
            }
            else
            {
                _cursor = await ctx.Events.Where(e => e.Kind == Kind || Rounds.RoundEvents.Kinds.Contains(e.Kind)).MaxAsync(e => (long?)e.Id, cancellationToken) ?? 0;
                ctx.ServerState.Add(new ServerStateRow { Key = CursorKey, Value = _cursor.ToString(CultureInfo.InvariantCulture) });
                await ctx.SaveChangesAsync(cancellationToken);
            }
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.WebhookUrl is not { } url)
        {
            return;
        }

        var client = http.CreateClient("webhook");
        var wait = options.WebhookRetryMin;
        while (!stoppingToken.IsCancellationRequested)
        {
            List<EventRow> batch;
            try
            {
                await using var ctx = db.Create();
                batch = await ctx.Events.AsNoTracking().Where(e => (e.Kind == Kind || Rounds.RoundEvents.Kinds.Contains(e.Kind)) && e.Id > _cursor).OrderBy(e => e.Id).Take(100).ToListAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogFailed(url, "reading alerts: " + e.Message);
                await DelayAsync(wait, stoppingToken);
                continue;
            }

            if (batch.Count == 0)
            {
                try
                {
                    await _poke.WaitAsync(TimeSpan.FromSeconds(5), stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            string? failure;
            try
            {
                var payload = batch.Select(e => new { id = e.Id, time = e.Time, kind = e.Kind, subject = e.Subject, project = e.Project, detail = e.Detail }).ToList();
                using var resp = await client.PostAsJsonAsync(url, payload, stoppingToken);
                failure = resp.IsSuccessStatusCode ? null : $"HTTP {(int)resp.StatusCode}";
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !stoppingToken.IsCancellationRequested)
            {
                failure = e.Message;
            }

            if (failure is not null)
            {
                LogRetry(url, failure, batch.Count, wait.TotalSeconds);
                await DelayAsync(wait, stoppingToken);
                wait = TimeSpan.FromTicks(Math.Min(options.WebhookRetryMax.Ticks, wait.Ticks * 2));
                continue;
            }

            wait = options.WebhookRetryMin;
            _cursor = batch[^1].Id;
            try
            {
                await using var ctx = db.Create();
                var row = await ctx.ServerState.FirstAsync(s => s.Key == CursorKey, stoppingToken);
                row.Value = _cursor.ToString(CultureInfo.InvariantCulture);
                await ctx.SaveChangesAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Delivered but not recorded: after a restart these alerts are sent again (at least once).
                LogFailed(url, "saving the delivery cursor: " + e.Message);
            }
        }
    }

    private async Task DelayAsync(TimeSpan wait, CancellationToken ct)
    {
        try
        {
            await Task.Delay(wait, time, ct);
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(EventId = 120, Level = LogLevel.Warning, Message = "webhook {Url} failed ({Reason}); {Count} alerts kept, retry in {Seconds} s")]
    private partial void LogRetry(string url, string reason, int count, double seconds);

    [LoggerMessage(EventId = 121, Level = LogLevel.Warning, Message = "webhook {Url}: {Reason}")]
    private partial void LogFailed(string url, string reason);
}
