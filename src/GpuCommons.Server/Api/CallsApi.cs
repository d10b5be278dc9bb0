using System.Globalization;
using System.Text.Json;
using GpuCommons.Contracts;
using GpuCommons.Core;
using GpuCommons.Core.Rounds;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Rounds;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Api;

/// <summary>GPUs of a partition in service from a month on (a delivery on the fleet's timeline).</summary>
public sealed class CapacityStepBody
{
    public string? Partition { get; set; }
    /// <summary>yyyy-MM.</summary>
    public string? From { get; set; }
    public int? Gpus { get; set; }
}

public sealed class CallBody
{
    public string? Id { get; set; }
    public string? TitleEn { get; set; }
    public string? TitleKo { get; set; }
    public string? TextEn { get; set; }
    public string? TextKo { get; set; }
    public DateTimeOffset? Opens { get; set; }
    public DateTimeOffset? Closes { get; set; }
    public CallRules? Rules { get; set; }
    /// <summary>Deliveries still to come: capacity steps laid over the fleet as it is (absent: the fleet as it is).</summary>
    public List<CapacityStepBody>? Capacity { get; set; }
}

public static class CallsApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var calls = api.MapGroup("/calls").WithTags("calls");
        calls.MapPost("/", CreateAsync).Accepts<CallBody>("application/json").Produces<CallDto>(201).ProducesProblem(400).ProducesProblem(403)
            .WithSummary("Open a call for proposals (admin): dates, partitions, class budgets, caps, eligibility, criteria, preferences, co-pay");
        calls.MapGet("/", ListAsync).Produces<List<CallDto>>().WithSummary("Calls for proposals, newest first");
        calls.MapGet("/{id}", GetAsync).Produces<CallDto>().ProducesProblem(404).WithSummary("One call");
        calls.MapPost("/{id}/assign", AssignAsync).Produces<CallDto>().ProducesProblem(403).ProducesProblem(409)
            .WithSummary("Close the call to changes and assign reviewers to every submitted proposal (admin): balanced, never with a conflict of interest");
        calls.MapGet("/{id}/committee", CommitteeAsync).Produces<CommitteeDto>().ProducesProblem(403).ProducesProblem(404)
            .WithSummary("The committee's table (the call's committee or an admin): ranking per class, the decisions selection would take, and the fleet's feasibility per partition and month");
        calls.MapPost("/{id}/select", SelectAsync).Accepts<SelectBody>("application/json").Produces<CommitteeDto>().ProducesProblem(403).ProducesProblem(409)
            .WithSummary("Select (the call's committee or an admin): award down each class's ranking within budget and caps; refused when the fleet cannot hold the capacity, unless override");
        calls.MapGet("/{id}/members", MembersAsync).Produces<List<CommitteeMemberDto>>().ProducesProblem(403).ProducesProblem(404)
            .WithSummary("The call's committee members (the committee and admins)");
        calls.MapPut("/{id}/members/{user}", AddMemberAsync).Produces<CommitteeMemberDto>().ProducesProblem(403).ProducesProblem(404).ProducesProblem(409)
            .WithSummary("Name a user to the call's committee (admin); never someone in a project that applied to the call");
        calls.MapDelete("/{id}/members/{user}", RemoveMemberAsync).Produces(204).ProducesProblem(403).ProducesProblem(404)
            .WithSummary("Take a user off the call's committee (admin)");

        var awards = api.MapGroup("/awards").WithTags("calls");
        awards.MapGet("/", ListAwardsAsync).Produces<List<AwardDto>>().WithSummary("Awards of calls (your projects'; all for admins, operators and reviewers)");
        awards.MapPost("/{id}/cut", (HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider t, string id) => ChangeAsync(ctx, o, co, t, id, cut: true))
            .Accepts<AwardChangeBody>("application/json").Produces<AwardDto>().ProducesProblem(400).ProducesProblem(404)
            .WithSummary("Stage review: cut a capacity award to fewer GPUs (the call's committee or an admin); running jobs keep running, nothing more is admitted beyond the new quota");
        awards.MapPost("/{id}/end", (HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider t, string id) => ChangeAsync(ctx, o, co, t, id, cut: false))
            .Accepts<AwardChangeBody>("application/json").Produces<AwardDto>().ProducesProblem(404)
            .WithSummary("Stage review or misuse: end an award now (the call's committee or an admin); its quota and allocation end, running jobs keep running");
    }

    internal static CallDto ToDto(CallRow c, int proposals, DateTimeOffset now) => new(c.Id, c.TitleEn, c.TitleKo, c.TextEn, c.TextKo, c.Opens, c.Closes, c.Phase,
        Status(c, now), RoundService.RulesOf(c), RoundService.CapacityOf(c), proposals, c.Created, c.Decided);

    /// <summary>scheduled, open, closed (no more changes; awaiting panels), review or decided.</summary>
    public static string Status(CallRow c, DateTimeOffset now) =>
        c.Phase != "open" ? c.Phase : now < c.Opens ? "scheduled" : now < c.Closes ? "open" : "closed";

    internal static AwardDto ToDto(AwardRow a, DateTimeOffset now) => new(a.Id, a.ProposalId, a.CallId, a.Project, a.Organisation, a.Kind, a.Partition, a.Gpus, a.GpuHours,
        a.Start, a.End, a.CopayShare, a.State, a.State == "ended" ? "ended" : now < a.Start ? "scheduled" : now >= a.End ? "expired" : "active", a.AllocationId);

    internal static CommitteeDto ToDto(CommitteeView v) => new(v.Call.Id, v.Call.Phase, v.Classes,
        v.Lines.Select(l => new DecisionDto(l.Proposal.Id, l.Proposal.Project, l.Proposal.Organisation, l.Decision.Class, l.Decision.Rank, l.Decision.Score,
            OutcomeName(l.Decision.Outcome), l.Decision.Gpus, l.Decision.Months, l.Decision.GpuHours, l.Decision.Reason, l.ReviewsDone, l.ReviewsAssigned)).ToList(),
        v.Feasibility.Rows.Select(Row).ToList(), v.Feasibility.Violations.Select(Row).ToList(), v.Feasibility.Feasible);

    private static FeasibilityRowDto Row(FeasibilityRow r) => new(r.Partition, Months.Name(r.Month), r.Capacity, r.Existing, r.Added, r.SharedQueue, r.Over);

    public static string OutcomeName(Outcome o) => o switch
    {
        Outcome.Awarded => "awarded",
        Outcome.PartlyAwarded => "partly_awarded",
        Outcome.Waitlisted => "waitlisted",
        _ => "rejected",
    };

    /// <summary>Whether an optional body was sent: with a length, or chunked (a client that streams its JSON).</summary>
    private static bool HasBody(HttpContext ctx) => ctx.Request.ContentLength is > 0 || (ctx.Request.ContentLength is null && ctx.Request.Headers.TransferEncoding.Count > 0);

    internal static async Task<CallRow> FindAsync(GpucDb db, string id) =>
        await db.Set<CallRow>().FindAsync(id) ?? throw ApiException.NotFound($"call {id}");

    private static async Task<IResult> CreateAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin, "only admins open calls");
        var body = await Http.ReadAsync<CallBody>(ctx, o);
        TenancyApi.CheckName(body.Id, "id");
        if (string.IsNullOrWhiteSpace(body.TitleEn) || body.TitleEn.Length > 300)
        {
            throw ApiException.Field("titleEn", "is required (at most 300 characters)");
        }

        if (string.IsNullOrWhiteSpace(body.TitleKo) || body.TitleKo.Length > 300)
        {
            throw ApiException.Field("titleKo", "is required (at most 300 characters)");
        }

        if (body.TextEn is { Length: > 50_000 } || body.TextKo is { Length: > 50_000 })
        {
            throw ApiException.Field(body.TextEn is { Length: > 50_000 } ? "textEn" : "textKo", "at most 50,000 characters");
        }

        if (body.Opens is not { } opens)
        {
            throw ApiException.Field("opens", "is required");
        }

        if (body.Closes is not { } closes || closes <= opens)
        {
            throw ApiException.Field("closes", "is required and must be after opens");
        }

        var rules = body.Rules ?? throw ApiException.Field("rules", "is required");
        rules.Validate("rules");
        for (var i = 0; i < rules.Partitions.Count; i++)
        {
            if (co.Fleet.FindPartition(rules.Partitions[i]) is null)
            {
                throw ApiException.Field($"rules.partitions[{i}]", $"unknown partition '{rules.Partitions[i]}' (the fleet has {string.Join(", ", co.Fleet.Partitions.Select(p => p.Name))})");
            }
        }

        // Whole servers: a partition's server size is its nodes' GPUs unless the call says otherwise.
        var servers = new Dictionary<string, int>(rules.ServerGpus);
        foreach (var p in rules.Partitions)
        {
            if (!servers.ContainsKey(p) && co.Fleet.FindPartition(p) is { } part && part.Nodes.Count > 0)
            {
                servers[p] = co.Fleet.Nodes[part.Nodes[0]].Gpus;
            }
        }

        rules = rules with { ServerGpus = servers, EligibleTypes = rules.EligibleTypes.Select(t => t.ToLowerInvariant()).ToList() };
        var steps = new List<CapacityStep>();
        for (var i = 0; i < (body.Capacity?.Count ?? 0); i++)
        {
            var s = body.Capacity![i] ?? throw ApiException.Field($"capacity[{i}]", "must be an object");
            if (s.Partition is null || co.Fleet.FindPartition(s.Partition) is null)
            {
                throw ApiException.Field($"capacity[{i}].partition", $"unknown partition '{s.Partition}'");
            }

            if (!Months.TryParse(s.From, out var from))
            {
                throw ApiException.Field($"capacity[{i}].from", "must be a month, yyyy-MM");
            }

            if (s.Gpus is not { } g || g < 0)
            {
                throw ApiException.Field($"capacity[{i}].gpus", "must be zero or more");
            }

            steps.Add(new CapacityStep(s.Partition, from, g));
        }

        var now = time.GetUtcNow();
        var row = new CallRow
        {
            Id = body.Id!,
            TitleEn = body.TitleEn,
            TitleKo = body.TitleKo,
            TextEn = body.TextEn ?? "",
            TextKo = body.TextKo ?? "",
            Opens = opens.ToUniversalTime(),
            Closes = closes.ToUniversalTime(),
            Rules = JsonSerializer.Serialize(rules, RoundService.Json),
            Capacity = steps.Count == 0 ? null : JsonSerializer.Serialize(steps, RoundService.Json),
            Phase = "open",
            CreatedBy = c.User,
            Created = now,
        };
        await using var db = co.Db.Create();
        if (await db.Set<CallRow>().FindAsync(row.Id) is not null)
        {
            throw new ApiException(409, "conflict", "id", $"id: call '{row.Id}' exists");
        }

        db.Add(row);
        db.Events.Add(co.Event(c.User, "call.created", $"call/{row.Id}", null, $"{row.TitleEn}: open {row.Opens:u} to {row.Closes:u}"));
        await db.SaveChangesAsync();
        return Results.Created($"/api/calls/{row.Id}", ToDto(row, 0, now));
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, GpucDbFactory f, TimeProvider time)
    {
        _ = ctx.Caller();
        await using var db = f.Create();
        var rows = await db.Set<CallRow>().AsNoTracking().OrderByDescending(c => c.Opens).Take(500).ToListAsync();
        var counts = await db.Set<ProposalRow>().AsNoTracking().Where(p => p.State != "draft" && p.State != "withdrawn")
            .GroupBy(p => p.CallId).Select(g => new { g.Key, N = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.N);
        var now = time.GetUtcNow();
        return Results.Ok(rows.Select(r => ToDto(r, counts.GetValueOrDefault(r.Id), now)).ToList());
    }

    private static async Task<IResult> GetAsync(HttpContext ctx, GpucDbFactory f, TimeProvider time, string id)
    {
        _ = ctx.Caller();
        await using var db = f.Create();
        var row = await FindAsync(db, id);
        var n = await db.Set<ProposalRow>().CountAsync(p => p.CallId == id && p.State != "draft" && p.State != "withdrawn");
        return Results.Ok(ToDto(row, n, time.GetUtcNow()));
    }

    private static async Task<IResult> AssignAsync(HttpContext ctx, Coordinator co, TimeProvider time, string id)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin, "only admins assign review panels");
        var now = time.GetUtcNow();
        await using var db = co.Db.Create();
        var call = await FindAsync(db, id);
        if (call.Phase != "open")
        {
            throw new ApiException(409, "conflict", "phase", $"phase: call {id} is already in {call.Phase}");
        }

        if (now < call.Closes)
        {
            throw new ApiException(409, "conflict", "closes", $"closes: call {id} is open until {call.Closes:u}; panels are assigned after it closes");
        }

        var rules = RoundService.RulesOf(call);
        var proposals = await db.Set<ProposalRow>().Where(p => p.CallId == id && p.State == "submitted").OrderBy(p => p.Id).ToListAsync();
        var panel = await PanelAsync(db);
        if (panel.Count == 0)
        {
            throw new ApiException(409, "conflict", "reviewers", "reviewers: there is no user with the reviewer role to form a panel");
        }

        var assignment = ReviewerAssignment.Assign(proposals.Select(p => new ProposalToAssign(p.Id, p.Organisation)).ToList(), panel, rules.ReviewersPerProposal);
        foreach (var p in proposals)
        {
            foreach (var r in assignment.Reviewers[p.Id])
            {
                db.Add(new ReviewRow { ProposalId = p.Id, Reviewer = r, CallId = id, Assigned = now });
            }

            p.State = "under_review";
            db.Events.Add(co.Event(c.User, "proposal.under_review", $"proposal/{p.Id}", p.Project, $"{assignment.Reviewers[p.Id].Count} reviewers assigned"));
        }

        call.Phase = "review";
        db.Events.Add(co.Event(c.User, "call.review", $"call/{id}", null,
            $"{proposals.Count} proposals to {panel.Count} reviewers, {rules.ReviewersPerProposal} each" + (assignment.Short.Count > 0 ? $"; short of reviewers: {string.Join(", ", assignment.Short)}" : "")));
        await db.SaveChangesAsync();
        return Results.Ok(ToDto(call, proposals.Count, now));
    }

    /// <summary>Every user with the reviewer role, with their organisation and declared conflicts.</summary>
    internal static async Task<List<PanelReviewer>> PanelAsync(GpucDb db)
    {
        var users = await db.Users.AsNoTracking().Where(u => u.Role == "reviewer").Select(u => u.Name).OrderBy(n => n).ToListAsync();
        var profiles = await db.Set<ReviewerProfileRow>().AsNoTracking().ToDictionaryAsync(p => p.User);
        return users.Select(u => profiles.TryGetValue(u, out var p)
            ? new PanelReviewer(u, p.Organisation, p.Conflicts is null ? [] : JsonSerializer.Deserialize<List<string>>(p.Conflicts, RoundService.Json) ?? [], [])
            : new PanelReviewer(u, "")).ToList();
    }

    private static async Task<IResult> CommitteeAsync(HttpContext ctx, Coordinator co, string id)
    {
        var c = ctx.Caller();
        await using var db = co.Db.Create();
        var call = await FindAsync(db, id);
        TenancyApi.Require(await RoundService.IsCommitteeAsync(db, c, id), $"only call {id}'s committee (or an admin) sees the ranking");
        return Results.Ok(ToDto(await RoundService.CommitteeAsync(db, co.Fleet, call)));
    }

    private static async Task<IResult> SelectAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time, string id)
    {
        var c = ctx.Caller();
        await using (var look = co.Db.Create())
        {
            _ = await FindAsync(look, id);
            TenancyApi.Require(await RoundService.IsCommitteeAsync(look, c, id), $"only call {id}'s committee (or an admin) selects");
        }

        var body = HasBody(ctx) ? await Http.ReadAsync<SelectBody>(ctx, o) : new SelectBody();
        if (body.Note is { Length: > 2000 })
        {
            throw ApiException.Field("note", "at most 2,000 characters");
        }

        var now = time.GetUtcNow();
        var view = await co.RunAsync(async _ =>
        {
            await using var db = co.Db.Create();
            var call = await FindAsync(db, id);
            if (call.Phase != "review")
            {
                throw new ApiException(409, "conflict", "phase", call.Phase == "open"
                    ? $"phase: call {id} has no panels yet (POST /api/calls/{id}/assign after it closes)"
                    : $"phase: call {id} is already decided");
            }

            var v = await RoundService.CommitteeAsync(db, co.Fleet, call);
            if (!v.Feasibility.Feasible && body.Override != true)
            {
                var worst = v.Feasibility.Violations.OrderBy(r => r.SharedQueue).First();
                throw new ApiException(409, "infeasible", "override",
                    $"override: the fleet cannot hold the capacity awarded in {v.Feasibility.Violations.Count} partition-months " +
                    $"(worst: {worst.Partition} in {Months.Name(worst.Month)}, {worst.Existing + worst.Added:N0} GPUs dedicated of {worst.Capacity:N0}); " +
                    "give override: true to award anyway");
            }

            var rows = await db.Set<ProposalRow>().Where(p => p.CallId == id && p.State == "under_review").ToDictionaryAsync(p => p.Id);
            foreach (var line in v.Lines)
            {
                if (!rows.TryGetValue(line.Proposal.Id, out var p))
                {
                    continue;
                }

                var d = line.Decision;
                p.State = OutcomeName(d.Outcome);
                p.Score = d.Score;
                p.Rank = d.Rank;
                p.AwardedGpus = d.Gpus;
                p.AwardedMonths = d.Gpus > 0 || d.GpuHours > 0 ? d.Months : 0;
                p.AwardedGpuHours = d.GpuHours;
                p.Reason = d.Reason;
                p.Decided = now;
                db.Events.Add(co.Event(c.User, "proposal." + p.State, $"proposal/{p.Id}", p.Project,
                    $"rank {d.Rank} in {d.Class}, score {d.Score?.ToString("0.###", CultureInfo.InvariantCulture) ?? "none"}: " +
                    (d.Gpus > 0 ? $"{d.Gpus} GPUs on {p.Partition} for {d.Months} months" : d.GpuHours > 0 ? $"{d.GpuHours:0} GPU-hours" : d.Reason)));
                if (d.Outcome is not (Outcome.Awarded or Outcome.PartlyAwarded))
                {
                    continue;
                }

                var start = Months.Start(p.StartMonth);
                var end = Months.Start(p.StartMonth + d.Months);
                var awardId = $"{id}-{p.Id}";
                var capacity = d.Gpus > 0;
                var alloc = new AllocationRow
                {
                    Id = awardId,
                    Project = p.Project,
                    Partition = p.Partition,
                    // A capacity award's GPU-hours are its GPUs around the clock for its months.
                    AwardedGpuHours = capacity ? Math.Round(d.Gpus * d.Months * Months.HoursPerMonth) : d.GpuHours,
                    Start = start,
                    End = end,
                    Created = now,
                    // The ledger records what the organisation pays of each charge against the award.
                    CopayShare = v.Rules.CopayShare(p.OrgType, p.Youth),
                };
                var award = new AwardRow
                {
                    Id = awardId,
                    ProposalId = p.Id,
                    CallId = id,
                    Project = p.Project,
                    Organisation = p.Organisation,
                    OrgType = p.OrgType,
                    Partition = p.Partition,
                    Kind = capacity ? "capacity" : "gpu_hours",
                    Gpus = d.Gpus,
                    GpuHours = alloc.AwardedGpuHours,
                    Start = start,
                    End = end,
                    CopayShare = alloc.CopayShare,
                    State = "active",
                    AllocationId = alloc.Id,
                    Created = now,
                };
                db.Allocations.Add(alloc);
                db.Add(award);
                db.Events.Add(co.Event(c.User, "award.created", $"award/{award.Id}", p.Project,
                    (capacity ? $"{d.Gpus} GPUs on {p.Partition}" : $"{d.GpuHours:0} GPU-hours") + $", {start:yyyy-MM} to {end:yyyy-MM}, co-pay {award.CopayShare:P0}"));
            }

            call.Phase = "decided";
            call.Decided = now;
            db.Events.Add(co.Event(c.User, "call.decided", $"call/{id}", null,
                string.Join("; ", v.Classes.Select(k => $"{k.Class}: {k.Funded} funded, {k.AwardedGpus:N0} GPUs, {k.AwardedGpuMonths:N0} of {k.BudgetGpuMonths:N0} GPU-months"))
                + (!v.Feasibility.Feasible ? $"; awarded over the fleet's capacity by override in {v.Feasibility.Violations.Count} partition-months" : "")
                + (body.Note is { } n ? $"; {n}" : "")));
            await db.SaveChangesAsync();
            foreach (var a in db.Allocations.Local)
            {
                await co.UpsertAllocationAsync(a);
            }

            return v with { Call = call };
        });
        ctx.RequestServices.GetService<AwardQuotaService>()?.Poke();
        return Results.Ok(ToDto(view));
    }

    private static CommitteeMemberDto ToDto(CommitteeMemberRow m) => new(m.CallId, m.User, m.AddedBy, m.Added);

    private static async Task<IResult> MembersAsync(HttpContext ctx, GpucDbFactory f, string id)
    {
        var c = ctx.Caller();
        await using var db = f.Create();
        _ = await FindAsync(db, id);
        TenancyApi.Require(await RoundService.IsCommitteeAsync(db, c, id), $"only call {id}'s committee (or an admin) sees who sits on it");
        var rows = await db.Set<CommitteeMemberRow>().AsNoTracking().Where(m => m.CallId == id).OrderBy(m => m.User).ToListAsync();
        return Results.Ok(rows.Select(ToDto).ToList());
    }

    private static async Task<IResult> AddMemberAsync(HttpContext ctx, Coordinator co, TimeProvider time, string id, string user)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin, "only admins name a call's committee");
        await using var db = co.Db.Create();
        var call = await FindAsync(db, id);
        if (await db.Users.FindAsync(user) is null)
        {
            throw ApiException.NotFound($"user {user}");
        }

        // A committee member decides every proposal of the call: never one of the applicants' people.
        var applied = await db.Set<ProposalRow>().AsNoTracking().Where(p => p.CallId == id && p.State != "draft")
            .Join(db.Memberships.Where(m => m.User == user), p => p.Project, m => m.Project, (p, m) => p.Project).FirstOrDefaultAsync();
        if (applied is not null)
        {
            throw new ApiException(409, "conflict", "user", $"user: {user} is in project {applied}, which applied to call {id}");
        }

        var row = await db.Set<CommitteeMemberRow>().FindAsync(id, user);
        if (row is null)
        {
            row = new CommitteeMemberRow { CallId = call.Id, User = user, AddedBy = c.User, Added = time.GetUtcNow() };
            db.Add(row);
            db.Events.Add(co.Event(c.User, "committee.added", $"call/{id}", null, $"{user} sits on the committee"));
            await db.SaveChangesAsync();
        }

        return Results.Ok(ToDto(row));
    }

    private static async Task<IResult> RemoveMemberAsync(HttpContext ctx, Coordinator co, string id, string user)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin, "only admins name a call's committee");
        await using var db = co.Db.Create();
        _ = await FindAsync(db, id);
        var row = await db.Set<CommitteeMemberRow>().FindAsync(id, user) ?? throw ApiException.NotFound($"committee member {user} of call {id}");
        db.Remove(row);
        db.Events.Add(co.Event(c.User, "committee.removed", $"call/{id}", null, $"{user} leaves the committee"));
        await db.SaveChangesAsync();
        return Results.NoContent();
    }

    private static async Task<IResult> ListAwardsAsync(HttpContext ctx, GpucDbFactory f, TimeProvider time, string? call, string? project)
    {
        var c = ctx.Caller();
        await using var db = f.Create();
        var q = db.Set<AwardRow>().AsNoTracking();
        if (!c.SeesAllTenancy)
        {
            var mine = c.Projects.Keys.ToList();
            var sits = await RoundService.CommitteeCallsAsync(db, c.User);
            q = q.Where(a => mine.Contains(a.Project) || sits.Contains(a.CallId));
        }

        if (call is not null)
        {
            q = q.Where(a => a.CallId == call);
        }

        if (project is not null)
        {
            q = q.Where(a => a.Project == project);
        }

        var now = time.GetUtcNow();
        return Results.Ok((await q.OrderBy(a => a.Id).Take(10_000).ToListAsync()).Select(a => ToDto(a, now)).ToList());
    }

    private static async Task<IResult> ChangeAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time, string id, bool cut)
    {
        var c = ctx.Caller();
        if (!c.IsAdmin)
        {
            await using var look = co.Db.Create();
            var found = await look.Set<AwardRow>().Where(a => a.Id == id).Select(a => new { a.Project, a.CallId }).FirstOrDefaultAsync();
            if (found is null || !(c.SeesAllTenancy || c.InProject(found.Project) || await RoundService.IsCommitteeAsync(look, c, found.CallId)))
            {
                throw ApiException.NotFound($"award {id}");
            }

            TenancyApi.Require(await RoundService.IsCommitteeAsync(look, c, found.CallId), $"only call {found.CallId}'s committee (or an admin) cuts or ends its awards");
        }

        var body = HasBody(ctx) ? await Http.ReadAsync<AwardChangeBody>(ctx, o) : new AwardChangeBody();
        if (body.Note is { Length: > 2000 })
        {
            throw ApiException.Field("note", "at most 2,000 characters");
        }

        var now = time.GetUtcNow();
        var award = await co.RunAsync(async _ =>
        {
            await using var db = co.Db.Create();
            var a = await db.Set<AwardRow>().FindAsync(id) ?? throw ApiException.NotFound($"award {id}");
            if (a.State == "ended" || now >= a.End)
            {
                throw new ApiException(409, "conflict", "state", $"state: award {id} has already ended");
            }

            var alloc = await db.Allocations.FindAsync(a.AllocationId);
            var remainingHours = Math.Max(0, (a.End - (now > a.Start ? now : a.Start)).TotalHours);
            string detail;
            if (cut)
            {
                if (a.Kind != "capacity")
                {
                    throw ApiException.Field("gpus", "only a capacity award is cut in GPUs; end a GPU-hour award or extend its allocation");
                }

                var rules = RoundService.RulesOf(await FindAsync(db, a.CallId));
                var server = rules.ServerSize(a.Partition);
                if (body.Gpus is not { } g || g < 0 || g >= a.Gpus || g % server != 0)
                {
                    throw ApiException.Field("gpus", $"must be fewer than the {a.Gpus} GPUs awarded, in whole servers of {server}");
                }

                if (alloc is not null)
                {
                    alloc.AwardedGpuHours = Math.Max(0, Math.Round(alloc.AwardedGpuHours - ((a.Gpus - g) * remainingHours)));
                }

                detail = $"cut from {a.Gpus} to {g} GPUs on {a.Partition}";
                a.Gpus = g;
                a.GpuHours = alloc?.AwardedGpuHours ?? a.GpuHours;
            }
            else
            {
                a.State = "ended";
                detail = $"ended {now:u} (was to end {a.End:u})";
                a.End = now > a.Start ? now : a.Start;
                if (alloc is not null)
                {
                    alloc.End = a.End;
                }
            }

            db.Events.Add(co.Event(c.User, cut ? "award.cut" : "award.ended", $"award/{id}", a.Project, detail + (body.Note is { } n ? $": {n}" : "")));
            await db.SaveChangesAsync();
            if (alloc is not null)
            {
                await co.UpsertAllocationAsync(alloc);
            }

            return a;
        });
        var quotas = ctx.RequestServices.GetService<AwardQuotaService>();
        if (quotas is not null)
        {
            // The quota follows at once (not at the next pass): nothing more is admitted beyond it.
            await quotas.ApplyAsync(ctx.RequestAborted);
        }

        return Results.Ok(ToDto(award, now));
    }
}
