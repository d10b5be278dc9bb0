using GpuCommons.Server.Data;
using GpuCommons.Server.Rounds;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

/// <summary>The selection committee's page: class budgets, the fleet's feasibility per partition and month, and the whole ranking.</summary>
public sealed class CommitteeModel : PortalPage
{
    public CommitteeView View { get; private set; } = null!;
    public string Status { get; private set; } = "";

    /// <summary>The call's awards, for the stage review (cut or end).</summary>
    public List<AwardRow> Awards { get; private set; } = [];

    /// <summary>The server's clock (an award still running can be cut or ended).</summary>
    public DateTimeOffset At => Now;

    public async Task<IActionResult> OnGetAsync(string id)
    {
        await using var db = Db.Create();
        var call = await db.Set<CallRow>().AsNoTracking().FirstOrDefaultAsync(c => c.Id == id);
        if (call is null)
        {
            return NotFound();
        }

        // Only the call's committee (and admins) sees the ranking.
        if (!await RoundService.IsCommitteeAsync(db, Caller, id, HttpContext.RequestAborted))
        {
            return Forbidden();
        }

        View = await RoundService.CommitteeAsync(db, Co.Fleet, call, HttpContext.RequestAborted);
        Awards = await db.Set<AwardRow>().AsNoTracking().Where(a => a.CallId == id).OrderBy(a => a.Id).ToListAsync(HttpContext.RequestAborted);
        Status = GpuCommons.Server.Api.CallsApi.Status(call, Now);
        return Page();
    }

    public async Task<IActionResult> OnPostAssignAsync(string id) =>
        Back(await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/calls/{id}/assign"), L["Rd_Assigned"], $"/calls/{id}/committee");

    public async Task<IActionResult> OnPostCutAsync(string id, string award, int gpus) =>
        Back(await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/awards/{Uri.EscapeDataString(award)}/cut", new { gpus }), L["Rd_AwardCut", award, gpus], $"/calls/{id}/committee");

    public async Task<IActionResult> OnPostEndAsync(string id, string award) =>
        Back(await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/awards/{Uri.EscapeDataString(award)}/end", new { }), L["Rd_AwardEnded", award], $"/calls/{id}/committee");

    public async Task<IActionResult> OnPostSelectAsync(string id, bool overrideFleet) =>
        Back(await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/calls/{id}/select", new { @override = overrideFleet }), L["Rd_Selected"], $"/calls/{id}/committee");
}
