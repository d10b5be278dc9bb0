using GpuCommons.Contracts;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Api;

public sealed class GrantBody
{
    public string? Id { get; set; }
    public string? Project { get; set; }
    public string? Partition { get; set; }
    public double? GpuHours { get; set; }
    public DateTimeOffset? Start { get; set; }
    public DateTimeOffset? End { get; set; }
    public int? Tranches { get; set; }
}

/// <summary>An extension of an allocation: more GPU-hours, a later end, or both.</summary>
public sealed class ExtendBody
{
    /// <summary>GPU-hours added to the award (spread over its tranches as the award is).</summary>
    public double? AddGpuHours { get; set; }
    /// <summary>New end; must be later than the current one.</summary>
    public DateTimeOffset? End { get; set; }
    public string? Comment { get; set; }
}

/// <summary>The allocation contracts built from their rows: <c>AllocationRequestDto.From(row)</c>.</summary>
public static class AllocationDtos
{
    extension(AllocationRequestDto)
    {
        /// <summary>A request and, once reviewed, its decision.</summary>
        public static AllocationRequestDto From(AllocationRequestRow r) => new(r.Id, r.Project, r.Partition, r.GpuHours, r.Justification, r.RequestedBy,
            r.State, r.Score, r.AwardedGpuHours, r.ReviewedBy, r.Comment, r.AllocationId, r.Created, r.Decided);
    }
}

