using GpuCommons.Contracts;
using GpuCommons.Core.Rounds;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

/// <summary>
/// A monthly statement from the ledger, per project (its members and staff) or per organisation (staff): GPU-hours, their
/// market value and what the organisation pays (its co-pay), the public subsidy beside it; downloadable as CSV.
/// </summary>
public sealed class StatementModel : PortalPage
{
    [BindProperty(SupportsGet = true)] public string? Project { get; set; }
    [BindProperty(SupportsGet = true)] public string? Organisation { get; set; }
    [BindProperty(SupportsGet = true)] public string? Month { get; set; }

    public StatementDto? Statement { get; private set; }
    public List<string> Projects { get; private set; } = [];
    public List<string> Organisations { get; private set; } = [];
    public string? Error { get; private set; }

    /// <summary>The query of this statement, for the CSV link.</summary>
    public string Query => (Organisation is { Length: > 0 } o ? $"organisation={Uri.EscapeDataString(o)}" : $"project={Uri.EscapeDataString(Project ?? "")}")
        + $"&month={Uri.EscapeDataString(Month ?? "")}";

    public Task<IActionResult> OnGetAsync() => LoadAsync(csv: false);

    public Task<IActionResult> OnGetCsvAsync() => LoadAsync(csv: true);

    private async Task<IActionResult> LoadAsync(bool csv)
    {
        await using var db = Db.Create();
        Projects = Caller.SeesAllTenancy
            ? await db.Projects.AsNoTracking().OrderBy(p => p.Name).Select(p => p.Name).Take(5000).ToListAsync()
            : Caller.Projects.Keys.Order(StringComparer.Ordinal).ToList();
        if (Caller.SeesAllTenancy)
        {
            Organisations = await db.Organisations.AsNoTracking().OrderBy(o => o.Name).Select(o => o.Name).Take(5000).ToListAsync();
        }

        Month ??= Months.Name(Months.Of(Now));
        if (!Months.TryParse(Month, out var month))
        {
            Error = L["Rd_ErrMonth"];
            return csv ? BadRequest(Error) : Page();
        }

        if (Organisation is { Length: > 0 } org)
        {
            if (await db.Organisations.FindAsync(org) is null)
            {
                return NotFound();
            }

            if (!Caller.SeesAllTenancy)
            {
                return Forbidden();
            }

            Statement = await ProposalsApi.StatementOfAsync(db, null, org, month, HttpContext.RequestAborted);
        }
        else
        {
            Project ??= Projects.FirstOrDefault();
            if (Project is null)
            {
                return csv ? NotFound() : Page();
            }

            if (!Caller.SeesAllTenancy && !Caller.InProject(Project))
            {
                return NotFound();
            }

            var p = await db.Projects.FindAsync(Project);
            if (p is null)
            {
                return NotFound();
            }

            Statement = await ProposalsApi.StatementOfAsync(db, Project, p.Organisation, month, HttpContext.RequestAborted);
        }

        if (csv)
        {
            var name = $"statement-{Statement.Project ?? Statement.Organisation}-{Statement.Month}.csv".Replace(' ', '_');
            return File(System.Text.Encoding.UTF8.GetBytes(ProposalsApi.StatementCsv(Statement)), "text/csv; charset=utf-8", name);
        }

        return Page();
    }
}
