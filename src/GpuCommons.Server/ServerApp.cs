using System.Text.Json;
using GpuCommons.Backends;
using GpuCommons.Core;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Leadership;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server;

/// <summary>Builds and starts the control-plane server: used by <c>gpuc serve</c> and by the tests.</summary>
public static class ServerApp
{
    /// <summary>Builds the web application. Call <see cref="InitialiseAsync"/> before starting it.</summary>
    public static WebApplication Build(ServerOptions options, IJobBackend backend, Action<WebApplicationBuilder>? configure = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backend);
        options.Validate();
        CreatePrivateDirectory(options.DataDir);
        CreatePrivateDirectory(options.LogDirectory);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = typeof(ServerApp).Assembly.GetName().Name, ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = Math.Max(8L * 1024 * 1024, options.MaxBodyBytes * 2L);
            k.Limits.MaxRequestHeadersTotalSize = 64 * 1024;
        });
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton<Sessions.SessionSecrets>();
        builder.Services.AddSingleton(time ?? TimeProvider.System);
        builder.Services.AddSingleton(new GpucDbFactory(options.Provider, options.ResolveConnectionString()));
        // Leadership (Leadership/): PostgreSQL runs a lease, and only its holder runs the leader's services below; SQLite is
        // single-instance (a second server on the same file is refused) and always leads.
        AddLeadership(builder, options, backend);
        builder.Services.AddSingleton<ServerMetrics>();
        builder.Services.AddSingleton<TokenService>();
        builder.Services.AddSingleton<IPosixDirectory, NssPosixDirectory>();
        builder.Services.AddSingleton<PosixAccounts>();
        builder.Services.AddHttpClient("oidc", c => c.Timeout = TimeSpan.FromSeconds(15));
        builder.Services.AddSingleton<OidcIssuers>();
        builder.Services.AddSingleton<Onboarding>();
        builder.Services.AddHttpClient("webhook", c => c.Timeout = TimeSpan.FromSeconds(10));
        builder.Services.AddSingleton<WebhookSender>();
        builder.Services.AddSingleton<Coordinator>();
        builder.Services.AddSingleton<AllocationAlertService>();
        // Reconciliation with the cluster manager, where the backend has one: an IBackendReconciler registered by the host.
        builder.Services.AddSingleton(sp => new ReconciliationService(sp.GetRequiredService<Coordinator>(), sp.GetRequiredService<GpucDbFactory>(),
            options, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ReconciliationService>>(),
            sp.GetService<IBackendReconciler>() is { } reconciler ? new FencedReconciler(reconciler, sp.GetRequiredService<ILeadership>()) : null));
        builder.Services.AddSingleton<GpuCommons.Server.Rounds.AwardQuotaService>();
        // The leader's services, started when this server leads (at once with SQLite) and stopped when it stops leading.
        builder.Services.AddHostedService(sp => new LeaderGate(sp.GetRequiredService<ILeadership>(),
            [
                sp.GetRequiredService<WebhookSender>(), sp.GetRequiredService<Coordinator>(), sp.GetRequiredService<AllocationAlertService>(), sp.GetRequiredService<ReconciliationService>(),
                sp.GetRequiredService<GpuCommons.Server.Rounds.AwardQuotaService>(),
                .. options.Provider == "postgres" ? new IHostedService[] { ActivatorUtilities.CreateInstance<InboxPump>(sp) } : [],
            ],
            sp.GetRequiredService<ILogger<LeaderGate>>()));
        builder.Services.AddHttpClient(Sessions.SessionIdleService.HttpClientName, c => c.Timeout = TimeSpan.FromSeconds(10));
        builder.Services.AddHostedService<Sessions.SessionIdleService>();
        builder.Services.AddProblemDetails();
        builder.Services.AddOpenApi(o => o.AddDocumentTransformer((doc, _, _) =>
        {
            doc.Info.Title = "GpuCommons control plane";
            doc.Info.Description = "Tenants, allocations, jobs, fleet and accounting of a shared GPU center. Authenticate with 'Authorization: Bearer <token>'.";
            return Task.CompletedTask;
        }));
        builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
            o.SerializerOptions.AllowDuplicateProperties = false;
        });
        builder.Logging.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("System.Net.Http", LogLevel.Warning);
        configure?.Invoke(builder);

        var app = builder.Build();
        _ = app.Services.GetService<SqliteInstanceLock>(); // owned by the container from here: released when the app is disposed
        app.Use(ErrorsAsProblems);
        app.Use(StandbyGate.InvokeAsync);
        app.Use(Authenticate);
        app.MapOpenApi();
        app.MapGet("/healthz", StandbyGate.Health).ExcludeFromDescription();
        app.MapGet("/readyz", StandbyGate.Ready).ExcludeFromDescription();
        app.MapGet("/livez", () => Results.Text("ok")).ExcludeFromDescription();
        app.MapGet("/metrics", (ServerMetrics m, ILeadership l) => Results.Text(m.Render() + StandbyGate.Metrics(l), "text/plain; version=0.0.4")).ExcludeFromDescription();
        var api = app.MapGroup("/api");
        JobsApi.Map(api);
        TenancyApi.Map(api);
        QuotasApi.Map(api);
        AllocationsApi.Map(api);
        FleetApi.Map(api);
        SignInApi.Map(api);
        CallsApi.Map(api);
        ProposalsApi.Map(api);
        SessionsApi.Map(api);
        return app;
    }

    private static void AddLeadership(WebApplicationBuilder builder, ServerOptions options, IJobBackend backend)
    {
        if (options.Provider == "postgres")
        {
            // First hosted service: started first, stopped last (it releases the lease after the leader's work stopped).
            builder.Services.AddSingleton<LeaseLeadership>();
            builder.Services.AddSingleton<ILeadership>(sp => sp.GetRequiredService<LeaseLeadership>());
            builder.Services.AddHostedService(sp => sp.GetRequiredService<LeaseLeadership>());
        }
        else
        {
            // Taken now (a second server fails here, with the message); made by a factory so the container disposes it.
            var instanceLock = SqliteInstanceLock.Acquire(options.ResolveConnectionString());
            builder.Services.AddSingleton(_ => instanceLock);
            builder.Services.AddSingleton<ILeadership, SingleInstanceLeadership>();
        }

        // Every backend start and cancel checks the lease first (Leadership/FencedBackend.cs).
        // The scheduler loop sees the backend through JobLaunchBackend, which adds each job's container and session details at start.
        builder.Services.AddSingleton(sp => Engine.JobLaunchBackend.Wrap(FencedBackend.Wrap(backend, sp.GetRequiredService<ILeadership>()), sp));
        builder.Services.AddSingleton<StandbyInbox>();
        builder.Services.AddSingleton<JobIntake>();
        builder.Services.AddHttpClient(StandbyGate.ProxyClient, c => c.Timeout = TimeSpan.FromSeconds(100))
            .ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler { AllowAutoRedirect = false, UseCookies = false });
    }

    /// <summary>Creates or migrates the database, and seeds the first admin (and the demo tenancy) into an empty one.</summary>
    /// <returns>The first admin's token when it was created now; null when the database already had users.</returns>
    public static async Task<string?> InitialiseAsync(WebApplication app, CancellationToken ct = default)
    {
        var options = app.Services.GetRequiredService<ServerOptions>();
        var factory = app.Services.GetRequiredService<GpucDbFactory>();
        var time = app.Services.GetRequiredService<TimeProvider>();
        await factory.MigrateAsync(ct);
        await using var db = factory.Create();
        if (await db.Users.AnyAsync(ct))
        {
            return null;
        }

        var now = time.GetUtcNow();
        db.Users.Add(new UserRow { Name = "admin", Role = Caller.Admin, Created = now });
        var adminToken = TokenService.Issue(db, "admin", now);
        db.Events.Add(new EventRow { Time = now, Actor = "system", Kind = "user.created", Subject = "user/admin", Detail = "first admin" });
        var demoTokens = new Dictionary<string, string>();
        if (options.SeedDemo)
        {
            db.Organisations.Add(new OrganisationRow { Name = "University 01", Type = "university", Created = now });
            db.Organisations.Add(new OrganisationRow { Name = "Startup 001", Type = "startup", Created = now });
            db.Projects.Add(new ProjectRow { Name = "demo", Organisation = "University 01", Description = "demo project", Created = now });
            db.Projects.Add(new ProjectRow { Name = "startup-demo", Organisation = "Startup 001", Description = "demo startup project", Created = now });
            foreach (var (user, role) in new[] { ("alice", Caller.UserRole), ("bob", Caller.UserRole), ("carol", Caller.Reviewer), ("oscar", Caller.Operator), ("sam", Caller.UserRole) })
            {
                db.Users.Add(new UserRow { Name = user, Role = role, Created = now });
                demoTokens[user] = TokenService.Issue(db, user, now);
            }

            // Run as root, the demo's people get accounts of their own (gpuc-NAME), so their jobs never run as root.
            await app.Services.GetRequiredService<PosixAccounts>().MapDemoAsync(db.Users.Local.ToList(), db.Projects.Local.ToList(), ct);
            db.Memberships.Add(new MembershipRow { Project = "demo", User = "alice", Role = "pi" });
            db.Memberships.Add(new MembershipRow { Project = "demo", User = "bob", Role = "member" });
            db.Memberships.Add(new MembershipRow { Project = "startup-demo", User = "sam", Role = "pi" });
            db.Allocations.Add(new AllocationRow { Id = "demo-2026", Project = "demo", AwardedGpuHours = 10_000, Start = now.AddMinutes(-1), End = now.AddMonths(6), Created = now });
            db.Allocations.Add(new AllocationRow { Id = "startup-demo-2026", Project = "startup-demo", AwardedGpuHours = 1_000, Start = now.AddMinutes(-1), End = now.AddMonths(4), Created = now });
            db.Events.Add(new EventRow { Time = now, Actor = "system", Kind = "demo.seeded", Subject = "tenancy", Detail = "organisations University 01, Startup 001; projects demo, startup-demo" });
        }

        await db.SaveChangesAsync(ct);
        var tokenFile = Path.Combine(options.DataDir, "admin-token");
        await File.WriteAllTextAsync(tokenFile, adminToken + "\n", ct);
        TryRestrict(tokenFile);
        if (demoTokens.Count > 0)
        {
            var demoFile = Path.Combine(options.DataDir, "demo-tokens.json");
            await File.WriteAllTextAsync(demoFile, JsonSerializer.Serialize(demoTokens, new JsonSerializerOptions { WriteIndented = true }), ct);
            TryRestrict(demoFile);
        }

        return adminToken;
    }

    /// <summary>
    /// The data directory holds the database, the tokens and the job logs: only the server's account may enter it (0700),
    /// also when it existed before with a wider mode.
    /// </summary>
    private static void CreatePrivateDirectory(string path)
    {
        Directory.CreateDirectory(path);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    private static void TryRestrict(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    private static async Task ErrorsAsProblems(HttpContext ctx, RequestDelegate next)
    {
        try
        {
            await next(ctx);
        }
        catch (Exception e) when (!ctx.Response.HasStarted)
        {
            var (status, title, detail, field) = e switch
            {
                ApiException a => (a.Status, a.Title, a.Detail, a.FieldName),
                SpecException s => (400, "invalid request", s.Message, s.Field),
                BadHttpRequestException b => (b.StatusCode, "invalid request", b.Message, FieldOf(b.Message)),
                OperationCanceledException when ctx.RequestAborted.IsCancellationRequested => (499, "client closed request", null, null),
                _ when NoLongerLeading(ctx, e) => (503, "not leading",
                    "this server stopped leading while it handled the request; another server leads: retry (a submission with the same Idempotency-Key is never doubled)", null),
                _ => (500, "internal error", "the server failed; see its log", null),
            };
            if (status == 500)
            {
                ctx.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("GpuCommons.Server.Api").LogError(e, "request {Method} {Path} failed", ctx.Request.Method, ctx.Request.Path);
            }

            ctx.Response.Clear();
            ctx.Response.StatusCode = status;
            if (status == 503)
            {
                ctx.Response.Headers.RetryAfter = "1";
            }

            await Http.Problem(status, title, detail, field).ExecuteAsync(ctx);
        }
    }

    /// <summary>
    /// The request failed because this server lost the lease while handling it: a write the fence refused (it did not
    /// commit), a backend call the fence refused, or the leader's work stopped under it (stepping down, shutting down). The
    /// client should go to the server that leads now; its retry is safe (submissions carry an idempotency key).
    /// </summary>
    private static bool NoLongerLeading(HttpContext ctx, Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is FencedException || (x is Npgsql.PostgresException p && p.MessageText.StartsWith(FenceSql.StaleMessage, StringComparison.Ordinal)))
            {
                return true;
            }
        }

        if (e is OperationCanceledException)
        {
            var leadership = ctx.RequestServices.GetService<ILeadership>();
            var lifetime = ctx.RequestServices.GetService<IHostApplicationLifetime>();
            return leadership is { SteppedDown: true } || leadership is { MultiInstance: true, Lost.IsCancellationRequested: true } || lifetime?.ApplicationStopping.IsCancellationRequested == true;
        }

        return false;
    }

    private static string? FieldOf(string message)
    {
        // 'Failed to bind parameter "int? limit" from "abc".'
        var i = message.IndexOf('"', StringComparison.Ordinal);
        var j = i >= 0 ? message.IndexOf('"', i + 1) : -1;
        if (j <= i)
        {
            return null;
        }

        var p = message[(i + 1)..j];
        var space = p.LastIndexOf(' ');
        return space >= 0 ? p[(space + 1)..] : p;
    }

    private static async Task Authenticate(HttpContext ctx, RequestDelegate next)
    {
        // Sign-in itself (the issuers, gpuc login's exchange) needs no token.
        if (!ctx.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal) || ctx.Request.Path.StartsWithSegments("/api/auth", StringComparison.Ordinal) || SessionsApi.IsReport(ctx.Request))
        {
            // A session job's report carries its own secret, checked by the endpoint, not an API token.
            await next(ctx);
            return;
        }

        var header = ctx.Request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        Caller? caller = null;
        if (header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && header.Length > prefix.Length && header.Length < 512)
        {
            caller = await ctx.RequestServices.GetRequiredService<TokenService>().ResolveAsync(header[prefix.Length..].Trim(), ctx.RequestAborted);
        }

        if (caller is null)
        {
            ctx.Response.StatusCode = 401;
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await Http.Problem(401, "unauthorized", "a valid bearer token is required (it may have expired or been revoked: sign in again with gpuc login)", null).ExecuteAsync(ctx);
            return;
        }

        if (caller.ReadOnly && !HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method)
            && !(HttpMethods.IsDelete(ctx.Request.Method) && ctx.Request.Path.Equals("/api/tokens/current", StringComparison.Ordinal)))
        {
            ctx.Response.StatusCode = 403;
            await Http.Problem(403, "forbidden", "this token's scope is read-only: it reads, and changes nothing", null).ExecuteAsync(ctx);
            return;
        }

        var co = ctx.RequestServices.GetRequiredService<Coordinator>();
        if (!co.IsReady && !StandbyGate.IsServedHere(ctx))
        {
            ctx.Response.StatusCode = 503;
            await Http.Problem(503, "starting", "the server is rebuilding its state; retry shortly", null).ExecuteAsync(ctx);
            return;
        }

        ctx.Items["caller"] = caller;
        await next(ctx);
    }
}
