using System.Globalization;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Portal.Pages;

public sealed class JobModel : PortalPage
{
    public JobRow Job { get; private set; } = null!;
    public decimal Charged { get; private set; }
    public decimal Accruing { get; private set; }
    public QueueSnapshot.Entry? Entry { get; private set; }
    public string LogHead { get; private set; } = "";
    /// <summary>The end of the job's standard error (where a failing program says why), as it was when the page was made.</summary>
    public string ErrHead { get; private set; } = "";
    public long LogOffset { get; private set; }
    public bool CanCancel { get; private set; }
    public bool Missing { get; private set; }

    private async Task<JobRow?> VisibleAsync(long id)
    {
        await using var db = Db.Create();
        var row = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id);
        // Same answer for a job that does not exist and one in another project: no ids leak.
        return row is null || !Caller.CanSeeJobsOf(row.Project) ? null : row;
    }

    public async Task<IActionResult> OnGetAsync(long id)
    {
        if (await VisibleAsync(id) is not { } row)
        {
            Response.StatusCode = 404;
            Missing = true;
            return Page();
        }

        Job = row;
        await using var db = Db.Create();
        Charged = await db.Ledger.AsNoTracking().Where(l => l.JobId == id).SumAsync(l => (decimal?)l.Amount) ?? 0;
        if (row is { State: JobState.Running, StartTime: { } st })
        {
            Accruing = (decimal)(row.HeldGpus * (Now - st).TotalHours) * Rate(row.Partition);
        }

        if (row.State == JobState.Pending)
        {
            Entry = (await HttpContext.RequestServices.GetService<QueueSnapshot>()!.GetAsync()).GetValueOrDefault(id);
        }

        CanCancel = row.State is JobState.Pending or JobState.Running && (Caller.IsOperator || Caller.IsPi(row.Project) || row.User == Caller.User);
        (LogHead, LogOffset) = await TailAsync(row.StdoutPath, 64 * 1024);
        (ErrHead, _) = await TailAsync(row.StderrPath, 16 * 1024);
        return Page();
    }

    private static async Task<(string Text, long Offset)> TailAsync(string? path, int max)
    {
        if (path is null || !System.IO.File.Exists(path))
        {
            return ("", 0);
        }

        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var from = Math.Max(0, fs.Length - max);
        fs.Seek(from, SeekOrigin.Begin);
        var buf = new byte[fs.Length - from];
        var n = await fs.ReadAtLeastAsync(buf, buf.Length, false);
        return (System.Text.Encoding.UTF8.GetString(buf, 0, n), from + n);
    }

    /// <summary>New output since <paramref name="offset"/>, for the page's polling script.</summary>
    public async Task<IActionResult> OnGetLogAsync(long id, long offset)
    {
        if (await VisibleAsync(id) is not { } row)
        {
            return NotFound();
        }

        Response.Headers["X-Job-State"] = row.State.ToWire();
        Response.Headers.CacheControl = "no-store";
        if (row.StdoutPath is not { } path || !System.IO.File.Exists(path))
        {
            Response.Headers["X-Log-Offset"] = offset.ToString(CultureInfo.InvariantCulture);
            return Content("", "text/plain; charset=utf-8");
        }

        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        var from = Math.Clamp(offset, 0, fs.Length);
        fs.Seek(from, SeekOrigin.Begin);
        var buf = new byte[(int)Math.Min(256 * 1024, fs.Length - from)];
        var n = await fs.ReadAtLeastAsync(buf, buf.Length, false);
        Response.Headers["X-Log-Offset"] = (from + n).ToString(CultureInfo.InvariantCulture);
        return Content(System.Text.Encoding.UTF8.GetString(buf, 0, n), "text/plain; charset=utf-8");
    }

    public async Task<IActionResult> OnPostCancelAsync(long id)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/jobs/{id}/cancel");
        return Back(r, L["CancelRequested"], $"/jobs/{id}");
    }
}
