using System.Globalization;
using System.Text;
using GpuCommons.Server.Api;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// What a standby does with a request. It serves itself what the database answers (reads of jobs, events, tenancy,
/// allocation requests, reservations, logs) and takes submissions into the inbox; everything else (writes, and reads that
/// need the engine: allocations' usage, the fleet, usage) goes to the leader named in the lease, so a client or load
/// balancer may send anything to any server. With no leader reachable it answers 503 with Retry-After.
/// </summary>
public static class StandbyGate
{
    private const string ServedHereKey = "gpuc.standby";
    private const string ProxiedHeader = "X-Gpuc-Forwarded-By";
    public const string ProxyClient = "gpuc-leader";

    /// <summary>True when this request is served by a standby from the database (no engine needed).</summary>
    public static bool IsServedHere(HttpContext ctx) => ctx.Items.ContainsKey(ServedHereKey);

    public static async Task InvokeAsync(HttpContext ctx, RequestDelegate next)
    {
        var leadership = ctx.RequestServices.GetRequiredService<ILeadership>();
        var path = ctx.Request.Path;
        if (leadership.IsLeader || path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz")
            || path.StartsWithSegments("/livez") || path.StartsWithSegments("/metrics"))
        {
            await next(ctx);
            return;
        }

        if (ServedFromDatabase(ctx.Request))
        {
            ctx.Items[ServedHereKey] = true;
            ctx.Response.Headers["X-Gpuc-Role"] = "standby";
            await next(ctx);
            return;
        }

        await ForwardAsync(ctx, leadership);
    }

    internal static bool ServedFromDatabase(HttpRequest req)
    {
        var p = req.Path.Value ?? "";
        if (HttpMethods.IsPost(req.Method))
        {
            return p is "/api/jobs" or "/api/jobs/";
        }

        if (!HttpMethods.IsGet(req.Method) && !HttpMethods.IsHead(req.Method))
        {
            return false;
        }

        if (!p.StartsWith("/api/", StringComparison.Ordinal) && p != "/api")
        {
            return p.StartsWith("/openapi/", StringComparison.Ordinal);
        }

        // Reads that need the engine or the backend's fleet.
        string[] engine = ["/api/allocations", "/api/partitions", "/api/nodes", "/api/usage", "/api/fleet"];
        foreach (var e in engine)
        {
            if (p == e || p.StartsWith(e + "/", StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private static async Task ForwardAsync(HttpContext ctx, ILeadership leadership)
    {
        var leader = leadership.LeaderUrl;
        if (leader is null || ctx.Request.Headers.ContainsKey(ProxiedHeader))
        {
            await UnavailableAsync(ctx, "this server is a standby and no leader is known yet; retry shortly (or send it to another server)");
            return;
        }

        var target = new Uri(new Uri(leader.TrimEnd('/') + "/"), ctx.Request.Path.Value!.TrimStart('/') + ctx.Request.QueryString.Value);
        using var req = new HttpRequestMessage(new HttpMethod(ctx.Request.Method), target);
        if (ctx.Request.ContentLength is > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
        {
            req.Content = new StreamContent(ctx.Request.Body);
        }

        foreach (var (k, v) in ctx.Request.Headers)
        {
            if (k.Equals("Host", StringComparison.OrdinalIgnoreCase) || k.Equals("Connection", StringComparison.OrdinalIgnoreCase)
                || k.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) || k.Equals("Keep-Alive", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!req.Headers.TryAddWithoutValidation(k, (IEnumerable<string>)v!))
            {
                req.Content?.Headers.TryAddWithoutValidation(k, (IEnumerable<string>)v!);
            }
        }

        req.Headers.TryAddWithoutValidation(ProxiedHeader, "standby");
        var http = ctx.RequestServices.GetRequiredService<IHttpClientFactory>().CreateClient(ProxyClient);
        HttpResponseMessage resp;
        try
        {
            resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ctx.RequestAborted);
        }
        catch (HttpRequestException e)
        {
            await UnavailableAsync(ctx, $"this server is a standby and the leader ({leader}) did not answer ({e.Message}); retry shortly");
            return;
        }

        using (resp)
        {
            ctx.Response.StatusCode = (int)resp.StatusCode;
            foreach (var (k, v) in resp.Headers.Concat(resp.Content.Headers))
            {
                if (k.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase) || k.Equals("Connection", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                ctx.Response.Headers[k] = v.ToArray();
            }

            ctx.Response.Headers["X-Gpuc-Role"] = "standby (forwarded to the leader)";
            await resp.Content.CopyToAsync(ctx.Response.Body, ctx.RequestAborted);
        }
    }

    private static async Task UnavailableAsync(HttpContext ctx, string detail)
    {
        ctx.Response.StatusCode = 503;
        ctx.Response.Headers.RetryAfter = "1";
        await Http.Problem(503, "standby", detail, null).ExecuteAsync(ctx);
    }

    /// <summary>/healthz: <c>leader</c> (200, scheduling), <c>standby</c> (200), or <c>starting</c> (503, taking over).</summary>
    public static IResult Health(ILeadership leadership, Coordinator coordinator) =>
        !leadership.IsLeader ? Results.Text(leadership.SteppedDown ? "stepping-down" : "standby", statusCode: leadership.SteppedDown ? 503 : 200)
        : coordinator.IsReady ? Results.Text("leader") : Results.Text("starting", statusCode: 503);

    /// <summary>/readyz: the role with the epoch and, on a standby, the leader it forwards to.</summary>
    public static IResult Ready(ILeadership leadership, Coordinator coordinator)
    {
        if (leadership.IsLeader)
        {
            return coordinator.IsReady
                ? Results.Text(string.Create(CultureInfo.InvariantCulture, $"leader epoch={leadership.Epoch}"))
                : Results.Text(string.Create(CultureInfo.InvariantCulture, $"starting epoch={leadership.Epoch}"), statusCode: 503);
        }

        return leadership.SteppedDown
            ? Results.Text("stepping-down", statusCode: 503)
            : Results.Text(string.Create(CultureInfo.InvariantCulture, $"standby epoch={leadership.ObservedEpoch} leader={leadership.LeaderUrl ?? "none"}"));
    }

    /// <summary>The leadership lines of /metrics.</summary>
    public static string Metrics(ILeadership leadership)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        sb.AppendLine("# HELP gpuc_leader 1 when this server leads (runs the scheduler, starts, cancels, charges), 0 on a standby.");
        sb.AppendLine("# TYPE gpuc_leader gauge");
        sb.Append(c, $"gpuc_leader {(leadership.IsLeader ? 1 : 0)}\n");
        sb.AppendLine("# HELP gpuc_leader_epoch The lease's fencing epoch (this server's own while it leads; 0 with SQLite).");
        sb.AppendLine("# TYPE gpuc_leader_epoch gauge");
        sb.Append(c, $"gpuc_leader_epoch {(leadership.IsLeader ? leadership.Epoch : leadership.ObservedEpoch)}\n");
        if (leadership.SecondsSinceTakeover is { } s)
        {
            sb.AppendLine("# HELP gpuc_seconds_since_takeover Seconds since the current leader took the lease (or since a single-instance server started).");
            sb.AppendLine("# TYPE gpuc_seconds_since_takeover gauge");
            sb.Append(c, $"gpuc_seconds_since_takeover {s:0.###}\n");
        }

        sb.AppendLine("# HELP gpuc_takeovers_total Times this server took the lease.");
        sb.AppendLine("# TYPE gpuc_takeovers_total counter");
        sb.Append(c, $"gpuc_takeovers_total {leadership.Takeovers}\n");
        return sb.ToString();
    }
}
