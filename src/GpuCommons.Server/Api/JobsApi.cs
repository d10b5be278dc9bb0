using System.Text.Json;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Api;

/// <summary>Builds the API's <see cref="JobDto"/> from a row and, while live, the engine's view of it.</summary>
internal static class JobDtos
{
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
        Image = r.Image,
        Mounts = string.IsNullOrEmpty(r.Mounts) ? null : JsonSerializer.Deserialize<List<string>>(r.Mounts),
        Array = r.ArrayIndices is null ? null : new ArrayDto(r.ArrayIndices, r.ArrayMaxRunning, ArrayIndices.TryParse(r.ArrayIndices, out _)?.Count ?? 0, null, null, null, null),
        ArrayJobId = r.ArrayJobId,
        ArrayTaskId = r.ArrayTaskId,
        Dependency = r.Dependency is null ? null : Dependencies.Parse(r.Dependency),
    };
}

internal static class JobsApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var jobs = api.MapGroup("/jobs").WithTags("jobs");
        jobs.MapPost("/", SubmitAsync).Accepts<SubmitJobRequest>("application/json").Produces<JobDto>(201).Produces<JobDto>(200).ProducesProblem(400)
            .WithSummary("Submit a job (durable before the 201; Idempotency-Key header makes retries safe)");
        jobs.MapGet("/", ListAsync).Produces<Page<JobDto>>()
            .WithSummary("List jobs you can see, oldest first (?order=desc: newest first); page with ?after=&limit=; pending jobs carry their reason");
        jobs.MapGet("/{id:long}", ShowAsync).Produces<JobDto>().ProducesProblem(404).WithSummary("A job, with the reason and estimated start while pending");
        jobs.MapPost("/{id:long}/cancel", CancelAsync).Produces<JobDto>(202).ProducesProblem(404).WithSummary("Cancel a job");
        jobs.MapDelete("/{id:long}", CancelAsync).Produces<JobDto>(202).ProducesProblem(404).WithSummary("Cancel a job");
        jobs.MapGet("/{id:long}/tasks/{task:long}", ShowTaskAsync).Produces<JobDto>().ProducesProblem(404)
            .WithSummary("One task of an array (ID_TASK): its own job once expanded, else the array's pending remainder for it");
        jobs.MapPost("/{id:long}/tasks/{task:long}/cancel", CancelTaskAsync).Produces<JobDto>(202).ProducesProblem(404).WithSummary("Cancel one task of an array");
        jobs.MapDelete("/{id:long}/tasks/{task:long}", CancelTaskAsync).Produces<JobDto>(202).ProducesProblem(404).WithSummary("Cancel one task of an array");
        jobs.MapGet("/{id:long}/logs", LogsAsync).Produces<string>(200, "text/plain").ProducesProblem(404)
            .WithSummary("A job's output from ?offset= (stream=stdout|stderr); X-Log-Offset gives the next offset");
    }

    private static async Task<IResult> SubmitAsync(HttpContext ctx, ServerOptions options, Leadership.JobIntake intake, Coordinator coordinator, GpucDbFactory factory)
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

        var row = ToRow(req, caller, key.Length > 0 ? key : null, options);
        await CheckDependencyJobsAsync(row, caller, factory, ctx.RequestAborted);
        if (coordinator.IsReady && coordinator.Fleet is { } fleet && ResourceDemand.CheckFleet(JobMapping.ToSpec(row), fleet) is { } never)
        {
            throw ApiException.Field(ApiField(never.Field), never.Reason); // no node could ever give it these cores, memory, model or features
        }

        // Leadership seam: the scheduler loop on the leader, the database inbox on a standby (null: taken, no job id yet).
        var outcome = await intake.SubmitAsync(row, ctx.RequestAborted);
        if (outcome is null)
        {
            ctx.Response.Headers["Idempotency-Key"] = row.IdempotencyKey;
            return Results.Json(new SubmitAccepted(SubmitAccepted.AcceptedState, row.IdempotencyKey!, "taken by a standby and stored; no leader has given it a job id yet: send the same request with this Idempotency-Key again to learn it"), statusCode: 202);
        }

        if (outcome.Error is { } err)
        {
            throw ApiException.Field(err.Field, err.Reason);
        }

        var dto = JobDtos.From(outcome.Job!);
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

    internal static JobRow ToRow(SubmitJobRequest req, Security.Caller caller, string? key, ServerOptions? options = null)
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

        var (arrayIndices, arrayMax) = CheckArray(req.Array, options ?? new ServerOptions());
        var dependency = CheckDependency(req.Dependency);
        var row = new JobRow
        {
            ArrayIndices = arrayIndices,
            ArrayMaxRunning = arrayMax,
            Dependency = dependency,
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
            State = JobState.Pending,
            IdempotencyKey = key,
            CpusPerGpu = req.CpusPerGpu,
            CpusPerNode = req.CpusPerNode,
            MemoryMiBPerGpu = req.MemPerGpu is null ? null : ResourceRequest.ParseMemoryMiB(req.MemPerGpu, "memPerGpu"),
            MemoryMiBPerNode = req.MemPerNode is null ? null : ResourceRequest.ParseMemoryMiB(req.MemPerNode, "memPerNode"),
            GpuModels = req.GpuModels is null ? null : string.Join(',', ResourceRequest.Names(req.GpuModels, "gpuModels", "GPU model", ResourceRequest.IsFeatureName)),
            Features = req.Constraint is null ? null : string.Join('&', ResourceRequest.ParseConstraint(req.Constraint, "constraint")),
            Image = req.Image,
            Mounts = ContainerRules.Check(req.Image, req.Mounts, options ?? new ServerOptions()),
        };

        // Checks that need no fleet, before the job reaches the scheduler loop.
        if (JobMapping.ToSpec(row) is { } spec && spec.Check() is { } error)
        {
            throw ApiException.Field(ApiField(error.Field), error.Reason);
        }

        return row;
    }

    private static (string? Indices, int? MaxRunning) CheckArray(ArrayRequest? array, ServerOptions options)
    {
        if (array is null)
        {
            return (null, null);
        }

        if (ArrayIndices.TryParse(array.Indices, out var why) is not { } indices)
        {
            throw ApiException.Field("array.indices", why!);
        }

        if (indices.Count > options.MaxArrayTasks)
        {
            throw ApiException.Field("array.indices", $"{indices.Count:N0} tasks; an array has at most {options.MaxArrayTasks:N0}");
        }

        if (array.MaxRunning is < 1)
        {
            throw ApiException.Field("array.maxRunning", "must be 1 or more (how many tasks may run at once)");
        }

        return (array.Indices!.Trim(), array.MaxRunning);
    }

    private static string? CheckDependency(List<DependencyRequest>? dependency)
    {
        if (dependency is null)
        {
            return null;
        }

        if (dependency.Count == 0)
        {
            throw ApiException.Field("dependency", "give at least one condition, or leave the field out");
        }

        if (dependency.Count > 100)
        {
            throw ApiException.Field("dependency", "at most 100 conditions");
        }

        var list = new List<DependencyCondition>();
        for (var i = 0; i < dependency.Count; i++)
        {
            var d = dependency[i] ?? throw ApiException.Field($"dependency[{i}]", "must be an object with type (and jobs)");
            if (d.Type is null || !Dependencies.Types.Contains(d.Type))
            {
                throw ApiException.Field($"dependency[{i}].type", $"'{d.Type}' is not afterok, afterany, afternotok or singleton");
            }

            if (d.Type == "singleton")
            {
                if (d.Jobs is { Count: > 0 })
                {
                    throw ApiException.Field($"dependency[{i}].jobs", "singleton takes no jobs");
                }

                list.Add(new DependencyCondition("singleton", null));
                continue;
            }

            if (d.Jobs is null || d.Jobs.Count == 0)
            {
                throw ApiException.Field($"dependency[{i}].jobs", $"{d.Type} needs the ids of the jobs it waits for");
            }

            if (d.Jobs.Count > 1000 || d.Jobs.Any(j => j < 1))
            {
                throw ApiException.Field($"dependency[{i}].jobs", "job ids are positive numbers, at most 1000 of them");
            }

            list.Add(new DependencyCondition(d.Type, d.Jobs.Distinct().ToList()));
        }

        return Dependencies.Serialize(list);
    }

    /// <summary>
    /// Every job a dependency names must exist and be one the caller can see; any other answers the same 400 as a job that
    /// does not exist (no other tenant's job ids leak). A dependency can only name jobs that exist, so it can make no cycle.
    /// </summary>
    private static async Task CheckDependencyJobsAsync(JobRow row, Security.Caller caller, GpucDbFactory factory, CancellationToken ct)
    {
        if (row.Dependency is null)
        {
            return;
        }

        var conditions = Dependencies.Parse(row.Dependency);
        var ids = Dependencies.JobIds(conditions).Distinct().ToList();
        if (ids.Count == 0)
        {
            return;
        }

        await using var db = factory.Create();
        var found = await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).Select(j => new { j.Id, j.Project }).ToDictionaryAsync(j => j.Id, j => j.Project, ct);
        for (var i = 0; i < conditions.Count; i++)
        {
            foreach (var id in conditions[i].Jobs ?? [])
            {
                if (!found.TryGetValue(id, out var project) || !caller.CanSeeJobsOf(project))
                {
                    throw ApiException.Field($"dependency[{i}].jobs", $"no job {id} that you can see");
                }
            }
        }
    }

    /// <summary>The request's name for a field the model names otherwise.</summary>
    private static string ApiField(string field) => field switch
    {
        "memoryMiBPerGpu" => "memPerGpu",
        "memoryMiBPerNode" => "memPerNode",
        "features" => "constraint",
        _ => field,
    };

    private static async Task<IResult> ListAsync(HttpContext ctx, ServerOptions options, GpucDbFactory factory, Coordinator coordinator,
        string? state, string? project, string? user, long? after, int? limit, string? order)
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
            var states = new List<JobState>();
            foreach (var name in state.Split(','))
            {
                if (!JobStateNames.TryParse(name, out var one))
                {
                    throw ApiException.Field("state", "must be pending, running, finished, failed or cancelled (comma-separated)");
                }

                states.Add(one);
            }

            var first = states[0];
            q = states.Count == 1 ? q.Where(j => j.State == first) : q.Where(j => states.Contains(j.State));
        }

        if (order is not (null or "asc" or "desc"))
        {
            throw ApiException.Field("order", "must be asc (oldest first, the default) or desc (newest first)");
        }

        var newestFirst = order == "desc";
        if (after is not null)
        {
            q = newestFirst ? q.Where(j => j.Id < after) : q.Where(j => j.Id > after);
        }

        var rows = await (newestFirst ? q.OrderByDescending(j => j.Id) : q.OrderBy(j => j.Id)).Take(take + 1).ToListAsync(ctx.RequestAborted);
        string? next = null;
        if (rows.Count > take)
        {
            rows.RemoveAt(rows.Count - 1);
            next = rows[^1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        // Why each pending job waits, as squeue's REASON column: one pass over the engine for the whole page.
        var pending = rows.Where(r => r.State == JobState.Pending).Select(r => r.Id).ToList();
        var views = pending.Count == 0 || !coordinator.IsReady ? [] : pending.Select(coordinator.View.GetJob).OfType<JobView>().ToDictionary(v => v.JobId);
        return Results.Ok(new Page<JobDto>(rows.Select(r => WithReason(r, views.GetValueOrDefault(r.Id), coordinator)).ToList(), next));
    }

    /// <summary>A job with why it waits: the engine's reason, or StartFailed while it is held out after a failed start.</summary>
    private static JobDto WithReason(JobRow row, JobView? view, Coordinator coordinator)
    {
        if (row.State == JobState.Pending && view is null && coordinator.IsReady)
        {
            var v = coordinator.View;
            if (row.IsArray && v.Arrays.TryGetValue(row.Id, out var sum))
            {
                var dto = JobDtos.From(row);
                return dto with
                {
                    Array = dto.Array! with { PendingTasks = sum.Remainder, LiveTasks = sum.Live, FinishedTasks = sum.Ok, NotOkTasks = sum.NotOk },
                    Reason = sum.Remainder.Length == 0 ? null : sum.Reason,
                    ReasonText = sum.Reason switch
                    {
                        "Dependency" => "the array waits for its dependency: " + v.Holds.GetValueOrDefault(row.Id, ""),
                        "JobArrayTaskLimit" => $"{sum.Live} tasks are pending or running, the array's limit (%{row.ArrayMaxRunning})",
                        _ => "its next tasks wait: " + sum.Reason,
                    },
                };
            }

            if (v.Holds.TryGetValue(row.Id, out var why))
            {
                return JobDtos.From(row) with { Reason = "Dependency", ReasonText = "waits for its dependency" + (why.Length > 0 ? ": " + why : "") };
            }
        }

        if (view is null && row.State == JobState.Pending && coordinator.GetStartRetry(row.Id) is { } retry)
        {
            var next = retry.NextTry == DateTimeOffset.MaxValue ? "it is queued again" : $"the next try is at {retry.NextTry:yyyy-MM-dd HH:mm:ss}Z";
            return JobDtos.From(row) with
            {
                Reason = "StartFailed",
                ReasonText = $"its start failed {retry.Failures} of {coordinator.MaxStartTries} times (last: {retry.LastError}); {next}",
            };
        }

        return JobDtos.From(row, view);
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
        // A standby has no engine (Leadership seam): the job as stored, without reason and estimate.
        var view = row.State is JobState.Pending or JobState.Running && coordinator.IsReady ? coordinator.View.GetJob(id) : null;
        return Results.Ok(WithReason(row, view, coordinator));
    }

    private static async Task<IResult> CancelAsync(HttpContext ctx, GpucDbFactory factory, Coordinator coordinator, long id)
    {
        var caller = ctx.Caller();
        var row = await VisibleJobAsync(ctx, factory, id);
        if (!(caller.IsOperator || caller.IsPi(row.Project) || row.User == caller.User))
        {
            throw ApiException.Forbidden("only the job's owner, the project's PI or an operator may cancel it");
        }

        if (row.State is not (JobState.Pending or JobState.Running))
        {
            throw new ApiException(409, "conflict", "state", $"job {id} has already ended ({row.State.ToWire()})");
        }

        await coordinator.CancelAsync(id, caller.User);
        await using var db = factory.Create();
        var now = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == id, ctx.RequestAborted);
        return Results.Accepted($"/api/jobs/{id}", JobDtos.From(now));
    }

    /// <summary>The array (visible to the caller) and its task's row if the task has one; 404 for a task the array does not have.</summary>
    private static async Task<(JobRow Array, JobRow? Task)> VisibleTaskAsync(HttpContext ctx, GpucDbFactory factory, long id, long task)
    {
        var array = await VisibleJobAsync(ctx, factory, id);
        if (!array.IsArray || ArrayIndices.TryParse(array.ArrayIndices, out _) is not { } indices || indices.PositionOf(task) < 0)
        {
            throw ApiException.NotFound($"job {id}_{task}");
        }

        await using var db = factory.Create();
        var row = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.ArrayJobId == id && j.ArrayTaskId == task, ctx.RequestAborted);
        return (array, row);
    }

    private static async Task<IResult> ShowTaskAsync(HttpContext ctx, GpucDbFactory factory, Coordinator coordinator, long id, long task)
    {
        var (array, row) = await VisibleTaskAsync(ctx, factory, id, task);
        if (row is not null)
        {
            var view = row.State is JobState.Pending or JobState.Running && coordinator.IsReady ? coordinator.View.GetJob(row.Id) : null;
            return Results.Ok(WithReason(row, view, coordinator));
        }

        // Not expanded yet: the array's remainder stands for it (or the array ended before it ran).
        var dto = WithReason(array, null, coordinator);
        return Results.Ok(dto with
        {
            ArrayJobId = id,
            ArrayTaskId = task,
            Array = null,
            State = array.State == JobState.Pending ? JobState.Pending : JobState.Cancelled,
            StartTime = null,
            EndTime = array.State == JobState.Pending ? null : array.EndTime,
            Outcome = array.State == JobState.Pending ? null : "never ran: " + array.Outcome,
        });
    }

    private static async Task<IResult> CancelTaskAsync(HttpContext ctx, GpucDbFactory factory, Coordinator coordinator, long id, long task)
    {
        var caller = ctx.Caller();
        var (array, row) = await VisibleTaskAsync(ctx, factory, id, task);
        if (!(caller.IsOperator || caller.IsPi(array.Project) || array.User == caller.User))
        {
            throw ApiException.Forbidden("only the job's owner, the project's PI or an operator may cancel it");
        }

        if (row is null && await coordinator.CancelUnexpandedTaskAsync(id, task, caller.User))
        {
            await using var db0 = factory.Create();
            row = await db0.Jobs.AsNoTracking().FirstAsync(j => j.ArrayJobId == id && j.ArrayTaskId == task, ctx.RequestAborted);
            return Results.Accepted($"/api/jobs/{row.Id}", JobDtos.From(row));
        }

        if (row is null)
        {
            // Expanded meanwhile: cancel its row.
            await using var db1 = factory.Create();
            row = await db1.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.ArrayJobId == id && j.ArrayTaskId == task, ctx.RequestAborted)
                ?? throw new ApiException(409, "conflict", "state", $"job {id}_{task} will not run: the array has ended ({array.State.ToWire()})");
        }

        if (row.State is not (JobState.Pending or JobState.Running))
        {
            throw new ApiException(409, "conflict", "state", $"job {id}_{task} has already ended ({row.State.ToWire()})");
        }

        await coordinator.CancelAsync(row.Id, caller.User);
        await using var db = factory.Create();
        var now = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == row.Id, ctx.RequestAborted);
        return Results.Accepted($"/api/jobs/{row.Id}", JobDtos.From(now));
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
        ctx.Response.Headers["X-Job-State"] = row.State.ToWire();
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
