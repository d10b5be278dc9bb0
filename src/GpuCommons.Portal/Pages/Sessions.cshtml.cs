using GpuCommons.Contracts;
using GpuCommons.Server.Api;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

/// <summary>The caller's notebook sessions, with a Connect button for each ready one, and a form to start one.</summary>
public sealed class SessionsModel : PortalPage
{
    [BindProperty] public string? Project { get; set; }
    [BindProperty] public double Gpus { get; set; } = 1;
    [BindProperty] public string Walltime { get; set; } = "4h";

    public string? Error { get; private set; }
    public List<SessionDto> Sessions { get; private set; } = [];
    public IReadOnlyList<string> Projects => Caller.Projects.Keys.Order(StringComparer.Ordinal).ToList();

    public async Task OnGetAsync(string? project)
    {
        Project = project ?? Projects.FirstOrDefault();
        await LoadAsync();
    }

    public async Task<IActionResult> OnPostStartAsync()
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, "/api/sessions", new { kind = "jupyter", project = Project, gpus = Gpus, walltime = Walltime });
        if (!r.Ok)
        {
            Error = r.Error;
            await LoadAsync();
            return Page();
        }

        Flash = L["SessionStarted", r.Json.GetProperty("id").GetInt64()];
        return RedirectToPage();
    }

    public async Task<IActionResult> OnPostStopAsync(long id)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Delete, $"/api/sessions/{id}");
        return Back(r, L["SessionStopped", id]);
    }

    private async Task LoadAsync()
    {
        var user = Caller.User;
        await using var db = Db.Create();
        var rows = await db.Sessions.AsNoTracking().Where(s => s.User == user).OrderByDescending(s => s.JobId).Take(50).ToListAsync();
        var ids = rows.Select(r => r.JobId).ToList();
        var jobs = await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).ToDictionaryAsync(j => j.Id);
        Sessions = rows.Where(r => jobs.ContainsKey(r.JobId)).Select(r => SessionsApi.ToDto(r, jobs[r.JobId])).ToList();
    }
}
