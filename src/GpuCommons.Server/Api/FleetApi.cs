using GpuCommons.Contracts;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Api;

public sealed class NodeActionBody
{
    public string? Reason { get; set; }
}

public sealed class ReservationBody
{
    public string? Name { get; set; }
    public List<string>? Nodes { get; set; }
    public DateTimeOffset? Start { get; set; }
    public DateTimeOffset? End { get; set; }
    /// <summary>Project the nodes are reserved for; null: maintenance.</summary>
    public string? Project { get; set; }
}

public sealed record PartitionDto(string Name, string GpuModel, int Nodes, int Gpus, decimal RatePerGpuHour);
public sealed record ReservationDto(string Name, IReadOnlyList<string> Nodes, DateTimeOffset Start, DateTimeOffset End, string? Project);
public sealed record EventDto(long Id, DateTimeOffset Time, string Actor, string Kind, string Subject, string? Project, string? Detail);

internal static class FleetApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var fleet = api.MapGroup("").WithTags("fleet");
        fleet.MapGet("/partitions", (Coordinator co) => Results.Ok(co.Fleet.Partitions.Select(p =>
            new PartitionDto(p.Name, p.GpuModel, p.Nodes.Count, p.TotalGpus, p.RatePerGpuHour)).ToList())).Produces<List<PartitionDto>>();
        fleet.MapGet("/nodes", (Coordinator co, string? partition) =>
        {
            var states = co.NodeStates;
            var list = new List<NodeDto>();
            foreach (var n in co.Fleet.Nodes)
            {
                var part = co.Fleet.Partitions[n.PartitionIndex].Name;
                if (partition is not null && part != partition)
                {
                    continue;
                }

                var (st, reason) = states.TryGetValue(n.Name, out var s) ? s : (n.InitialState, null);
                var uuids = co.Discovered?.Nodes.FirstOrDefault(d => d.Name == n.Name)?.Gpus.Select(g => g.Uuid).ToList() ?? [];
                list.Add(new NodeDto(n.Name, part, n.Gpus, st.ToString().ToLowerInvariant(), reason, uuids));
            }

            return Results.Ok(list);
        }).Produces<List<NodeDto>>();
        fleet.MapPost("/nodes/{name}/drain", (HttpContext ctx, ServerOptions o, Coordinator co, string name) => SetStateAsync(ctx, o, co, name, NodeState.Draining)).Produces<NodeDto>();
        fleet.MapPost("/nodes/{name}/undrain", (HttpContext ctx, ServerOptions o, Coordinator co, string name) => SetStateAsync(ctx, o, co, name, NodeState.Up)).Produces<NodeDto>();
        fleet.MapPost("/nodes/{name}/down", (HttpContext ctx, ServerOptions o, Coordinator co, string name) => SetStateAsync(ctx, o, co, name, NodeState.Down)).Produces<NodeDto>();
        fleet.MapGet("/reservations", async (HttpContext ctx, GpucDbFactory f) =>
        {
            await using var db = f.Create();
            var rows = await db.Reservations.AsNoTracking().OrderBy(r => r.Name).ToListAsync();
            var c = ctx.Caller();
            return Results.Ok(rows.Where(r => c.SeesAllTenancy || r.Project is null || c.InProject(r.Project))
                .Select(r => new ReservationDto(r.Name, r.Nodes.Split(','), r.Start, r.End, r.Project)).ToList());
        }).Produces<List<ReservationDto>>();
        fleet.MapPost("/reservations", AddReservationAsync).Accepts<ReservationBody>("application/json").Produces<ReservationDto>(201).WithSummary("Reserve nodes for a project or maintenance (operator)");
        fleet.MapDelete("/reservations/{name}", async (HttpContext ctx, Coordinator co, string name) =>
        {
            var c = ctx.Caller();
            TenancyApi.Require(c.IsOperator, "only operators manage reservations");
            await co.RemoveReservationAsync(name, c.User);
            return Results.NoContent();
        });

        api.MapGet("/fleet/discrepancies", DiscrepanciesAsync).WithTags("fleet").Produces<DiscrepancyReport>()
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status401Unauthorized).ProducesProblem(StatusCodes.Status403Forbidden)
            .WithSummary("Where the server and the backend (Slurm) disagree: lost, unknown, duplicate, not started, wrong nodes, ended, unreachable, slow, unreadable output (operator)")
            .WithDescription("state=open (default), resolved or all; kind filters by kind; newest first, at most limit. Reconciliation tells when the last pass ran, whether the cluster manager answered, and why a pass concluded nothing.");

        api.MapGet("/usage", UsageAsync).WithTags("usage").Produces<List<UsageRow>>()
            .WithSummary("GPU-hours granted, spent (ledger), committed (running jobs) and remaining, by=allocation|project|member|orgtype");
        api.MapGet("/events", async (HttpContext ctx, GpucDbFactory f, ServerOptions o, string? kind, long? after, int? limit) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var q = db.Events.AsNoTracking();
            if (!c.SeesAllJobs)
            {
                var mine = c.Projects.Keys.ToList();
                q = c.Role == Security.Caller.Reviewer
                    ? q.Where(e => e.Kind.StartsWith("allocation"))
                    : q.Where(e => e.Project != null && mine.Contains(e.Project));
            }

            if (kind is not null)
            {
                q = q.Where(e => e.Kind == kind || e.Kind.StartsWith(kind + "."));
            }

            if (after is not null)
            {
                q = q.Where(e => e.Id > after);
            }

            var take = Http.Limit(limit, o);
            var rows = await q.OrderBy(e => e.Id).Take(take + 1).ToListAsync();
            return Results.Ok(TenancyApi.PageOf(rows, take, e => new EventDto(e.Id, e.Time, e.Actor, e.Kind, e.Subject, e.Project, e.Detail),
                e => e.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }).WithTags("events").Produces<Page<EventDto>>().WithSummary("Audit events and allocation alerts (kind=allocation.alert)");
    }

    private static async Task<IResult> DiscrepanciesAsync(HttpContext ctx, GpucDbFactory f, ServerOptions o, ReconciliationService rec, string? state, string? kind, int? limit)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsOperator, "only operators see discrepancies with the backend");
        state ??= "open";
        if (state is not ("open" or "resolved" or "all"))
        {
            throw ApiException.Field("state", "must be open, resolved or all");
        }

        await using var db = f.Create();
        var q = db.Discrepancies.AsNoTracking();
        q = state switch
        {
            "open" => q.Where(d => d.Resolved == null),
            "resolved" => q.Where(d => d.Resolved != null),
            _ => q,
        };
        if (kind is not null)
        {
            q = q.Where(d => d.Kind == kind);
        }

        var take = Http.Limit(limit, o);
        var rows = await q.OrderByDescending(d => d.LastSeen).ThenByDescending(d => d.Id).Take(take).ToListAsync();
        var open = await db.Discrepancies.CountAsync(d => d.Resolved == null);
        return Results.Ok(new DiscrepancyReport(rec.Status, open, rows.Select(d => new DiscrepancyDto(d.Id, d.Kind, d.JobId, d.Attempt, d.ExternalId, d.Node,
            d.Detail, d.SuggestedAction, d.FirstSeen, d.LastSeen, d.Seen, d.Resolved, d.Action)).ToList()));
    }

    private static async Task<IResult> SetStateAsync(HttpContext ctx, ServerOptions o, Coordinator co, string name, NodeState state)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsOperator, "only operators change node states");
        var node = co.Fleet.FindNode(name) ?? throw ApiException.NotFound($"node {name}");
        string? reason = null;
        if (ctx.Request.ContentLength > 0)
        {
            reason = (await Http.ReadAsync<NodeActionBody>(ctx, o)).Reason;
        }

        await co.ChangeNodeStateAsync(name, state, reason, c.User);
        return Results.Ok(new NodeDto(name, co.Fleet.Partitions[node.PartitionIndex].Name, node.Gpus, state.ToString().ToLowerInvariant(), reason, []));
    }

    private static async Task<IResult> AddReservationAsync(HttpContext ctx, ServerOptions o, Coordinator co)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsOperator, "only operators manage reservations");
        var body = await Http.ReadAsync<ReservationBody>(ctx, o);
        TenancyApi.CheckName(body.Name, "name");
        if (body.Nodes is null || body.Nodes.Count == 0)
        {
            throw ApiException.Field("nodes", "is required: node names");
        }

        for (var i = 0; i < body.Nodes.Count; i++)
        {
            if (co.Fleet.FindNode(body.Nodes[i] ?? "") is null)
            {
                throw ApiException.Field($"nodes[{i}]", $"unknown node '{body.Nodes[i]}'");
            }
        }

        if (body.Start is null)
        {
            throw ApiException.Field("start", "is required");
        }

        if (body.End is null || body.End <= body.Start)
        {
            throw ApiException.Field("end", "is required and must be after start");
        }

        var row = new ReservationRow { Name = body.Name!, Nodes = string.Join(',', body.Nodes), Start = body.Start.Value.ToUniversalTime(), End = body.End.Value.ToUniversalTime(), Project = body.Project };
        await co.AddReservationAsync(row, c.User);
        return Results.Created(InputRules.Location("reservations", row.Name), new ReservationDto(row.Name, body.Nodes, row.Start, row.End, row.Project));
    }

    private static async Task<IResult> UsageAsync(HttpContext ctx, GpucDbFactory f, Coordinator co, string? by)
    {
        var c = ctx.Caller();
        by ??= "project";
        if (by is not ("allocation" or "project" or "member" or "orgtype"))
        {
            throw ApiException.Field("by", "must be allocation, project, member or orgtype");
        }

        if (by == "orgtype" && !c.SeesAllTenancy)
        {
            throw ApiException.Forbidden("usage by organisation type is for staff");
        }

        await using var db = f.Create();
        var mine = c.Projects.Keys.ToList();
        var all = c.SeesAllTenancy;
        var ledger = await db.Ledger.AsNoTracking().Where(l => all || mine.Contains(l.Project))
            .GroupBy(l => new { l.AllocationId, l.Project, l.User })
            .Select(g => new { g.Key.AllocationId, g.Key.Project, g.Key.User, Hours = g.Sum(x => x.GpuHours), Amount = g.Sum(x => x.Amount) }).ToListAsync();
        var running = await db.Jobs.AsNoTracking().Where(j => j.State == JobState.Running && (all || mine.Contains(j.Project)))
            .Select(j => new { j.AllocationId, j.Project, j.User, j.HeldGpus, j.WalltimeSeconds }).ToListAsync();
        var allocs = await db.Allocations.AsNoTracking().Where(a => all || mine.Contains(a.Project)).ToListAsync();
        var projOrg = await db.Projects.AsNoTracking().Join(db.Organisations, p => p.Organisation, o => o.Name, (p, o) => new { p.Name, o.Type }).ToDictionaryAsync(x => x.Name, x => x.Type);

        string Key(string? alloc, string project, string user) => by switch
        {
            "allocation" => alloc ?? "",
            "project" => project,
            "member" => $"{project}/{user}",
            _ => projOrg.GetValueOrDefault(project, "unknown"),
        };

        var rows = new Dictionary<string, (double G, double S, double C, decimal A)>(StringComparer.Ordinal);
        foreach (var a in allocs)
        {
            if (by == "member")
            {
                break;
            }

            var k = Key(a.Id, a.Project, "");
            var r = rows.GetValueOrDefault(k);
            rows[k] = (r.G + a.ReleasedGpuHours, r.S, r.C, r.A);
        }

        foreach (var l in ledger)
        {
            var k = Key(l.AllocationId, l.Project, l.User);
            var r = rows.GetValueOrDefault(k);
            rows[k] = (r.G, r.S + l.Hours, r.C, r.A + l.Amount);
        }

        foreach (var j in running)
        {
            var k = Key(j.AllocationId, j.Project, j.User);
            var r = rows.GetValueOrDefault(k);
            rows[k] = (r.G, r.S, r.C + j.HeldGpus * j.WalltimeSeconds / 3600.0, r.A);
        }

        var result = rows
            .Where(kv => by != "member" || c.SeesAllTenancy || kv.Key.EndsWith("/" + c.User, StringComparison.Ordinal) || c.IsPi(kv.Key.Split('/')[0]))
            .OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => new UsageRow(kv.Key, Math.Round(kv.Value.G, 6), Math.Round(kv.Value.S, 6), Math.Round(kv.Value.C, 6),
                Math.Round(Math.Max(0, kv.Value.G - kv.Value.S - kv.Value.C), 6), kv.Value.A)).ToList();
        return Results.Ok(result);
    }
}
