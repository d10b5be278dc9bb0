using GpuCommons.Server.Data;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

public sealed class ReviewModel : PortalPage
{
    public const int PageSize = 25;

    public sealed record Summary(string Partition, int Requests, double Asked, double Pending, double Awarded, double Capacity);

    public List<AllocationRequestRow> Requests { get; private set; } = [];
    public List<Summary> Summaries { get; private set; } = [];
    public string State { get; private set; } = "submitted";
    public long? Next { get; private set; }
    public int Count { get; private set; }

    public async Task<IActionResult> OnGetAsync(string? state, long? after)
    {
        if (!Caller.IsReviewer)
        {
            return Forbidden();
        }

        State = state is "awarded" or "rejected" ? state : "submitted";
        await using var db = Db.Create();
        var q = db.AllocationRequests.AsNoTracking().Where(r => r.State == State);
        Count = await q.CountAsync();
        if (after is { } a)
        {
            q = q.Where(r => r.Id > a);
        }

        Requests = await q.OrderBy(r => r.Id).Take(PageSize + 1).ToListAsync();
        if (Requests.Count > PageSize)
        {
            Requests.RemoveAt(PageSize);
            Next = Requests[^1].Id;
        }

        var all = await db.AllocationRequests.AsNoTracking().GroupBy(r => new { r.Partition, r.State })
            .Select(g => new { g.Key.Partition, g.Key.State, N = g.Count(), Asked = g.Sum(x => x.GpuHours), Awarded = g.Sum(x => x.AwardedGpuHours ?? 0) }).ToListAsync();
        var hours = 24 * 365.25 / 2; // a six-month call
        foreach (var g in all.GroupBy(x => x.Partition ?? "").OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var cap = g.Key.Length == 0 ? Co.Fleet.TotalGpus * hours : (Co.Fleet.FindPartition(g.Key)?.TotalGpus ?? 0) * hours;
            Summaries.Add(new Summary(g.Key, g.Sum(x => x.N), g.Sum(x => x.Asked), g.Where(x => x.State == "submitted").Sum(x => x.Asked), g.Sum(x => x.Awarded), cap));
        }

        return Page();
    }

    public async Task<IActionResult> OnPostAsync(long id, string decision, int? score, double? gpuHours, string? comment)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/allocation-requests/{id}/review", new
        {
            decision,
            score,
            gpuHours = decision == "award" ? gpuHours : null,
            comment = string.IsNullOrWhiteSpace(comment) ? null : comment,
        });
        return Back(r, decision == "award" ? L["Awarded_Flash", id] : L["Rejected_Flash", id], "/review");
    }
}
