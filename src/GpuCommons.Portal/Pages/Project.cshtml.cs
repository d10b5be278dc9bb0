using GpuCommons.Server.Data;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

public sealed class ProjectModel : PortalPage
{
    public const int ChartDays = 30;

    public string Name { get; private set; } = "";
    public ProjectRow? Project { get; private set; }
    public List<AllocationRequestRow> Requests { get; private set; } = [];
    public List<AllocationRow> Allocations { get; private set; } = [];
    public List<MembershipRow> Members { get; private set; } = [];
    public List<DateTime> Days { get; private set; } = [];
    public List<(string User, double[] Hours)> Usage { get; private set; } = [];
    public bool IsPi { get; private set; }
    /// <summary>Quotas that bind this project: its own and its organisation's.</summary>
    public List<(string Of, GpuCommons.Contracts.QuotaDto Quota)> Quotas { get; private set; } = [];
    public IReadOnlyList<string> Partitions => Co.Fleet.Partitions.Select(p => p.Name).ToList();

    public async Task<IActionResult> OnGetAsync(string name)
    {
        Name = name;
        if (!(Caller.SeesAllTenancy || Caller.InProject(name)))
        {
            Response.StatusCode = 404;
            return Page();
        }

        await using var db = Db.Create();
        Project = await db.Projects.AsNoTracking().FirstOrDefaultAsync(p => p.Name == name);
        if (Project is null)
        {
            Response.StatusCode = 404;
            return Page();
        }

        IsPi = Caller.IsAdmin || Caller.IsPi(name);
        var org = await db.Organisations.AsNoTracking().FirstOrDefaultAsync(o => o.Name == Project.Organisation);
        Quotas = [.. GpuCommons.Server.Api.QuotasApi.Dtos(Project.Quotas).Select(q => ("project", q)),
            .. GpuCommons.Server.Api.QuotasApi.Dtos(org?.Quotas).Select(q => ("organisation", q))];
        Requests = await db.AllocationRequests.AsNoTracking().Where(r => r.Project == name).OrderByDescending(r => r.Id).Take(50).ToListAsync();
        Allocations = await db.Allocations.AsNoTracking().Where(a => a.Project == name).OrderBy(a => a.End).Take(50).ToListAsync();
        Members = await db.Memberships.AsNoTracking().Where(m => m.Project == name).OrderBy(m => m.User).Take(500).ToListAsync();
        var first = Now.UtcDateTime.Date.AddDays(-(ChartDays - 1));
        Days = Enumerable.Range(0, ChartDays).Select(i => first.AddDays(i)).ToList();
        var from = new DateTimeOffset(first, TimeSpan.Zero);
        var ledger = await db.Ledger.AsNoTracking().Where(l => l.Project == name && l.Time >= from).Select(l => new { l.User, l.Time, l.GpuHours }).ToListAsync();
        Usage = ledger.GroupBy(l => l.User).OrderByDescending(g => g.Sum(x => x.GpuHours)).Take(8).Select(g =>
        {
            var v = new double[ChartDays];
            foreach (var l in g)
            {
                var d = (int)(l.Time.UtcDateTime.Date - first).TotalDays;
                if (d is >= 0 and < ChartDays)
                {
                    v[d] += l.GpuHours;
                }
            }

            return (g.Key, v);
        }).ToList();
        return Page();
    }

    public async Task<IActionResult> OnPostRequestAsync(string name, string? partition, double gpuHours, int months, string? justification)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, "/api/allocation-requests", new
        {
            project = name,
            partition = string.IsNullOrEmpty(partition) ? null : partition,
            gpuHours,
            months,
            justification,
        });
        return Back(r, L["RequestSent"], $"/projects/{Uri.EscapeDataString(name)}");
    }

    public async Task<IActionResult> OnPostAddMemberAsync(string name, string? user, string? role)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/projects/{Uri.EscapeDataString(name)}/members", new { user, role = role ?? "member" });
        return Back(r, L["MemberAdded", user ?? ""], $"/projects/{Uri.EscapeDataString(name)}");
    }

    public async Task<IActionResult> OnPostRemoveMemberAsync(string name, string user)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Delete, $"/api/projects/{Uri.EscapeDataString(name)}/members/{Uri.EscapeDataString(user)}");
        return Back(r, L["MemberRemoved", user], $"/projects/{Uri.EscapeDataString(name)}");
    }
}
