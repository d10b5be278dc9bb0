using System.Globalization;
using System.Net;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using GpuCommons.Server.Security;
using GpuCommons.Server.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Forwarder;

namespace GpuCommons.Portal;

/// <summary>
/// The portal's door to a notebook session: <c>/sessions/{id}/…</c> is forwarded (YARP's <see cref="IHttpForwarder"/>,
/// WebSockets included) to the Jupyter that session's job reported, and to nothing else: the destination is always the
/// session row's own host and port, and only while its job runs the run that reported. Only the session's owner is let
/// through; anyone else, signed in or with a valid token of another tenant, gets 404, as for a session that does not exist.
/// The proxy authenticates to Jupyter with the session's secret (derived, never stored), keeps the browser's Host (so that
/// Jupyter's own Origin check of WebSockets holds) and strips the portal's cookies, so the user's portal credentials never
/// reach the notebook.
/// </summary>
public static class SessionProxy
{
    private static readonly HttpMessageInvoker Client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        ConnectTimeout = TimeSpan.FromSeconds(15),
        ActivityHeadersPropagator = null,
    });

    /// <summary>Whether a path is a session's proxied space (<c>/sessions/ID/…</c>), which the portal leaves uncompressed.</summary>
    public static bool IsProxyPath(PathString path) =>
        path.StartsWithSegments("/sessions", out var rest) && rest.Value is { Length: > 1 } r && char.IsAsciiDigit(r[1]);

    public static void Map(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Map("/sessions/{id:long}/{**rest}", ForwardAsync).ExcludeFromDescription();
    }

    private static async Task ForwardAsync(HttpContext ctx, long id, IHttpForwarder forwarder, GpucDbFactory factory, SessionSecrets secrets)
    {
        if (ctx.Items["caller"] is not Caller caller || await SessionsApi.OwnAsync(factory, caller.User, id, ctx.RequestAborted) is not { } own)
        {
            ctx.Response.StatusCode = 404;
            await ctx.Response.WriteAsync("Not found\n");
            return;
        }

        if (!ctx.Request.Path.Value!.EndsWith('/') && ctx.Request.RouteValues["rest"] is null)
        {
            ctx.Response.Redirect(FormattableString.Invariant($"/sessions/{id}/"));
            return;
        }

        var (session, job) = own;
        if (job.State != JobState.Running || session.Port is not { } port || session.Host is not { } host || session.ReportedAttempt != job.Attempt)
        {
            // The owner's own session, not (or no longer) reachable: say so and let the page retry.
            ctx.Response.StatusCode = 503;
            ctx.Response.Headers.RetryAfter = "2";
            ctx.Response.ContentType = "text/plain; charset=utf-8";
            await ctx.Response.WriteAsync(job.State is JobState.Pending or JobState.Running ? $"Session {id} is starting ({job.State.ToWire()}); this page can be reloaded in a moment.\n" : $"Session {id} has ended ({job.State.ToWire()}).\n");
            return;
        }

        var destination = "http://" + (host.Contains(':', StringComparison.Ordinal) ? "[" + host + "]" : host) + ":" + port.ToString(CultureInfo.InvariantCulture);
        var transformer = new SessionTransformer(secrets.Secret(id, job.Attempt));
        var error = await forwarder.SendAsync(ctx, destination, Client, new ForwarderRequestConfig { ActivityTimeout = TimeSpan.FromHours(1) }, transformer);
        if (error != ForwarderError.None && !ctx.Response.HasStarted)
        {
            ctx.Response.StatusCode = 502;
            await ctx.Response.WriteAsync($"Session {id} does not answer ({error}).\n");
        }
    }

    private sealed class SessionTransformer(string secret) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.Headers.Host = httpContext.Request.Host.Value;
            proxyRequest.Headers.Remove("Authorization");
            proxyRequest.Headers.TryAddWithoutValidation("Authorization", "token " + secret);
            proxyRequest.Headers.Remove("Cookie");
            var kept = httpContext.Request.Cookies
                .Where(c => c.Key is not (PortalSetup.CookieName or PortalSetup.CultureCookie or "gpuc_af") && !c.Key.StartsWith(".AspNetCore", StringComparison.Ordinal))
                .Select(c => c.Key + "=" + c.Value).ToList();
            if (kept.Count > 0)
            {
                proxyRequest.Headers.TryAddWithoutValidation("Cookie", string.Join("; ", kept));
            }
        }
    }
}
