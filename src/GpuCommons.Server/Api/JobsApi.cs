using System.Text.Json;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Api;

/// <summary>A job submission. Every field but project, gpus, walltime and command is optional.</summary>
public sealed class SubmitJobRequest
{
    public string? Project { get; set; }
    public string? Name { get; set; }
    public string? Partition { get; set; }
    public double? Gpus { get; set; }
    public int? Nodes { get; set; }
    public int? GpusPerNode { get; set; }
    /// <summary>Walltime: seconds, <c>90m</c>, <c>2h</c>, <c>1d</c>, <c>hh:mm[:ss]</c> or <c>d-hh[:mm[:ss]]</c> (minutes and seconds 0–59, hours after days 0–23).</summary>
    public string? Walltime { get; set; }
    /// <summary><c>preemptible</c>, <c>normal</c> (default) or <c>high</c>.</summary>
    public string? Priority { get; set; }
    public bool? Checkpointable { get; set; }
    public bool? Requeueable { get; set; }
    public List<string>? Command { get; set; }
    public string? WorkingDirectory { get; set; }
    public Dictionary<string, string>? Environment { get; set; }
    /// <summary>CPU cores per GPU (a share of a GPU gets that share); not with <see cref="CpusPerNode"/>. Default: the partition's.</summary>
    public int? CpusPerGpu { get; set; }
    /// <summary>CPU cores on each node of the job.</summary>
    public int? CpusPerNode { get; set; }
    /// <summary>Memory per GPU: <c>16G</c>, <c>500M</c>, <c>2T</c>, a number alone is MiB; not with <see cref="MemPerNode"/>. Default: the partition's.</summary>
    public string? MemPerGpu { get; set; }
    /// <summary>Memory on each node of the job, as <see cref="MemPerGpu"/>.</summary>
    public string? MemPerNode { get; set; }
    /// <summary>GPU models the job may run on (any of them).</summary>
    public List<string>? GpuModels { get; set; }
    /// <summary>Node features every node of the job must have, joined by <c>&amp;</c> (Slurm's <c>--constraint</c>).</summary>
    public string? Constraint { get; set; }
}

/// <summary>A job as the API shows it.</summary>
public sealed record JobDto(
    long Id, string Name, string Project, string User, string? Partition, double Gpus, int? Nodes, int? GpusPerNode,
    long WalltimeSeconds, string Priority, string State, DateTimeOffset SubmitTime, DateTimeOffset? StartTime, DateTimeOffset? EndTime,
    string? Placement, string? Allocation, int? ExitCode, string? Outcome, int Attempt, IReadOnlyList<string> Command,
    string? Reason = null, string? ReasonText = null, DateTimeOffset? EstimatedStart = null, bool? CancelRequested = null)
{
    /// <summary>Cores per GPU the job asked for; null: per node or the partition's default.</summary>
    public int? CpusPerGpu { get; init; }
    public int? CpusPerNode { get; init; }
    public long? MemoryMiBPerGpu { get; init; }
    public long? MemoryMiBPerNode { get; init; }
    public IReadOnlyList<string>? GpuModels { get; init; }
    public IReadOnlyList<string>? Features { get; init; }

    public static JobDto From(JobRow r, JobView? view = null) => new(
        r.Id, r.Name, r.Project, r.User, r.Partition, r.Gpus, r.Nodes, r.GpusPerNode, r.WalltimeSeconds, r.Priority, r.State,
        r.SubmitTime, r.StartTime, r.EndTime, r.Placement, r.AllocationId, r.ExitCode, r.Outcome, r.Attempt, JobMapping.Command(r),
        view is { State: JobState.Pending } ? PendingReasons.Code(view.Reason) : null,
        view is { State: JobState.Pending } ? PendingReasons.Describe(view.Reason) : null,
        view?.EstimatedStart,
        r.CancelRequested ? true : null)
    {
        CpusPerGpu = r.CpusPerGpu,
        CpusPerNode = r.CpusPerNode,
        MemoryMiBPerGpu = r.MemoryMiBPerGpu,
        MemoryMiBPerNode = r.MemoryMiBPerNode,
        GpuModels = r.GpuModels?.Split(','),
        Features = r.Features?.Split('&'),
    };
}

