using GpuCommons.Backends;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using GpuCommons.Server.Sessions;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Engine;

/// <summary>
/// Sits between the scheduler loop and the real backend and completes each job at its start with what is stored beside
/// it: its container (<see cref="BackendJob.Container"/>, from the job's image and mounts) and, for a session job, where
/// and with which secret to report back (<c>GPUC_SESSION_URL</c>, <c>GPUC_SESSION_SECRET</c>, <c>GPUC_SESSION_BIND</c>).
/// The secret is derived at start (<see cref="SessionSecrets"/>), never stored. Everything else passes through unchanged.
/// </summary>
public class JobLaunchBackend(IJobBackend inner, GpucDbFactory db, SessionSecrets secrets, ServerOptions options, IServiceProvider services) : IJobBackend
{
    /// <summary>The backend this one completes jobs for.</summary>
    public IJobBackend Inner { get; } = inner;

    /// <summary>Wraps <paramref name="backend"/>, keeping its optional <see cref="INodeControl"/>.</summary>
    public static IJobBackend Wrap(IJobBackend backend, IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(services);
        var db = services.GetRequiredService<GpucDbFactory>();
        var secrets = services.GetRequiredService<SessionSecrets>();
        var options = services.GetRequiredService<ServerOptions>();
        return backend is INodeControl
            ? new WithNodeControl(backend, db, secrets, options, services)
            : new JobLaunchBackend(backend, db, secrets, options, services);
    }

    public string Name => Inner.Name;

    public string RunScope => Inner.RunScope;

    public Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken) => Inner.DiscoverAsync(cancellationToken);

    public async Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        await using var ctx = db.Create();
        var extra = await ctx.Jobs.AsNoTracking().Where(j => j.Id == job.JobId).Select(j => new { j.Image, j.Mounts }).FirstOrDefaultAsync(cancellationToken);
        // A session job is known by its command (the session row may be written a moment after the job was accepted).
        var session = JupyterLauncher.IsLauncher(job.Command);
        if (extra is not null && extra.Image is not null)
        {
            job = job with { Container = ContainerRules.ToSpec(extra.Image, extra.Mounts) };
        }

        if (session)
        {
            var env = new Dictionary<string, string>(job.Environment, StringComparer.Ordinal)
            {
                ["GPUC_SESSION_URL"] = CallbackBase() + "/api/sessions/" + job.JobId.ToString(System.Globalization.CultureInfo.InvariantCulture) + "/ready",
                ["GPUC_SESSION_SECRET"] = secrets.Secret(job.JobId, job.Attempt),
                // A local job shares the server's machine: loopback keeps the notebook off the network. A cluster node must listen where the server reaches it.
                ["GPUC_SESSION_BIND"] = Inner.Name == "local" ? "127.0.0.1" : "0.0.0.0",
            };
            job = job with { Environment = env };
        }

        return await Inner.StartAsync(job, cancellationToken);
    }

    /// <summary>The server's URL as a job reaches it: <see cref="ServerOptions.SessionCallbackUrl"/>, else its first listening address.</summary>
    private string CallbackBase()
    {
        if (options.SessionCallbackUrl is { Length: > 0 } url)
        {
            return url.TrimEnd('/');
        }

        var address = services.GetService<IServer>()?.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:8080";
        return address.Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal).Replace("://[::]", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://+", "://127.0.0.1", StringComparison.Ordinal).Replace("://*", "://127.0.0.1", StringComparison.Ordinal).TrimEnd('/');
    }

    public Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken) => Inner.CancelAsync(jobId, grace, cancellationToken);

    public Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken) => Inner.PollAsync(cancellationToken);

    public Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken) => Inner.ReattachAsync(jobId, handle, cancellationToken);

    public Task<JobGpuUsage?> GetGpuUsageAsync(long jobId, CancellationToken cancellationToken) => Inner.GetGpuUsageAsync(jobId, cancellationToken);

    /// <summary>The host owns the backend: it is not disposed here.</summary>
    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return ValueTask.CompletedTask;
    }

    private sealed class WithNodeControl(IJobBackend inner, GpucDbFactory db, SessionSecrets secrets, ServerOptions options, IServiceProvider services)
        : JobLaunchBackend(inner, db, secrets, options, services), INodeControl
    {
        public Task DrainNodeAsync(string node, string reason, CancellationToken cancellationToken) => ((INodeControl)Inner).DrainNodeAsync(node, reason, cancellationToken);

        public Task ResumeNodeAsync(string node, CancellationToken cancellationToken) => ((INodeControl)Inner).ResumeNodeAsync(node, cancellationToken);
    }
}
