using GpuCommons.Server.Engine;
using Microsoft.Extensions.Hosting;

namespace GpuCommons.Portal;

/// <summary>Computes the first report snapshot once the scheduler is ready, so no page waits for it.</summary>
internal sealed class ReportsWarmup(Reports reports, Coordinator co) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await co.Ready.WaitAsync(stoppingToken);
            await Task.Delay(TimeSpan.FromSeconds(2), stoppingToken);
            await reports.GetAsync();
        }
        catch (OperationCanceledException)
        {
        }
    }
}
