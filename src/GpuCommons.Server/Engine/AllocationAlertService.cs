using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Engine;

/// <summary>An allocation as the alert check needs it: which alerts were sent (bits) and when it ends.</summary>
internal sealed record AllocationAlertState(string Id, string Project, int AlertsSent, DateTimeOffset End, double Granted, double Spent);

/// <summary>
/// Raises each allocation's alerts once: 50 %, 80 % and 100 % of its released GPU-hours spent, expiring within
/// <see cref="ServerOptions.ExpiryWarning"/>, expired. Takes the allocations and their usage from the loop every few seconds;
/// the loop records the alerts (the bits on the allocation and the audit events), and the webhook sender delivers them.
/// </summary>
public sealed partial class AllocationAlertService(Coordinator co, ServerOptions options, TimeProvider time, ILogger<AllocationAlertService> log,
    WebhookSender? webhook = null) : BackgroundService
{
    /// <summary>How often allocations are checked.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await co.Ready.WaitAsync(stoppingToken);
        }
        catch (Exception) when (!co.IsReady)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CheckOnceAsync();
                await Task.Delay(Interval, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogFailed(e);
                await Task.Delay(Interval, time, stoppingToken);
            }
        }
    }

    /// <summary>One check of every allocation; true when any alert was raised.</summary>
    internal async Task<bool> CheckOnceAsync()
    {
        var now = time.GetUtcNow();
        var alerts = new List<(string, int, string)>();
        foreach (var a in await co.AllocationsAsync())
        {
            var (granted, spent) = (a.Granted, a.Spent);
            var fraction = granted > 0 ? spent / granted : 0;
            void Raise(int bit, string what)
            {
                if ((a.AlertsSent & (1 << bit)) == 0)
                {
                    alerts.Add((a.Id, bit, what));
                }
            }

            if (fraction >= 0.5)
            {
                Raise(0, $"50% used ({spent:0.##} of {granted:0.##} GPU-hours)");
            }

            if (fraction >= 0.8)
            {
                Raise(1, $"80% used ({spent:0.##} of {granted:0.##} GPU-hours)");
            }

            if (fraction >= 1.0)
            {
                Raise(2, $"100% used ({spent:0.##} of {granted:0.##} GPU-hours): new jobs are not admitted");
            }

            if (a.End > now && a.End - now <= options.ExpiryWarning)
            {
                Raise(3, $"expires at {a.End:u}");
            }

            if (a.End <= now)
            {
                Raise(4, $"expired at {a.End:u}");
            }
        }

        if (alerts.Count == 0 || !await co.RecordAllocationAlertsAsync(alerts))
        {
            return false;
        }

        webhook?.Poke();
        return true;
    }

    [LoggerMessage(EventId = 112, Level = LogLevel.Error, Message = "allocation alert check failed")]
    private partial void LogFailed(Exception e);
}
