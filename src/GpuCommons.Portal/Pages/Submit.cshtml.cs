using System.Text.Json;
using Microsoft.AspNetCore.Mvc;

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
    public IReadOnlyList<string> Projects => Caller.Projects.Keys.Order(StringComparer.Ordinal).ToList();
    public IReadOnlyList<string> Partitions => Co.Fleet.Partitions.Select(p => p.Name).ToList();

    public void OnGet(string? project) => Project = project ?? Projects.FirstOrDefault();

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
            Error = r.Error;
            return Page();
        }

        var id = r.Json.GetProperty("id").GetInt64();
        Flash = L["JobSubmitted", id];
        return Redirect($"/jobs/{id}");
    }
}
