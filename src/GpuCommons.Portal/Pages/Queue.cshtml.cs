using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Portal.Pages;

public sealed class QueueModel : PortalPage
{
    public const int PageSize = 50;

    public List<JobRow> Jobs { get; private set; } = [];
    public IReadOnlyDictionary<long, QueueSnapshot.Entry> Entries { get; private set; } = new Dictionary<long, QueueSnapshot.Entry>();
    public int Pending { get; private set; }
    public int Running { get; private set; }
    public long? Next { get; private set; }
    public long? After { get; private set; }
    public string State { get; private set; } = "pending,running";
    public bool Mine { get; private set; }

    public async Task OnGetAsync(long? after, string? state, bool mine = false)
    {
        var c = Caller;
        After = after;
        Mine = mine;
        State = state is "pending" or "running" ? state : "pending,running";
        await using var db = Db.Create();
        var q = db.Jobs.AsNoTracking();
        if (!c.SeesAllJobs)
        {
            var projects = c.Projects.Keys.ToList();
            q = q.Where(j => projects.Contains(j.Project));
        }

        if (mine)
        {
            q = q.Where(j => j.User == c.User);
        }

        Pending = await q.CountAsync(j => j.State == "pending");
        Running = await q.CountAsync(j => j.State == "running");
        q = State == "pending,running" ? q.Where(j => j.State == "pending" || j.State == "running") : q.Where(j => j.State == State);
        if (after is { } a)
        {
            q = q.Where(j => j.Id > a);
        }

        Jobs = await q.OrderBy(j => j.Id).Take(PageSize + 1).ToListAsync();
        if (Jobs.Count > PageSize)
        {
            Jobs.RemoveAt(PageSize);
            Next = Jobs[^1].Id;
        }

        if (Jobs.Any(j => j.State == "pending"))
        {
            Entries = await HttpContext.RequestServices.GetRequiredService<QueueSnapshot>().GetAsync();
        }
    }
}
