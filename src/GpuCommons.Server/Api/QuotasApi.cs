using System.Text.Json;
using GpuCommons.Contracts;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Api;

internal static class QuotasApi
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static void Map(RouteGroupBuilder api)
    {
        api.MapPut("/organisations/{name}/quotas", SetOrganisationAsync).WithTags("tenancy").Accepts<SetQuotasRequest>("application/json")
            .Produces<IReadOnlyList<QuotaDto>>().ProducesProblem(400).ProducesProblem(404)
            .WithSummary("Replace an organisation's quotas (admin). Running jobs keep running; nothing more is admitted past them");
        api.MapPut("/projects/{name}/quotas", SetProjectAsync).WithTags("tenancy").Accepts<SetQuotasRequest>("application/json")
            .Produces<IReadOnlyList<QuotaDto>>().ProducesProblem(400).ProducesProblem(404)
            .WithSummary("Replace a project's quotas (admin). Running jobs keep running; nothing more is admitted past them");
    }

    /// <summary>Checks quotas given in a request against the fleet; each error names its field.</summary>
    internal static List<QuotaSpec> Parse(List<QuotaRequest>? quotas, Fleet fleet, string field = "quotas")
    {
        if (quotas is null)
        {
            return [];
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        var specs = new List<QuotaSpec>(quotas.Count);
        for (var i = 0; i < quotas.Count; i++)
        {
            var q = quotas[i] ?? throw ApiException.Field($"{field}[{i}]", "must be an object");
            var at = $"{field}[{i}]";
            if (string.IsNullOrWhiteSpace(q.Partition))
            {
                throw ApiException.Field(at + ".partition", "is required");
            }

            if (fleet.FindPartition(q.Partition) is null)
            {
                throw ApiException.Field(at + ".partition", $"unknown partition '{q.Partition}' (the fleet has {string.Join(", ", fleet.Partitions.Select(p => p.Name))})");
            }

            if (!seen.Add(q.Partition))
            {
                throw ApiException.Field(at + ".partition", $"partition '{q.Partition}' is listed twice");
            }

            if (q.NominalGpus is null)
            {
                throw ApiException.Field(at + ".nominalGpus", "is required");
            }

            var spec = new QuotaSpec(q.Partition, q.NominalGpus.Value, q.BorrowingLimitGpus, q.LendingLimitGpus);
            spec.Validate(at);
            specs.Add(spec);
        }

        return specs;
    }

    internal static string? ToJson(List<QuotaSpec> quotas) => quotas.Count == 0 ? null : JsonSerializer.Serialize(Dtos(quotas), Json);

    internal static List<QuotaSpec> FromJson(string? json) =>
        json is null ? [] : (JsonSerializer.Deserialize<List<QuotaDto>>(json, Json) ?? []).Select(d => new QuotaSpec(d.Partition, d.NominalGpus, d.BorrowingLimitGpus, d.LendingLimitGpus)).ToList();

    internal static List<QuotaDto> Dtos(IEnumerable<QuotaSpec> quotas) =>
        quotas.Select(q => new QuotaDto(q.Partition, q.NominalGpus, q.BorrowingLimitGpus, q.LendingLimitGpus)).ToList();

    internal static List<QuotaDto> Dtos(string? json) => Dtos(FromJson(json));

    private static async Task<IResult> SetOrganisationAsync(HttpContext ctx, ServerOptions o, Coordinator co, string name)
    {
        var c = ctx.Caller();
        if (!c.IsAdmin)
        {
            // Those who can see the organisation learn that they may not change it; others learn nothing.
            await using var look = ctx.RequestServices.GetRequiredService<GpucDbFactory>().Create();
            var mine = c.Projects.Keys.ToList();
            var sees = await look.Organisations.AnyAsync(o => o.Name == name)
                && (c.SeesAllTenancy || await look.Projects.AnyAsync(p => p.Organisation == name && mine.Contains(p.Name)));
            throw sees ? ApiException.Forbidden("only an admin sets quotas") : ApiException.NotFound($"organisation {name}");
        }

        return await ReplaceAsync(ctx, o, co, (q, actor) => co.SetOrganisationQuotasAsync(name, q, actor));
    }

    private static async Task<IResult> SetProjectAsync(HttpContext ctx, ServerOptions o, Coordinator co, string name)
    {
        var c = ctx.Caller();
        if (!c.IsAdmin)
        {
            throw c.SeesAllTenancy || c.InProject(name) ? ApiException.Forbidden("only an admin sets quotas") : ApiException.NotFound($"project {name}");
        }

        return await ReplaceAsync(ctx, o, co, (q, actor) => co.SetProjectQuotasAsync(name, q, actor));
    }

    /// <summary>Reads the new quotas and sends them to the loop, which stores them with an audit event and gives them to the engine.</summary>
    private static async Task<IResult> ReplaceAsync(HttpContext ctx, ServerOptions o, Coordinator co, Func<List<QuotaSpec>, string, Task> send)
    {
        var req = await Http.ReadAsync<SetQuotasRequest>(ctx, o);
        var quotas = Parse(req.Quotas ?? throw ApiException.Field("quotas", "is required: an array, empty for none"), co.Fleet);
        await send(quotas, ctx.Caller().User);
        return Results.Ok(Dtos(quotas));
    }

    internal static string Describe(IReadOnlyList<QuotaSpec> quotas) =>
        quotas.Count == 0
            ? "none"
            : string.Join("; ", quotas.Select(q => $"{q.Partition}: {q.NominalGpus} GPUs"
                + (q.BorrowingLimitGpus is { } b ? $", borrow ≤ {b}" : "")
                + (q.LendingLimitGpus is { } l ? $", lend ≤ {l}" : "")));
}