internal static class JobsApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var jobs = api.MapGroup("/jobs").WithTags("jobs");
        jobs.MapPost("/", SubmitAsync).Accepts<SubmitJobRequest>("application/json").Produces<JobDto>(201).Produces<JobDto>(200).ProducesProblem(400)
            .WithSummary("Submit a job (durable before the 201; Idempotency-Key header makes retries safe)");
        jobs.MapGet("/", ListAsync).Produces<Page<JobDto>>().WithSummary("List jobs you can see, oldest first; page with ?after=&limit=");
        jobs.MapGet("/{id:long}", ShowAsync).Produces<JobDto>().ProducesProblem(404).WithSummary("A job, with the reason and estimated start while pending");
        jobs.MapPost("/{id:long}/cancel", CancelAsync).Produces<JobDto>(202).ProducesProblem(404).WithSummary("Cancel a job");
        jobs.MapDelete("/{id:long}", CancelAsync).Produces<JobDto>(202).ProducesProblem(404).WithSummary("Cancel a job");
        jobs.MapGet("/{id:long}/logs", LogsAsync).Produces<string>(200, "text/plain").ProducesProblem(404)
            .WithSummary("A job's output from ?offset= (stream=stdout|stderr); X-Log-Offset gives the next offset");
    }

    private static async Task<IResult> SubmitAsync(HttpContext ctx, ServerOptions options, Coordinator coordinator)
    {
        var caller = ctx.Caller();
        if (caller.Role == Security.Caller.Reviewer)
        {
            throw ApiException.Forbidden("reviewers do not submit jobs");
        }

        var req = await Http.ReadAsync<SubmitJobRequest>(ctx, options);
        var key = ctx.Request.Headers["Idempotency-Key"].ToString();
        if (key.Length > 200)
        {
            throw new ApiException(400, "invalid request", "Idempotency-Key", "Idempotency-Key: at most 200 characters");
        }

        var row = ToRow(req, caller, key.Length > 0 ? key : null);
        if (coordinator.Fleet is { } fleet && ResourceDemand.CheckFleet(JobMapping.ToSpec(row), fleet) is { } never)
        {
            throw ApiException.Field(ApiField(never.Field), never.Reason); // no node could ever give it these cores, memory, model or features
        }

        var outcome = await coordinator.SubmitAsync(row);
        if (outcome.Error is { } err)
        {
            throw ApiException.Field(err.Field, err.Reason);
        }

        var dto = JobDto.From(outcome.Job!);
        if (outcome.Replayed)
        {
            if (!InputRules.SameSubmission(row, outcome.Job!))
            {
                throw new ApiException(422, "idempotency key reused", "Idempotency-Key",
                    $"Idempotency-Key: '{key}' was already used for job {outcome.Job!.Id} with a different request; a retry must send the same body, a new job needs a new key");
            }

            ctx.Response.Headers["Idempotent-Replayed"] = "true";
            return Results.Ok(dto);
        }

        return Results.Created(InputRules.Location("jobs", dto.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)), dto);
    }

    internal static JobRow ToRow(SubmitJobRequest req, Security.Caller caller, string? key)
    {
        if (string.IsNullOrWhiteSpace(req.Project))
        {
            throw ApiException.Field("project", "is required");
        }

        if (!caller.IsAdmin && !caller.InProject(req.Project))
        {
            // Same answer for a project that does not exist and one you are not in: no names leak.
            throw ApiException.Field("project", $"no project '{req.Project}' that you can submit to");
        }

        if (req.Gpus is null)
        {
            throw ApiException.Field("gpus", "is required");
        }

        if (req.Walltime is null)
        {
            throw ApiException.Field("walltime", "is required");
        }

        if (!Http.TryParseDuration(req.Walltime, out var walltime, out var why))
        {
            throw ApiException.Field("walltime", why);
        }

        if (req.Command is null || req.Command.Count == 0)
        {
            throw ApiException.Field("command", "is required: a non-empty array of strings");
        }

        for (var i = 0; i < req.Command.Count; i++)
        {
            if (req.Command[i] is null)
            {
                throw ApiException.Field($"command[{i}]", "must be a string");
            }
        }

        if (req.Environment is not null)
        {
            foreach (var (k, v) in req.Environment)
            {
                if (v is null)
                {
                    throw ApiException.Field($"environment.{k}", "values must be strings");
                }
            }
        }

        InputRules.CheckJobName(req.Name);
        InputRules.CheckCommand(req.Command, req.Environment, req.WorkingDirectory);

        var priority = req.Priority ?? "normal";
        if (priority is not ("preemptible" or "normal" or "high"))
        {
            throw ApiException.Field("priority", "must be preemptible, normal or high");
        }

        if (priority == "high" && !caller.IsOperator)
        {
            throw ApiException.Field("priority", "high priority is for operators");
        }

        var row = new JobRow
        {
            Project = req.Project,
            User = caller.User,
            Name = req.Name ?? InputRules.DefaultJobName(req.Command[0]),
            Partition = req.Partition,
            Gpus = req.Gpus.Value,
            Nodes = req.Nodes,
            GpusPerNode = req.GpusPerNode,
            WalltimeSeconds = (long)walltime.TotalSeconds,
            Priority = priority,
            Checkpointable = req.Checkpointable ?? false,
            Requeueable = req.Requeueable ?? true,
            Command = JsonSerializer.Serialize(req.Command),
            WorkingDirectory = req.WorkingDirectory,
            Environment = req.Environment is null ? null : JsonSerializer.Serialize(req.Environment),
            State = "pending",
            IdempotencyKey = key,
            CpusPerGpu = req.CpusPerGpu,
            CpusPerNode = req.CpusPerNode,
            MemoryMiBPerGpu = req.MemPerGpu is null ? null : ResourceRequest.ParseMemoryMiB(req.MemPerGpu, "memPerGpu"),
            MemoryMiBPerNode = req.MemPerNode is null ? null : ResourceRequest.ParseMemoryMiB(req.MemPerNode, "memPerNode"),
            GpuModels = req.GpuModels is null ? null : string.Join(',', ResourceRequest.Names(req.GpuModels, "gpuModels", "GPU model", ResourceRequest.IsFeatureName)),
            Features = req.Constraint is null ? null : string.Join('&', ResourceRequest.ParseConstraint(req.Constraint, "constraint")),
        };

        // Checks that need no fleet, before the job reaches the scheduler loop.
        if (JobMapping.ToSpec(row) is { } spec && spec.Check() is { } error)
        {
            throw ApiException.Field(ApiField(error.Field), error.Reason);
        }

        return row;
    }

    /// <summary>The request's name for a field the model names otherwise.</summary>
    private static string ApiField(string field) => field switch
    {
        "memoryMiBPerGpu" => "memPerGpu",
        "memoryMiBPerNode" => "memPerNode",
        "features" => "constraint",
        _ => field,
    };

    private static async Task<IResult> ListAsync(HttpContext ctx, ServerOptions options, GpucDbFactory factory,
        string? state, string? project, string? user, long? after, int? limit)
    {
        var caller = ctx.Caller();
        if (!caller.SeesAllJobs && caller.Projects.Count == 0)
        {
            if (caller.Role == Security.Caller.Reviewer)
            {
                throw ApiException.Forbidden("reviewers see allocation requests, not jobs");
            }
        }

        var take = Http.Limit(limit, options);
        await using var db = factory.Create();
        var q = db.Jobs.AsNoTracking();
        if (!caller.SeesAllJobs)
        {
            var mine = caller.Projects.Keys.ToList();
            q = q.Where(j => mine.Contains(j.Project));
        }

        if (project is not null)
        {
            q = q.Where(j => j.Project == project);
        }

        if (user is not null)
        {
            q = q.Where(j => j.User == user);
        }

        if (state is not null)
        {
            var states = state.Split(',');
            if (states.Any(s => s is not ("pending" or "running" or "finished" or "failed" or "cancelled")))
            {
                throw ApiException.Field("state", "must be pending, running, finished, failed or cancelled (comma-separated)");
            }

            q = states.Length == 1 ? q.Where(j => j.State == states[0]) : q.Where(j => states.Contains(j.State));
        }

        if (after is not null)
        {
            q = q.Where(j => j.Id > after);
        }

        var rows = await q.OrderBy(j => j.Id).Take(take + 1).ToListAsync(ctx.RequestAborted);
        string? next = null;
        if (rows.Count > take)
        {
            rows.RemoveAt(rows.Count - 1);
            next = rows[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return Results.Ok(new Page<JobDto>(rows.Select(r => JobDto.From(r)).ToList(), next));
    }

    private static async Task<JobRow> VisibleJobAsync(HttpContext ctx, GpucDbFactory factory, long id)
    {
        var caller = ctx.Caller();
        await using var db = factory.Create();
        var row = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ctx.RequestAborted);
        if (row is null || !caller.CanSeeJobsOf(row.Project))
        {
            throw ApiException.NotFound($"job {id}");
        }

        return row;
    }

    private static async Task<IResult> ShowAsync(HttpContext ctx, GpucDbFactory factory, Coordinator coordinator, long id)
    {
        var row = await VisibleJobAsync(ctx, factory, id);
        var view = row.State is "pending" or "running" ? await coordinator.GetViewAsync(id) : null;
        if (view is null && row.State == "pending" && coordinator.GetStartRetry(id) is { } retry)
        {
            // Held out of the queue after its start failed in the infrastructure.
            var next = retry.NextTry == DateTimeOffset.MaxValue ? "it is queued again" : $"the next try is at {retry.NextTry:yyyy-MM-dd HH:mm:ss}Z";
            return Results.Ok(JobDto.From(row) with
            {
                Reason = "StartFailed",
                ReasonText = $"its start failed {retry.Failures} of {coordinator.MaxStartTries} times (last: {retry.LastError}); {next}",
            });
        }

        return Results.Ok(JobDto.From(row, view));
    }

    private static async Task<IResult> CancelAsync(HttpContext ctx, GpucDbFactory factory, Coordinator coordinator, long id)
    {
        var caller = ctx.Caller();
        var row = await VisibleJobAsync(ctx, factory, id);
        if (!(caller.IsOperator || caller.IsPi(row.Project) || row.User == caller.User))
        {
            throw ApiException.Forbidden("only the job's owner, the project's PI or an operator may cancel it");
        }

        if (row.State is not ("pending" or "running"))
        {
            throw new ApiException(409, "conflict", "state", $"job {id} has already ended ({row.State})");
        }

        await coordinator.CancelAsync(id, caller.User);
        await using var db = factory.Create();
        var now = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == id, ctx.RequestAborted);
        return Results.Accepted($"/api/jobs/{id}", JobDto.From(now));
    }

    private static async Task<IResult> LogsAsync(HttpContext ctx, GpucDbFactory factory, ServerOptions options, long id, string? stream, long? offset, int? limit)
    {
        var caller = ctx.Caller();
        if (caller.Role == Security.Caller.Reviewer)
        {
            throw ApiException.Forbidden("reviewers do not read job logs");
        }

        var row = await VisibleJobAsync(ctx, factory, id);
        stream ??= "stdout";
        if (stream is not ("stdout" or "stderr"))
        {
            throw ApiException.Field("stream", "must be stdout or stderr");
        }

        if (offset is < 0)
        {
            throw ApiException.Field("offset", "must be zero or more");
        }

        var max = limit ?? 1024 * 1024;
        if (max is < 1 or > 16 * 1024 * 1024)
        {
            throw ApiException.Field("limit", "must be between 1 and 16 MiB");
        }

        var path = stream == "stdout" ? row.StdoutPath : row.StderrPath;
        ctx.Response.Headers["X-Job-State"] = row.State;
        var from = offset ?? 0;
        if (path is null || !File.Exists(path))
        {
            ctx.Response.Headers["X-Log-Offset"] = from.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Results.Text("", "text/plain");
        }

        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        from = Math.Min(from, fs.Length);
        fs.Seek(from, SeekOrigin.Begin);
        var buf = new byte[(int)Math.Min(max, fs.Length - from)];
        var n = await fs.ReadAtLeastAsync(buf, buf.Length, false, ctx.RequestAborted);
        ctx.Response.Headers["X-Log-Offset"] = (from + n).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Bytes(buf.AsMemory(0, n).ToArray(), "text/plain; charset=utf-8");
    }
}
