using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
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
        State = state is JobStateNames.Pending or JobStateNames.Running ? state : "pending,running";
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

        Pending = await q.CountAsync(j => j.State == JobState.Pending);
        Running = await q.CountAsync(j => j.State == JobState.Running);
        if (JobStateNames.TryParse(State, out var only))
        {
            q = q.Where(j => j.State == only);
        }
        else
        {
            q = q.Where(j => j.State == JobState.Pending || j.State == JobState.Running);
        }
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

        if (Jobs.Any(j => j.State == JobState.Pending))
        {
            Entries = await HttpContext.RequestServices.GetRequiredService<QueueSnapshot>().GetAsync();
        }
    }
}