internal static class AllocationsApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var reqs = api.MapGroup("/allocation-requests").WithTags("allocations");
        reqs.MapPost("/", RequestAsync).Accepts<AllocationRequestBody>("application/json").Produces<AllocationRequestDto>(201).WithSummary("Ask for GPU-hours (the project's PI or an admin)");
        reqs.MapGet("/", async (HttpContext ctx, GpucDbFactory f, ServerOptions o, string? state, long? after, int? limit) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var q = db.AllocationRequests.AsNoTracking();
            if (!c.SeesAllTenancy)
            {
                var mine = c.Projects.Keys.ToList();
                q = q.Where(r => mine.Contains(r.Project));
            }

            if (state is not null)
            {
                q = q.Where(r => r.State == state);
            }

            if (after is not null)
            {
                q = q.Where(r => r.Id > after);
            }

            var take = Http.Limit(limit, o);
            var rows = await q.OrderBy(r => r.Id).Take(take + 1).ToListAsync();
            return Results.Ok(TenancyApi.PageOf(rows, take, AllocationRequestDto.From, r => r.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }).Produces<Page<AllocationRequestDto>>();
        reqs.MapGet("/{id:long}", async (HttpContext ctx, GpucDbFactory f, long id) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var r = await db.AllocationRequests.FindAsync(id);
            if (r is null || (!c.SeesAllTenancy && !c.InProject(r.Project)))
            {
                throw ApiException.NotFound($"allocation request {id}");
            }

            return Results.Ok(AllocationRequestDto.From(r));
        }).Produces<AllocationRequestDto>();
        reqs.MapPost("/{id:long}/review", ReviewAsync).Accepts<ReviewBody>("application/json").Produces<AllocationRequestDto>()
            .WithSummary("Score and award (possibly less) or reject (reviewer)");

        var allocs = api.MapGroup("/allocations").WithTags("allocations");
        allocs.MapGet("/", async (HttpContext ctx, GpucDbFactory f, Coordinator co, TimeProvider time, string? project) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var q = db.Allocations.AsNoTracking();
            if (!c.SeesAllTenancy)
            {
                var mine = c.Projects.Keys.ToList();
                q = q.Where(a => mine.Contains(a.Project));
            }

            if (project is not null)
            {
                q = q.Where(a => a.Project == project);
            }

            var rows = await q.OrderBy(a => a.Id).Take(10_000).ToListAsync();
            var usage = await co.AllocationUsageAsync();
            return Results.Ok(rows.Select(a => ToDto(a, usage, time.GetUtcNow())).ToList());
        }).Produces<List<AllocationDto>>().WithSummary("Allocations with spent, committed and remaining GPU-hours");
        allocs.MapGet("/{id}", async (HttpContext ctx, GpucDbFactory f, Coordinator co, TimeProvider time, string id) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var a = await db.Allocations.FindAsync(id);
            if (a is null || (!c.SeesAllTenancy && !c.InProject(a.Project)))
            {
                throw ApiException.NotFound($"allocation {id}");
            }

            return Results.Ok(ToDto(a, await co.AllocationUsageAsync(), time.GetUtcNow()));
        }).Produces<AllocationDto>();
        allocs.MapPost("/", GrantAsync).Accepts<GrantBody>("application/json").Produces<AllocationDto>(201).WithSummary("Grant an allocation directly (admin)");
        allocs.MapPost("/{id}/tranches", async (HttpContext ctx, Coordinator co, TimeProvider time, string id) =>
        {
            var c = ctx.Caller();
            TenancyApi.Require(c.IsReviewer, "only reviewers release tranches");
            var row = await co.ChangeAllocationAsync(async db =>
            {
                var a = await db.Allocations.FindAsync(id) ?? throw ApiException.NotFound($"allocation {id}");
                if (a.TranchesReleased >= a.Tranches)
                {
                    throw new ApiException(409, "conflict", "tranches", "tranches: all tranches are released");
                }

                a.TranchesReleased++;
                a.AlertsSent &= ~0b111;
                db.Events.Add(co.Event(c.User, "allocation.tranche", $"allocation/{id}", a.Project, $"tranche {a.TranchesReleased} of {a.Tranches}"));
                return (a, a);
            });
            return Results.Ok(ToDto(row, await co.AllocationUsageAsync(), time.GetUtcNow()));
        }).Produces<AllocationDto>().WithSummary("Release the next tranche (reviewer)");
        allocs.MapPost("/{id}/extend", ExtendAsync).Accepts<ExtendBody>("application/json").Produces<AllocationDto>().ProducesProblem(400).ProducesProblem(404)
            .WithSummary("Extend an allocation: more GPU-hours, a later end, or both (reviewer)");
    }

    private static async Task<IResult> ExtendAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time, string id)
    {
        var c = ctx.Caller();
        if (!c.IsReviewer)
        {
            // Those who can see the allocation learn that they may not extend it; others learn nothing.
            await using var look = ctx.RequestServices.GetRequiredService<GpucDbFactory>().Create();
            var project = await look.Allocations.Where(a => a.Id == id).Select(a => a.Project).FirstOrDefaultAsync();
            throw project is not null && (c.SeesAllTenancy || c.InProject(project))
                ? ApiException.Forbidden("only reviewers extend allocations")
                : ApiException.NotFound($"allocation {id}");
        }

        var body = await Http.ReadAsync<ExtendBody>(ctx, o);
        if (body.AddGpuHours is null && body.End is null)
        {
            throw ApiException.Field("addGpuHours", "give addGpuHours, end, or both");
        }

        if (body.AddGpuHours is { } add && (!(add > 0) || !double.IsFinite(add)))
        {
            throw ApiException.Field("addGpuHours", "must be a positive number");
        }

        if (body.Comment is { Length: > 2000 })
        {
            throw ApiException.Field("comment", "at most 2,000 characters");
        }

        var row = await co.ChangeAllocationAsync(async db =>
        {
            var a = await db.Allocations.FindAsync(id) ?? throw ApiException.NotFound($"allocation {id}");
            if (body.End is { } end && end <= a.End)
            {
                throw ApiException.Field("end", $"must be later than the current end {a.End:u}");
            }

            var what = new List<string>();
            if (body.AddGpuHours is { } more)
            {
                a.AwardedGpuHours += more;
                what.Add($"+{more:0.##} GPU-hours (award {a.AwardedGpuHours:0.##})");
            }

            if (body.End is { } newEnd)
            {
                what.Add($"end {a.End:u} → {newEnd:u}");
                a.End = newEnd;
                a.AlertsSent &= ~0b11000;
            }

            if (body.AddGpuHours is not null)
            {
                // Usage alerts are raised again against the larger award.
                a.AlertsSent &= ~0b111;
            }

            db.Events.Add(co.Event(c.User, "allocation.extended", $"allocation/{id}", a.Project, string.Join(", ", what) + (body.Comment is { } cm ? $": {cm}" : "")));
            return (a, a);
        });
        return Results.Ok(ToDto(row, await co.AllocationUsageAsync(), time.GetUtcNow()));
    }

    internal static AllocationDto ToDto(AllocationRow a, Dictionary<string, (double Granted, double Spent, double Committed)> usage, DateTimeOffset now)
    {
        var (_, spent, committed) = usage.GetValueOrDefault(a.Id);
        var released = a.ReleasedGpuHours;
        var state = now < a.Start ? "scheduled" : now >= a.End ? "expired" : spent >= released ? "exhausted" : "active";
        return new AllocationDto(a.Id, a.Project, a.Partition, a.AwardedGpuHours, released, a.Tranches, a.TranchesReleased, a.Start, a.End, state,
            Math.Round(spent, 6), Math.Round(committed, 6), Math.Round(Math.Max(0, released - spent - committed), 6), released > 0 ? Math.Round(100 * spent / released, 2) : 0);
    }

    private static async Task<IResult> RequestAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, Coordinator co, TimeProvider time)
    {
        var c = ctx.Caller();
        var body = await Http.ReadAsync<AllocationRequestBody>(ctx, o);
        if (string.IsNullOrWhiteSpace(body.Project))
        {
            throw ApiException.Field("project", "is required");
        }

        if (!c.IsAdmin && !c.IsPi(body.Project))
        {
            throw c.InProject(body.Project) ? ApiException.Forbidden("only the project's PI asks for allocations") : ApiException.Field("project", $"no project '{body.Project}' that you lead");
        }

        if (body.GpuHours is not { } hours || !(hours > 0) || !double.IsFinite(hours) || hours > 1e9)
        {
            throw ApiException.Field("gpuHours", "must be a positive number");
        }

        if (string.IsNullOrWhiteSpace(body.Justification) || body.Justification.Length > 20_000)
        {
            throw ApiException.Field("justification", "is required (at most 20,000 characters)");
        }

        if (body.Months is < 1 or > 60)
        {
            throw ApiException.Field("months", "must be between 1 and 60");
        }

        if (body.Partition is not null && co.Fleet.FindPartition(body.Partition) is null)
        {
            throw ApiException.Field("partition", $"unknown partition '{body.Partition}'");
        }

        await using var db = f.Create();
        if (await db.Projects.FindAsync(body.Project) is null)
        {
            throw ApiException.Field("project", $"no project '{body.Project}' that you lead");
        }

        var row = new AllocationRequestRow
        {
            Project = body.Project,
            Partition = body.Partition,
            GpuHours = hours,
            Justification = body.Justification,
            RequestedBy = c.User,
            State = "submitted",
            Created = time.GetUtcNow(),
            Comment = body.Months is { } m ? $"asked for {m} months" : null,
        };
        db.AllocationRequests.Add(row);
        await db.SaveChangesAsync();
        db.Events.Add(co.Event(c.User, "allocation_request.submitted", $"allocation-request/{row.Id}", row.Project, $"{hours} GPU-hours"));
        await db.SaveChangesAsync();
        return Results.Created(InputRules.Location("allocation-requests", row.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)), AllocationRequestDto.From(row));
    }

    private static async Task<IResult> ReviewAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time, long id)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsReviewer, "only reviewers review allocation requests");
        var body = await Http.ReadAsync<ReviewBody>(ctx, o);
        if (body.Decision is not ("award" or "reject"))
        {
            throw ApiException.Field("decision", "must be award or reject");
        }

        if (body.Score is < 0 or > 100)
        {
            throw ApiException.Field("score", "must be between 0 and 100");
        }

        if (body.Tranches is < 1 or > 24)
        {
            throw ApiException.Field("tranches", "must be between 1 and 24");
        }

        var now = time.GetUtcNow();
        var result = await co.ChangeAllocationAsync<AllocationRequestRow>(async db =>
        {
            var r = await db.AllocationRequests.FindAsync(id) ?? throw ApiException.NotFound($"allocation request {id}");
            if (r.State != "submitted")
            {
                throw new ApiException(409, "conflict", "state", $"state: request {id} is already {r.State}");
            }

            r.Score = body.Score;
            r.ReviewedBy = c.User;
            r.Decided = now;
            r.Comment = body.Comment ?? r.Comment;
            if (body.Decision == "reject")
            {
                r.State = "rejected";
                db.Events.Add(co.Event(c.User, "allocation_request.rejected", $"allocation-request/{id}", r.Project, body.Comment));
                return (r, null);
            }

            var award = body.GpuHours ?? r.GpuHours;
            if (!(award > 0) || award > r.GpuHours || !double.IsFinite(award))
            {
                throw ApiException.Field("gpuHours", $"must be more than 0 and at most the {r.GpuHours} asked for");
            }

            var start = body.Start?.ToUniversalTime() ?? now;
            var end = body.End?.ToUniversalTime() ?? start.AddMonths(6);
            if (end <= start)
            {
                throw ApiException.Field("end", "must be after start");
            }

            var alloc = new AllocationRow
            {
                Id = $"alloc-{id}",
                Project = r.Project,
                Partition = r.Partition,
                AwardedGpuHours = award,
                Tranches = body.Tranches ?? 1,
                TranchesReleased = 1,
                Start = start,
                End = end,
                RequestId = id,
                Created = now,
            };
            r.State = "awarded";
            r.AwardedGpuHours = award;
            r.AllocationId = alloc.Id;
            db.Allocations.Add(alloc);
            db.Events.Add(co.Event(c.User, "allocation_request.awarded", $"allocation-request/{id}", r.Project, $"{award} of {r.GpuHours} GPU-hours, score {body.Score}"));
            db.Events.Add(co.Event(c.User, "allocation.created", $"allocation/{alloc.Id}", r.Project, $"{award} GPU-hours in {alloc.Tranches} tranche(s), {start:u} to {end:u}"));
            return (r, alloc);
        });
        return Results.Ok(AllocationRequestDto.From(result));
    }

    private static async Task<IResult> GrantAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin, "only admins grant allocations directly");
        var body = await Http.ReadAsync<GrantBody>(ctx, o);
        TenancyApi.CheckName(body.Id, "id");
        TenancyApi.CheckName(body.Project, "project");
        if (body.GpuHours is not { } hours || !(hours >= 0) || !double.IsFinite(hours))
        {
            throw ApiException.Field("gpuHours", "must be zero or more");
        }

        if (body.Partition is not null && co.Fleet.FindPartition(body.Partition) is null)
        {
            throw ApiException.Field("partition", $"unknown partition '{body.Partition}'");
        }

        var now = time.GetUtcNow();
        var start = body.Start?.ToUniversalTime() ?? now;
        var end = body.End?.ToUniversalTime() ?? start.AddMonths(6);
        if (end <= start)
        {
            throw ApiException.Field("end", "must be after start");
        }

        var alloc = new AllocationRow { Id = body.Id!, Project = body.Project!, Partition = body.Partition, AwardedGpuHours = hours, Tranches = body.Tranches ?? 1, TranchesReleased = 1, Start = start, End = end, Created = now };
        await co.ChangeAllocationAsync(async db =>
        {
            if (await db.Projects.FindAsync(alloc.Project) is null)
            {
                throw ApiException.Field("project", $"unknown project '{alloc.Project}'");
            }

            if (await db.Allocations.FindAsync(alloc.Id) is not null)
            {
                throw new ApiException(409, "conflict", "id", $"id: allocation '{alloc.Id}' exists");
            }

            db.Allocations.Add(alloc);
            db.Events.Add(co.Event(c.User, "allocation.created", $"allocation/{alloc.Id}", alloc.Project, $"{hours} GPU-hours"));
            return (true, alloc);
        });
        return Results.Created(InputRules.Location("allocations", alloc.Id), ToDto(alloc, await co.AllocationUsageAsync(), now));
    }
}
