using GpuCommons.Contracts;
using GpuCommons.Core.Rounds;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using GpuCommons.Server.Rounds;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

/// <summary>A call as its applicants see it: the text, rules and criteria; the PI's proposals, their outcome and the reviewers' comments (no names).</summary>
public sealed class CallModel : PortalPage
{
    public CallRow Call { get; private set; } = null!;
    public CallRules Rules { get; private set; } = null!;
    public string Status { get; private set; } = "";
    public List<ProposalRow> Mine { get; } = [];
    public Dictionary<long, List<ReviewDto>> Comments { get; } = [];
    public List<string> PiProjects { get; private set; } = [];
    public string? Error { get; private set; }

    [BindProperty] public string? Project { get; set; }
    [BindProperty] public string? Title { get; set; }
    [BindProperty] public string? Team { get; set; }
    [BindProperty] public string? Partition { get; set; }
    [BindProperty] public int? Gpus { get; set; }
    [BindProperty] public double? GpuHours { get; set; }
    [BindProperty] public string? StartMonth { get; set; }
    [BindProperty] public int Months { get; set; } = 6;
    [BindProperty] public string? Justification { get; set; }
    [BindProperty] public bool Regional { get; set; }
    [BindProperty] public bool Youth { get; set; }

    private async Task<bool> LoadAsync(string id)
    {
        await using var db = Db.Create();
        var call = await db.Set<CallRow>().AsNoTracking().FirstOrDefaultAsync(c => c.Id == id);
        if (call is null)
        {
            return false;
        }

        Call = call;
        Rules = RoundService.RulesOf(call);
        Status = CallsApi.Status(call, Now);
        PiProjects = Caller.Projects.Where(p => p.Value == "pi").Select(p => p.Key).Order(StringComparer.Ordinal).ToList();
        var mine = Caller.Projects.Keys.ToList();
        Mine.AddRange(await db.Set<ProposalRow>().AsNoTracking().Where(p => p.CallId == id && mine.Contains(p.Project)).OrderBy(p => p.Id).ToListAsync());
        foreach (var p in Mine.Where(p => RoundService.Decided.Contains(p.State)))
        {
            Comments[p.Id] = await ProposalsApi.VisibleReviewsAsync(db, Caller, p, Rules);
        }

        StartMonth ??= GpuCommons.Core.Rounds.Months.Name(GpuCommons.Core.Rounds.Months.Of(Now) + 1);
        Partition ??= Rules.Partitions.FirstOrDefault();
        Project ??= PiProjects.FirstOrDefault();
        return true;
    }

    public async Task<IActionResult> OnGetAsync(string id) => await LoadAsync(id) ? Page() : NotFound();

    public async Task<IActionResult> OnPostAsync(string id, string submitNow)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, "/api/proposals", new
        {
            call = id,
            project = Project,
            title = Title,
            team = Team ?? "",
            partition = Partition,
            gpus = GpuHours is > 0 ? null : Gpus,
            gpuHours = GpuHours is > 0 ? GpuHours : null,
            startMonth = StartMonth,
            months = Months,
            justification = Justification,
            regional = Regional,
            youth = Youth,
        });
        if (r.Ok && submitNow == "yes")
        {
            var pid = r.Json.GetProperty("id").GetInt64();
            r = await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/proposals/{pid}/submit");
        }

        if (!r.Ok)
        {
            Error = r.Error;
            return await LoadAsync(id) ? Page() : NotFound();
        }

        var idNew = r.Json.GetProperty("id").GetInt64();
        Flash = submitNow == "yes" ? L["Rd_SubmittedFlash", idNew] : L["Rd_Saved", idNew];
        return Redirect($"/calls/{id}");
    }

    public async Task<IActionResult> OnPostMoveAsync(string id, long proposal, string to)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/proposals/{proposal}/{(to == "withdraw" ? "withdraw" : "submit")}");
        return Back(r, to == "withdraw" ? L["Rd_WithdrawnFlash", proposal] : L["Rd_SubmittedFlash", proposal], $"/calls/{id}");
    }
}
