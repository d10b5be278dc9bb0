using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// Starts the leader's work (the scheduler loop, reconciliation, webhooks, the standby inbox) when this server becomes the
/// leader, in order, and stops it in reverse when the server stops or loses the lease. Each service runs under a token that
/// fires when leadership is lost, so the loop stops at once instead of at the host's leisure. With SQLite the server leads
/// from the start and this is the plain start and stop of those services.
/// </summary>
public sealed partial class LeaderGate(ILeadership leadership, IReadOnlyList<IHostedService> services, ILogger<LeaderGate> log) : IHostedService
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<IHostedService> _started = [];
    private readonly SemaphoreSlim _gate = new(1, 1);
    private Task _run = Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!leadership.MultiInstance)
        {
            return StartAllAsync(cancellationToken);
        }

        _run = Task.Run(async () =>
        {
            try
            {
                await leadership.WaitForLeadershipAsync(_stopping.Token);
                await StartAllAsync(_stopping.Token);
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                LogStartFailed(e);
            }
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task StartAllAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            using var both = CancellationTokenSource.CreateLinkedTokenSource(ct, leadership.Lost);
            foreach (var s in services)
            {
                if (both.IsCancellationRequested)
                {
                    return;
                }

                // BackgroundService links its stopping token to this one: it fires when leadership is lost.
                await s.StartAsync(leadership.Lost);
                _started.Add(s);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await _run;
        await _gate.WaitAsync(cancellationToken);
        try
        {
            for (var i = _started.Count - 1; i >= 0; i--)
            {
                await _started[i].StopAsync(cancellationToken);
            }

            _started.Clear();
        }
        finally
        {
            _gate.Release();
        }
    }

    [LoggerMessage(EventId = 710, Level = LogLevel.Critical, Message = "leadership: the leader's services failed to start")]
    private partial void LogStartFailed(Exception e);
}
