using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

public sealed class SubmitModel : PortalPage
{
    [BindProperty] public string? Project { get; set; }
    [BindProperty] public string? Partition { get; set; }
    [BindProperty] public double Gpus { get; set; } = 1;
    [BindProperty] public string Walltime { get; set; } = "1h";
    [BindProperty] public string? Command { get; set; }
    [BindProperty] public string? Name { get; set; }
    [BindProperty] public bool Checkpointable { get; set; }

    public string? Error { get; private set; }
    /// <summary>The projects the caller may submit to: their own; every project for an admin, as the API allows.</summary>
    public IReadOnlyList<string> Projects { get; private set; } = [];
    public IReadOnlyList<string> Partitions => Co.Fleet.Partitions.Select(p => p.Name).ToList();

    public async Task OnGetAsync(string? project)
    {
        await LoadProjectsAsync();
        Project = project ?? Projects.FirstOrDefault();
    }

    private async Task LoadProjectsAsync()
    {
        if (Caller.IsAdmin)
        {
            await using var db = Db.Create();
            Projects = await db.Projects.AsNoTracking().OrderBy(p => p.Name).Select(p => p.Name).Take(5000).ToListAsync();
        }
        else
        {
            Projects = Caller.Projects.Keys.Order(StringComparer.Ordinal).ToList();
        }
    }

    public async Task<IActionResult> OnPostAsync()
    {
        var body = new
        {
            project = Project,
            name = string.IsNullOrWhiteSpace(Name) ? null : Name.Trim(),
            partition = string.IsNullOrEmpty(Partition) ? null : Partition,
            gpus = Gpus,
            walltime = Walltime,
            checkpointable = Checkpointable,
            command = string.IsNullOrWhiteSpace(Command) ? null : new[] { "/bin/sh", "-c", Command.Replace("\r\n", "\n", StringComparison.Ordinal) },
        };
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, "/api/jobs", body);
        if (!r.Ok)
        {
            Error = ServerText.Error(r, L);
            await LoadProjectsAsync();
            return Page();
        }

        var id = r.Json.GetProperty("id").GetInt64();
        Flash = L["JobSubmitted", id];
        return Redirect($"/jobs/{id}");
    }
}
