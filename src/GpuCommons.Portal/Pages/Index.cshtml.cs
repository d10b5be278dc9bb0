using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

public sealed class IndexModel : PortalPage
{
    public sealed record AllocationLine(AllocationRow Row, string State, double Released, double Spent, double Running, double Queued, double Remaining, decimal Charged);

    public List<AllocationLine> Allocations { get; } = [];
    public List<JobRow> RecentJobs { get; private set; } = [];
    public Dictionary<long, decimal> JobCharges { get; private set; } = [];
    public int TotalAllocations { get; private set; }

    public async Task OnGetAsync()
    {
        var c = Caller;
        await using var db = Db.Create();
        var aq = db.Allocations.AsNoTracking();
        var jq = db.Jobs.AsNoTracking();
        if (!c.SeesAllTenancy)
        {
            var mine = c.Projects.Keys.ToList();
            aq = aq.Where(a => mine.Contains(a.Project));
            jq = jq.Where(j => mine.Contains(j.Project));
        }

        TotalAllocations = await aq.CountAsync();
        var rows = await aq.OrderBy(a => a.End).Take(50).ToListAsync();
        var ids = rows.Select(r => r.Id).ToList();
        var projects = rows.Select(r => r.Project).Distinct().ToList();
        var charged = await db.Ledger.AsNoTracking().Where(l => ids.Contains(l.AllocationId)).GroupBy(l => l.AllocationId)
            .Select(g => new { g.Key, Amount = g.Sum(x => x.Amount) }).ToDictionaryAsync(x => x.Key, x => x.Amount);
        var queued = (await db.Jobs.AsNoTracking().Where(j => j.State == JobState.Pending && projects.Contains(j.Project))
            .Select(j => new { j.Project, j.Partition, j.Gpus, j.WalltimeSeconds }).ToListAsync());
        var usage = await Co.AllocationUsageAsync();
        var now = Now;
        foreach (var a in rows)
        {
            var (_, spent, running) = usage.GetValueOrDefault(a.Id);
            var q = queued.Where(j => j.Project == a.Project && (a.Partition is null || j.Partition is null || j.Partition == a.Partition)).Sum(j => j.Gpus * j.WalltimeSeconds / 3600.0);
            var released = a.ReleasedGpuHours;
            var state = now < a.Start ? "scheduled" : now >= a.End ? "expired" : spent >= released ? "exhausted" : "active";
            Allocations.Add(new AllocationLine(a, state, released, spent, running, q, Math.Max(0, released - spent - running - q), charged.GetValueOrDefault(a.Id)));
        }

        RecentJobs = await jq.Where(j => j.User == c.User || c.SeesAllJobs).OrderByDescending(j => j.Id).Take(10).ToListAsync();
        var jobIds = RecentJobs.Select(j => j.Id).ToList();
        JobCharges = await db.Ledger.AsNoTracking().Where(l => jobIds.Contains(l.JobId)).GroupBy(l => l.JobId)
            .Select(g => new { g.Key, Amount = g.Sum(x => x.Amount) }).ToDictionaryAsync(x => x.Key, x => x.Amount);
    }
}
