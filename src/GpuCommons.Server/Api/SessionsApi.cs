using System.Globalization;
using System.Net;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Api;

internal static class SessionsApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var s = api.MapGroup("/sessions").WithTags("sessions");
        s.MapPost("/", StartAsync).Accepts<StartSessionRequest>("application/json").Produces<SessionDto>(201).ProducesProblem(400)
            .WithSummary("Start a notebook session (a job running Jupyter, reached through the portal at /sessions/ID/)");
        s.MapGet("/", ListAsync).Produces<List<SessionDto>>().WithSummary("Your sessions, newest first");
        s.MapGet("/{id:long}", ShowAsync).Produces<SessionDto>().ProducesProblem(404).WithSummary("One of your sessions");
        s.MapDelete("/{id:long}", StopAsync).Produces<SessionDto>(202).ProducesProblem(404).WithSummary("Stop one of your sessions");
        s.MapPost("/{id:long}/ready", ReadyAsync).Accepts<SessionReadyRequest>("application/json").Produces(204).ProducesProblem(404).ProducesProblem(409)
            .WithSummary("Called by the session's job, with its session secret as bearer token: where Jupyter listens");
    }

    /// <summary>The job's own report, authenticated by its session secret instead of an API token.</summary>
    public static bool IsReport(HttpRequest request) =>
        HttpMethods.IsPost(request.Method) && request.Path.Value is { } p && p.StartsWith("/api/sessions/", StringComparison.Ordinal) && p.EndsWith("/ready", StringComparison.Ordinal);

    private static async Task<IResult> StartAsync(HttpContext ctx, ServerOptions options, Coordinator coordinator, GpucDbFactory factory, TimeProvider time)
    {
        var caller = ctx.Caller();
        var req = await Http.ReadAsync<StartSessionRequest>(ctx, options);
        var kind = req.Kind ?? JupyterLauncher.Kind;
        if (kind != JupyterLauncher.Kind)
        {
            throw ApiException.Field("kind", "must be jupyter");
        }

        var submit = new SubmitJobRequest
        {
            Project = req.Project,
            Name = "jupyter",
            Partition = req.Partition,
            Gpus = req.Gpus,
            Walltime = req.Walltime,
            Command = JupyterLauncher.Command(),
            Image = req.Image,
            Mounts = req.Mounts,
            WorkingDirectory = req.WorkingDirectory,
            Requeueable = false,
        };
        if (caller.Role == Security.Caller.Reviewer)
        {
            throw ApiException.Forbidden("reviewers do not submit jobs");
        }

        var row = JobsApi.ToRow(submit, caller, null, options);
        var outcome = await coordinator.SubmitAsync(row);
        if (outcome.Error is { } err)
        {
            throw ApiException.Field(err.Field, err.Reason);
        }

        var job = outcome.Job!;
        await using var db = factory.Create();
        var session = new SessionRow { JobId = job.Id, Kind = kind, User = job.User, Project = job.Project, Created = time.GetUtcNow() };
        db.Sessions.Add(session);
        db.Events.Add(new EventRow { Time = session.Created, Actor = caller.User, Kind = "session.started", Subject = "job/" + job.Id.ToString(CultureInfo.InvariantCulture), Detail = kind });
        await db.SaveChangesAsync(ctx.RequestAborted);
        var dto = ToDto(session, job);
        return Results.Created(dto.Url, dto);
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, GpucDbFactory factory)
    {
        var caller = ctx.Caller();
        await using var db = factory.Create();
        var rows = await db.Sessions.AsNoTracking().Where(s => s.User == caller.User).OrderByDescending(s => s.JobId).Take(200).ToListAsync(ctx.RequestAborted);
        var ids = rows.Select(r => r.JobId).ToList();
        var jobs = await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).ToDictionaryAsync(j => j.Id, ctx.RequestAborted);
        return Results.Ok(rows.Where(r => jobs.ContainsKey(r.JobId)).Select(r => ToDto(r, jobs[r.JobId])).ToList());
    }

    /// <summary>The caller's own session and its job; 404 for anyone else's (a session is its owner's alone).</summary>
    internal static async Task<(SessionRow Session, JobRow Job)?> OwnAsync(GpucDbFactory factory, string user, long id, CancellationToken ct)
    {
        await using var db = factory.Create();
        var session = await db.Sessions.AsNoTracking().FirstOrDefaultAsync(s => s.JobId == id, ct);
        if (session is null || session.User != user)
        {
            return null;
        }

        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct);
        return job is null ? null : (session, job);
    }

    private static async Task<IResult> ShowAsync(HttpContext ctx, GpucDbFactory factory, long id) =>
        await OwnAsync(factory, ctx.Caller().User, id, ctx.RequestAborted) is { } own
            ? Results.Ok(ToDto(own.Session, own.Job))
            : throw ApiException.NotFound($"session {id}");

    private static async Task<IResult> StopAsync(HttpContext ctx, GpucDbFactory factory, Coordinator coordinator, long id)
    {
        var caller = ctx.Caller();
        if (await OwnAsync(factory, caller.User, id, ctx.RequestAborted) is not { } own)
        {
            throw ApiException.NotFound($"session {id}");
        }

        if (own.Job.State is JobState.Pending or JobState.Running)
        {
            await coordinator.CancelAsync(id, caller.User);
        }

        return await OwnAsync(factory, caller.User, id, ctx.RequestAborted) is { } now
            ? Results.Accepted(now.Session.JobId.ToString(CultureInfo.InvariantCulture), ToDto(now.Session, now.Job))
            : throw ApiException.NotFound($"session {id}");
    }

    /// <summary>
    /// The job says where its Jupyter listens. Accepted once per run, with that run's secret, while the job runs, for a
    /// host that is the job's own node (loopback on the local backend) and an unprivileged port: the portal's proxy then
    /// reaches exactly that host and port and nothing else. Anything else is 404 (nothing is revealed) or 409 (reported).
    /// </summary>
    private static async Task<IResult> ReadyAsync(HttpContext ctx, GpucDbFactory factory, SessionSecrets secrets, ServerOptions options, TimeProvider time,
        Backends.IJobBackend backend, long id)
    {
        var header = ctx.Request.Headers.Authorization.ToString();
        var secret = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : "";
        await using var db = factory.Create();
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ctx.RequestAborted);
        if (job is null || job.State != JobState.Running || secret.Length == 0 || !secrets.Matches(id, job.Attempt, secret)
            || !JupyterLauncher.IsLauncher(JobMapping.Command(job)))
        {
            throw ApiException.NotFound($"session {id}");
        }

        var req = await Http.ReadAsync<SessionReadyRequest>(ctx, options);
        if (req.Port is not { } port || port is < 1024 or > 65535)
        {
            throw ApiException.Field("port", "must be 1024–65535");
        }

        var host = (req.Host ?? "").Trim();
        var nodes = (job.Placement ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split(':')[0]).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var loopback = IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip);
        var allowed = backend.Name == "local" ? loopback : nodes.Contains(host) || nodes.Contains(host.Split('.')[0]);
        if (!allowed)
        {
            throw ApiException.Field("host", backend.Name == "local" ? "must be a loopback address: the session runs on this machine" : $"must be the job's node ({string.Join(", ", nodes)})");
        }

        var session = await db.Sessions.FirstOrDefaultAsync(s => s.JobId == id, ctx.RequestAborted);
        if (session is null)
        {
            session = new SessionRow { JobId = id, Kind = JupyterLauncher.Kind, User = job.User, Project = job.Project, Created = time.GetUtcNow() };
            db.Sessions.Add(session);
        }

        if (session.ReportedAttempt == job.Attempt)
        {
            throw new ApiException(409, "conflict", "session", $"session {id} has already reported for this run");
        }

        var now = time.GetUtcNow();
        session.Host = host;
        session.Port = port;
        session.SecretHash = SessionSecrets.Hash(secret);
        session.ReportedAttempt = job.Attempt;
        session.ReadyAt = now;
        session.LastActivity = now;
        await db.SaveChangesAsync(ctx.RequestAborted);
        return Results.NoContent();
    }

    internal static SessionDto ToDto(SessionRow s, JobRow j) => new(
        s.JobId, s.Kind, s.Project, s.User, j.State, j.State == JobState.Running && s.ReportedAttempt == j.Attempt && s.Port is not null,
        "/sessions/" + s.JobId.ToString(CultureInfo.InvariantCulture) + "/", s.Created, s.ReadyAt, s.LastActivity, s.IdleStoppedAt, j.Gpus, j.WalltimeSeconds, j.Outcome);
}
