using System.Globalization;
using GpuCommons.Contracts;
using GpuCommons.Core.Rounds;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using GpuCommons.Server.Rounds;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

/// <summary>A reviewer's assignments in a call: a score form per criterion; the others' reviews once theirs is in.</summary>
public sealed class CallReviewModel : PortalPage
{
    public CallRow Call { get; private set; } = null!;
    public CallRules Rules { get; private set; } = null!;
    public List<(ProposalRow Proposal, ReviewRow Mine, List<ReviewDto> Others)> Items { get; } = [];

    public async Task<IActionResult> OnGetAsync(string id)
    {
        if (!Caller.IsReviewer)
        {
            return Forbidden();
        }

        await using var db = Db.Create();
        var call = await db.Set<CallRow>().AsNoTracking().FirstOrDefaultAsync(c => c.Id == id);
        if (call is null)
        {
            return NotFound();
        }

        Call = call;
        Rules = RoundService.RulesOf(call);
        var rows = await db.Set<ReviewRow>().AsNoTracking().Where(r => r.CallId == id && r.Reviewer == Caller.User)
            .Join(db.Set<ProposalRow>(), r => r.ProposalId, p => p.Id, (r, p) => new { r, p }).OrderBy(x => x.p.Id).ToListAsync();
        foreach (var x in rows)
        {
            List<ReviewDto> others = x.r.Submitted is null ? [] : (await ProposalsApi.VisibleReviewsAsync(db, Caller, x.p, Rules)).Where(v => v.Reviewer != Caller.User).ToList();
            Items.Add((x.p, x.r, others));
        }

        return Page();
    }

    public async Task<IActionResult> OnPostAsync(string id, long proposal, string? comment)
    {
        var scores = new Dictionary<string, double>();
        foreach (var (k, v) in Request.Form)
        {
            if (k.StartsWith("score.", StringComparison.Ordinal) && double.TryParse(v.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
            {
                scores[k["score.".Length..]] = d;
            }
        }

        var r = await Api.SendAsync(HttpContext, HttpMethod.Put, $"/api/reviews/{proposal}", new { scores, comment = string.IsNullOrWhiteSpace(comment) ? null : comment });
        return Back(r, L["Rd_ReviewSaved", proposal], $"/calls/{id}/review");
    }
}
