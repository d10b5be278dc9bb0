using System.Globalization;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

public sealed class CallsModel : PortalPage
{
    public List<(CallRow Call, string Status, int Proposals)> Calls { get; } = [];

    /// <summary>Calls whose committee the caller sits on (admins sit on every one).</summary>
    public HashSet<string> Sits { get; private set; } = [];

    public static bool Korean => CultureInfo.CurrentUICulture.TwoLetterISOLanguageName == "ko";

    public async Task OnGetAsync()
    {
        await using var db = Db.Create();
        var rows = await db.Set<CallRow>().AsNoTracking().OrderByDescending(c => c.Opens).Take(200).ToListAsync();
        var counts = await db.Set<ProposalRow>().AsNoTracking().Where(p => p.State != "draft" && p.State != "withdrawn")
            .GroupBy(p => p.CallId).Select(g => new { g.Key, N = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.N);
        Sits = [.. await GpuCommons.Server.Rounds.RoundService.CommitteeCallsAsync(db, Caller.User)];
        foreach (var c in rows)
        {
            Calls.Add((c, CallsApi.Status(c, Now), counts.GetValueOrDefault(c.Id)));
        }
    }
}
