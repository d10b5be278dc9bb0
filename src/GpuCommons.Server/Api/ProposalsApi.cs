using System.Globalization;
using System.Text;
using System.Text.Json;
using GpuCommons.Contracts;
using GpuCommons.Core.Rounds;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Rounds;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Api;

public static class ProposalsApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var g = api.MapGroup("/proposals").WithTags("proposals");
        g.MapPost("/", CreateAsync).Accepts<ProposalBody>("application/json").Produces<ProposalDto>(201).ProducesProblem(400).ProducesProblem(409)
            .WithSummary("Draft a proposal against an open call (the project's PI)");
        g.MapGet("/", ListAsync).Produces<List<ProposalDto>>().WithSummary("Proposals: your projects' (all for the committee), by call and state");
        g.MapGet("/{id:long}", GetAsync).Produces<ProposalDto>().ProducesProblem(404);
        g.MapPut("/{id:long}", UpdateAsync).Accepts<ProposalBody>("application/json").Produces<ProposalDto>().ProducesProblem(400).ProducesProblem(409)
            .WithSummary("Change a draft or submitted proposal while the call is open (the PI)");
        g.MapPost("/{id:long}/submit", (HttpContext ctx, Coordinator co, TimeProvider t, long id) => MoveAsync(ctx, co, t, id, "submitted"))
            .Produces<ProposalDto>().ProducesProblem(409).WithSummary("Submit a draft (the PI), while the call is open");
        g.MapPost("/{id:long}/withdraw", (HttpContext ctx, Coordinator co, TimeProvider t, long id) => MoveAsync(ctx, co, t, id, "withdrawn"))
            .Produces<ProposalDto>().ProducesProblem(409).WithSummary("Withdraw a proposal (the PI), while the call is open");

        var r = api.MapGroup("/reviews").WithTags("reviews");
        r.MapGet("/", MyAssignmentsAsync).Produces<List<AssignmentDto>>().WithSummary("The proposals you are assigned to review (reviewer)");
        r.MapGet("/{proposal:long}", ReviewsOfAsync).Produces<List<ReviewDto>>().ProducesProblem(403).ProducesProblem(404)
            .WithSummary("A proposal's reviews: the committee sees all; a reviewer sees others' only after submitting theirs; the applicant sees comments without names once decided");
        r.MapPut("/{proposal:long}", SubmitReviewAsync).Accepts<ReviewSubmitBody>("application/json").Produces<ReviewDto>().ProducesProblem(400).ProducesProblem(409)
            .WithSummary("Score every criterion (0–100) and comment (the assigned reviewer); once");
        r.MapPut("/profiles/{user}", SetProfileAsync).Accepts<ReviewerProfileBody>("application/json").Produces<ReviewerProfileBody>().ProducesProblem(403)
            .WithSummary("A reviewer's organisation and declared conflicts of interest (the reviewer or an admin)");

        api.MapGet("/projects/{name}/statement", StatementAsync).WithTags("proposals").Produces<StatementDto>().Produces(200, contentType: "text/csv").ProducesProblem(404)
            .WithSummary("A project's monthly statement from the ledger: GPU-hours, their market value, what the organisation pays (its co-pay) and the public subsidy (?month=yyyy-MM, ?format=csv)");
        api.MapGet("/organisations/{name}/statement", OrganisationStatementAsync).WithTags("proposals").Produces<StatementDto>().Produces(200, contentType: "text/csv").ProducesProblem(403).ProducesProblem(404)
            .WithSummary("An organisation's monthly statement (staff): per project, market value beside what the organisation pays (?month=yyyy-MM, ?format=csv)");
    }

    internal static ProposalDto ToDto(ProposalRow p) => new(p.Id, p.CallId, p.Project, p.Organisation, p.OrgType, p.Title, p.Team, p.Partition, p.Gpus, p.GpuHours,
        Months.Name(p.StartMonth), p.Months, p.Justification, p.Regional, p.Youth, p.State, p.CreatedBy, p.Created, p.Submitted,
        RoundService.Decided.Contains(p.State) ? p.Score : null, RoundService.Decided.Contains(p.State) ? p.Rank : null, p.AwardedGpus, p.AwardedMonths, p.AwardedGpuHours, p.Reason, p.Decided);

    /// <summary>Whether the caller may see a proposal: its project's people, its assigned reviewers, and the call's committee (and admins).</summary>
    private static async Task<bool> SeesAsync(GpucDb db, Caller c, ProposalRow p) =>
        c.IsAdmin || c.InProject(p.Project) || (c.IsReviewer && await db.Set<ReviewRow>().AnyAsync(r => r.ProposalId == p.Id && r.Reviewer == c.User))
        || await RoundService.IsCommitteeAsync(db, c, p.CallId);

    private static async Task<ProposalRow> FindVisibleAsync(GpucDb db, Caller c, long id)
    {
        var p = await db.Set<ProposalRow>().FindAsync(id);
        if (p is null || !await SeesAsync(db, c, p))
        {
            throw ApiException.NotFound($"proposal {id}");
        }

        return p;
    }

    private static async Task<IResult> CreateAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time)
    {
        var c = ctx.Caller();
        var body = await Http.ReadAsync<ProposalBody>(ctx, o);
        if (string.IsNullOrWhiteSpace(body.Call))
        {
            throw ApiException.Field("call", "is required");
        }

        if (string.IsNullOrWhiteSpace(body.Project))
        {
            throw ApiException.Field("project", "is required");
        }

        if (!c.IsAdmin && !c.IsPi(body.Project))
        {
            throw c.InProject(body.Project) ? ApiException.Forbidden("only the project's PI applies") : ApiException.Field("project", $"no project '{body.Project}' that you lead");
        }

        await using var db = co.Db.Create();
        var call = await db.Set<CallRow>().FindAsync(body.Call) ?? throw ApiException.Field("call", $"no call '{body.Call}'");
        var now = time.GetUtcNow();
        if (!RoundService.IsOpen(call, now))
        {
            throw new ApiException(409, "conflict", "call", $"call: '{call.Id}' is {CallsApi.Status(call, now)}, not open for proposals");
        }

        var project = await db.Projects.FindAsync(body.Project) ?? throw ApiException.Field("project", $"no project '{body.Project}' that you lead");
        var org = await db.Organisations.FindAsync(project.Organisation);
        var orgType = org?.Type.ToLowerInvariant() ?? "university";
        var rules = RoundService.RulesOf(call);
        if (!rules.IsEligible(orgType))
        {
            throw ApiException.Field("project", $"organisation '{project.Organisation}' is a {orgType}; this call is open to {string.Join(", ", rules.EligibleTypes)}");
        }

        var row = new ProposalRow
        {
            CallId = call.Id,
            Project = project.Name,
            Organisation = project.Organisation,
            OrgType = orgType,
            Title = "",
            Partition = "",
            State = "draft",
            CreatedBy = c.User,
            Created = now,
        };
        Apply(row, body, rules, now);
        db.Add(row);
        await db.SaveChangesAsync();
        db.Events.Add(co.Event(c.User, "proposal.drafted", $"proposal/{row.Id}", row.Project, $"{row.Title} ({call.Id})"));
        await db.SaveChangesAsync();
        return Results.Created($"/api/proposals/{row.Id}", ToDto(row));
    }

    /// <summary>Copies the body onto the row, checking each field against the call; errors name the field.</summary>
    private static void Apply(ProposalRow row, ProposalBody b, CallRules rules, DateTimeOffset now)
    {
        if (b.Call is not null && b.Call != row.CallId)
        {
            throw ApiException.Field("call", "a proposal stays with its call");
        }

        if (b.Project is not null && b.Project != row.Project)
        {
            throw ApiException.Field("project", "a proposal stays with its project");
        }

        row.Title = b.Title ?? row.Title;
        if (string.IsNullOrWhiteSpace(row.Title) || row.Title.Length > 300)
        {
            throw ApiException.Field("title", "is required (at most 300 characters)");
        }

        row.Team = b.Team ?? row.Team;
        if (row.Team.Length > 5000)
        {
            throw ApiException.Field("team", "at most 5,000 characters");
        }

        row.Partition = b.Partition ?? row.Partition;
        if (!rules.Partitions.Contains(row.Partition))
        {
            throw ApiException.Field("partition", $"must be one of the call's partitions: {string.Join(", ", rules.Partitions)}");
        }

        if (b.Gpus is not null || b.GpuHours is not null)
        {
            row.Gpus = b.Gpus ?? 0;
            row.GpuHours = b.GpuHours ?? 0;
        }

        if ((row.Gpus > 0) == (row.GpuHours > 0))
        {
            throw ApiException.Field("gpus", "give gpus (capacity in whole servers) or gpuHours (shared queue), not both");
        }

        var server = rules.ServerSize(row.Partition);
        if (row.Gpus < 0 || row.Gpus % server != 0)
        {
            throw ApiException.Field("gpus", $"must be whole servers of {server} GPUs");
        }

        if (rules.MaxGpusPerProject.TryGetValue(row.Partition, out var cap) && row.Gpus > cap)
        {
            throw ApiException.Field("gpus", $"at most {cap} GPUs per project on {row.Partition}");
        }

        if (!double.IsFinite(row.GpuHours) || row.GpuHours < 0 || row.GpuHours > (rules.MaxGpuHoursPerProject ?? 1e9))
        {
            throw ApiException.Field("gpuHours", $"must be a positive number, at most {rules.MaxGpuHoursPerProject ?? 1e9:N0}");
        }

        if (b.StartMonth is not null)
        {
            if (!Months.TryParse(b.StartMonth, out var m))
            {
                throw ApiException.Field("startMonth", "must be a month, yyyy-MM");
            }

            row.StartMonth = m;
        }

        if (row.StartMonth == 0)
        {
            throw ApiException.Field("startMonth", "is required (yyyy-MM)");
        }

        if (row.StartMonth < Months.Of(now))
        {
            throw ApiException.Field("startMonth", "must not be in the past");
        }

        row.Months = b.Months ?? row.Months;
        if (row.Months < 1 || row.Months > rules.MaxMonths)
        {
            throw ApiException.Field("months", $"must be between 1 and {rules.MaxMonths}");
        }

        row.Justification = b.Justification ?? row.Justification;
        if (string.IsNullOrWhiteSpace(row.Justification) || row.Justification.Length > 50_000)
        {
            throw ApiException.Field("justification", "is required (at most 50,000 characters)");
        }

        row.Regional = b.Regional ?? row.Regional;
        row.Youth = b.Youth ?? row.Youth;
    }

    private static async Task<IResult> ListAsync(HttpContext ctx, GpucDbFactory f, string? call, string? state, string? project)
    {
        var c = ctx.Caller();
        await using var db = f.Create();
        var q = db.Set<ProposalRow>().AsNoTracking();
        if (!c.IsAdmin)
        {
            // Your projects' proposals, and every proposal of a call whose committee you sit on.
            var mine = c.Projects.Keys.ToList();
            var sits = await RoundService.CommitteeCallsAsync(db, c.User);
            q = q.Where(p => mine.Contains(p.Project) || sits.Contains(p.CallId));
        }

        if (call is not null)
        {
            q = q.Where(p => p.CallId == call);
        }

        if (state is not null)
        {
            q = q.Where(p => p.State == state);
        }

        if (project is not null)
        {
            q = q.Where(p => p.Project == project);
        }

        return Results.Ok((await q.OrderBy(p => p.Id).Take(10_000).ToListAsync()).Select(ToDto).ToList());
    }

    private static async Task<IResult> GetAsync(HttpContext ctx, GpucDbFactory f, long id)
    {
        await using var db = f.Create();
        return Results.Ok(ToDto(await FindVisibleAsync(db, ctx.Caller(), id)));
    }

    private static async Task<IResult> UpdateAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time, long id)
    {
        var c = ctx.Caller();
        var body = await Http.ReadAsync<ProposalBody>(ctx, o);
        await using var db = co.Db.Create();
        var p = await FindVisibleAsync(db, c, id);
        TenancyApi.Require(c.IsAdmin || c.IsPi(p.Project), "only the project's PI changes its proposal");
        var call = await CallsApi.FindAsync(db, p.CallId);
        var now = time.GetUtcNow();
        if (!RoundService.IsOpen(call, now) || p.State is not ("draft" or "submitted"))
        {
            throw new ApiException(409, "conflict", "state", $"state: proposal {id} is {p.State} and call {call.Id} is {CallsApi.Status(call, now)}; nothing changes after the call closes except by the committee");
        }

        Apply(p, body, RoundService.RulesOf(call), now);
        db.Events.Add(co.Event(c.User, "proposal.changed", $"proposal/{id}", p.Project, p.Title));
        await db.SaveChangesAsync();
        return Results.Ok(ToDto(p));
    }

    private static async Task<IResult> MoveAsync(HttpContext ctx, Coordinator co, TimeProvider time, long id, string to)
    {
        var c = ctx.Caller();
        await using var db = co.Db.Create();
        var p = await FindVisibleAsync(db, c, id);
        TenancyApi.Require(c.IsAdmin || c.IsPi(p.Project), "only the project's PI submits or withdraws its proposal");
        var call = await CallsApi.FindAsync(db, p.CallId);
        var now = time.GetUtcNow();
        var from = to == "submitted" ? new[] { "draft" } : ["draft", "submitted"];
        if (!RoundService.IsOpen(call, now))
        {
            throw new ApiException(409, "conflict", "call", $"call: {call.Id} is {CallsApi.Status(call, now)}; nothing changes after the call closes except by the committee");
        }

        if (!from.Contains(p.State))
        {
            throw new ApiException(409, "conflict", "state", $"state: proposal {id} is {p.State}");
        }

        p.State = to;
        if (to == "submitted")
        {
            p.Submitted = now;
        }

        db.Events.Add(co.Event(c.User, "proposal." + to, $"proposal/{id}", p.Project,
            p.Gpus > 0 ? $"{p.Gpus} GPUs on {p.Partition}, {Months.Name(p.StartMonth)} for {p.Months} months" : $"{p.GpuHours:0} GPU-hours on {p.Partition}"));
        await db.SaveChangesAsync();
        return Results.Ok(ToDto(p));
    }

    private static async Task<IResult> MyAssignmentsAsync(HttpContext ctx, GpucDbFactory f, string? call)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsReviewer, "only reviewers have review assignments");
        await using var db = f.Create();
        var q = db.Set<ReviewRow>().AsNoTracking().Where(r => r.Reviewer == c.User);
        if (call is not null)
        {
            q = q.Where(r => r.CallId == call);
        }

        var rows = await q.Join(db.Set<ProposalRow>(), r => r.ProposalId, p => p.Id, (r, p) => new { r, p }).OrderBy(x => x.p.Id).Take(10_000).ToListAsync();
        return Results.Ok(rows.Select(x => new AssignmentDto(x.p.Id, x.p.CallId, x.p.Project, x.p.Title, x.p.Organisation, x.p.Partition, x.p.Gpus, x.p.GpuHours,
            x.p.Months, x.p.State, x.r.Submitted is not null)).ToList());
    }

    /// <summary>The reviews of a proposal its reader may see (see <see cref="ReviewDto"/>).</summary>
    public static async Task<List<ReviewDto>> VisibleReviewsAsync(GpucDb db, Caller c, ProposalRow p, CallRules rules)
    {
        var rows = await db.Set<ReviewRow>().AsNoTracking().Where(r => r.ProposalId == p.Id).OrderBy(r => r.Reviewer).ToListAsync();
        var mine = rows.FirstOrDefault(r => r.Reviewer == c.User);
        var committee = await RoundService.IsCommitteeAsync(db, c, p.CallId);
        var decided = RoundService.Decided.Contains(p.State);
        IEnumerable<ReviewRow> shown = committee ? rows
            : mine is not null ? (mine.Submitted is not null ? rows.Where(r => r.Submitted is not null || r == mine) : [mine])
            : c.InProject(p.Project) && decided ? rows.Where(r => r.Submitted is not null)
            : [];
        var list = new List<ReviewDto>();
        var n = 0;
        foreach (var r in shown)
        {
            n++;
            var scores = r.Submitted is null ? null : RoundService.ScoresOf(r.Scores);
            var named = committee || r == mine;
            list.Add(new ReviewDto(p.Id, named ? r.Reviewer : null, named ? r.Reviewer : $"#{n}", scores,
                scores is null ? null : Math.Round(Scoring.Weighted(rules.Criteria, scores), 2), r.Comment, r.Submitted));
        }

        return list;
    }

    private static async Task<IResult> ReviewsOfAsync(HttpContext ctx, GpucDbFactory f, long proposal)
    {
        var c = ctx.Caller();
        await using var db = f.Create();
        var p = await FindVisibleAsync(db, c, proposal);
        var call = await CallsApi.FindAsync(db, p.CallId);
        return Results.Ok(await VisibleReviewsAsync(db, c, p, RoundService.RulesOf(call)));
    }

    private static async Task<IResult> SubmitReviewAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time, long proposal)
    {
        var c = ctx.Caller();
        var body = await Http.ReadAsync<ReviewSubmitBody>(ctx, o);
        await using var db = co.Db.Create();
        var p = await FindVisibleAsync(db, c, proposal);
        var review = await db.Set<ReviewRow>().FindAsync(proposal, c.User);
        if (review is null)
        {
            throw ApiException.Forbidden($"you are not assigned to review proposal {proposal}");
        }

        var call = await CallsApi.FindAsync(db, p.CallId);
        if (call.Phase != "review" || p.State != "under_review")
        {
            throw new ApiException(409, "conflict", "state", $"state: proposal {proposal} is {p.State}; reviews are taken while it is under review");
        }

        if (review.Submitted is not null)
        {
            throw new ApiException(409, "conflict", "state", $"state: you submitted your review of proposal {proposal} on {review.Submitted:u}");
        }

        var rules = RoundService.RulesOf(call);
        Scoring.Validate(rules.Criteria, body.Scores);
        if (body.Comment is { Length: > 20_000 })
        {
            throw ApiException.Field("comment", "at most 20,000 characters");
        }

        review.Scores = JsonSerializer.Serialize(body.Scores, RoundService.Json);
        review.Comment = body.Comment;
        review.Submitted = time.GetUtcNow();
        var weighted = Scoring.Weighted(rules.Criteria, body.Scores!);
        // The event names the proposal, not the reviewer: webhook receivers and the applicant never learn who scored what.
        db.Events.Add(co.Event(c.User, "review.submitted", $"proposal/{proposal}", null, $"weighted {weighted.ToString("0.##", CultureInfo.InvariantCulture)}"));
        await db.SaveChangesAsync();
        return Results.Ok(new ReviewDto(proposal, c.User, c.User, RoundService.ScoresOf(review.Scores), Math.Round(weighted, 2), review.Comment, review.Submitted));
    }

    private static async Task<IResult> SetProfileAsync(HttpContext ctx, ServerOptions o, Coordinator co, string user)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin || (c.User == user && c.IsReviewer), "only the reviewer or an admin declares a reviewer's conflicts");
        var body = await Http.ReadAsync<ReviewerProfileBody>(ctx, o);
        if (body.Organisation is { Length: > 128 })
        {
            throw ApiException.Field("organisation", "at most 128 characters");
        }

        if (body.Conflicts is { Count: > 200 })
        {
            throw ApiException.Field("conflicts", "at most 200 organisations");
        }

        await using var db = co.Db.Create();
        if (await db.Users.FindAsync(user) is null)
        {
            throw ApiException.NotFound($"user {user}");
        }

        var row = await db.Set<ReviewerProfileRow>().FindAsync(user);
        if (row is null)
        {
            row = new ReviewerProfileRow { User = user };
            db.Add(row);
        }

        row.Organisation = body.Organisation ?? row.Organisation;
        if (body.Conflicts is not null)
        {
            row.Conflicts = JsonSerializer.Serialize(body.Conflicts, RoundService.Json);
        }

        db.Events.Add(co.Event(c.User, "reviewer.profile", $"user/{user}", null, $"organisation {row.Organisation}; conflicts {row.Conflicts ?? "[]"}"));
        await db.SaveChangesAsync();
        return Results.Ok(new ReviewerProfileBody { Organisation = row.Organisation, Conflicts = row.Conflicts is null ? [] : JsonSerializer.Deserialize<List<string>>(row.Conflicts, RoundService.Json) });
    }

    /// <summary>
    /// A monthly statement of a project (or of every project of an organisation): per project, partition and co-pay share,
    /// the ledger's GPU-hours, their market value and what the organisation pays, as the ledger recorded them when each
    /// job ended; the subsidy is the rest. Charges against allocations that are not awards are grants (nothing due).
    /// </summary>
    internal static async Task<StatementDto> StatementOfAsync(GpucDb db, string? project, string organisation, int month, CancellationToken ct = default)
    {
        var from = Months.Start(month);
        var to = Months.Start(month + 1);
        var q = db.Ledger.AsNoTracking().Where(l => l.Time >= from && l.Time < to);
        if (project is not null)
        {
            q = q.Where(l => l.Project == project);
        }
        else
        {
            var projects = db.Projects.Where(p => p.Organisation == organisation).Select(p => p.Name);
            q = q.Where(l => projects.Contains(l.Project));
        }

        var charges = await q.GroupBy(l => new { l.Project, l.Partition, l.CopayShare })
            .Select(g => new { g.Key.Project, g.Key.Partition, g.Key.CopayShare, GpuHours = g.Sum(x => x.GpuHours), Amount = g.Sum(x => x.Amount), Payable = g.Sum(x => x.Payable) })
            .ToListAsync(ct);
        var lines = charges.GroupBy(c => c.Project, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .SelectMany(g => Copay.Statement(g.Select(c => new ChargeLine(c.Partition, c.GpuHours, c.Amount, c.CopayShare, c.Payable)))
                .Select(l => new StatementLineDto(g.Key, l.Partition, Math.Round(l.GpuHours, 4), l.MarketAmount, l.Share, l.Due, l.Subsidy)))
            .ToList();
        return new StatementDto(project, organisation, Months.Name(month), lines, lines.Sum(l => l.GpuHours), lines.Sum(l => l.MarketAmount), lines.Sum(l => l.Due), lines.Sum(l => l.Subsidy));
    }

    private static async Task<IResult> StatementAsync(HttpContext ctx, GpucDbFactory f, TimeProvider time, string name, string? month, string? format)
    {
        var c = ctx.Caller();
        if (!c.SeesAllTenancy && !c.InProject(name))
        {
            throw ApiException.NotFound($"project {name}");
        }

        var (m, csv) = StatementQuery(time, month, format);
        await using var db = f.Create();
        var project = await db.Projects.FindAsync(name) ?? throw ApiException.NotFound($"project {name}");
        return StatementResult(await StatementOfAsync(db, name, project.Organisation, m, ctx.RequestAborted), csv);
    }

    private static async Task<IResult> OrganisationStatementAsync(HttpContext ctx, GpucDbFactory f, TimeProvider time, string name, string? month, string? format)
    {
        var c = ctx.Caller();
        var (m, csv) = StatementQuery(time, month, format);
        await using var db = f.Create();
        if (await db.Organisations.FindAsync(name) is null)
        {
            throw ApiException.NotFound($"organisation {name}");
        }

        // An organisation's statement covers projects the caller may not be in: staff only.
        TenancyApi.Require(c.SeesAllTenancy, "an organisation's statement is for staff; a project's members read the project's statement");
        return StatementResult(await StatementOfAsync(db, null, name, m, ctx.RequestAborted), csv);
    }

    private static (int Month, bool Csv) StatementQuery(TimeProvider time, string? month, string? format)
    {
        var m = Months.Of(time.GetUtcNow());
        if (month is not null && !Months.TryParse(month, out m))
        {
            throw ApiException.Field("month", "must be a month, yyyy-MM");
        }

        if (format is not (null or "json" or "csv"))
        {
            throw ApiException.Field("format", "must be json or csv");
        }

        return (m, format == "csv");
    }

    private static IResult StatementResult(StatementDto s, bool csv) => csv ? Results.Text(StatementCsv(s), "text/csv; charset=utf-8") : Results.Ok(s);

    /// <summary>The statement as CSV: one line per project, partition and share, market value beside what is paid.</summary>
    public static string StatementCsv(StatementDto s)
    {
        var csv = new StringBuilder("project,month,partition,gpu_hours,market_amount,copay_share,due,subsidy,organisation\n");
        foreach (var l in s.Lines)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{Csv(l.Project)},{s.Month},{Csv(l.Partition)},{l.GpuHours:0.####},{l.MarketAmount:0.##},{l.Share:0.####},{l.Due:0.##},{l.Subsidy:0.##},{Csv(s.Organisation)}\n");
        }

        return csv.ToString();
    }

    private static string Csv(string s) => s.Contains(',', StringComparison.Ordinal) || s.Contains('"', StringComparison.Ordinal) ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
}
