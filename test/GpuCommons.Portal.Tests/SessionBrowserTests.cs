using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace GpuCommons.Portal.Tests;

/// <summary>
/// A browser test that starts a real Jupyter (Debian's python3-notebook, installed by ci/install-containers.sh): skipped
/// with the reason where it or Chromium is missing, except on CI (CI=true), where it fails.
/// </summary>
public sealed class NotebookFactAttribute : FactAttribute
{
    public NotebookFactAttribute()
    {
        if (BrowserFactAttribute.OnCi)
        {
            return;
        }

        if (!File.Exists(PortalSite.Chromium))
        {
            Skip = $"{PortalSite.Chromium} is not installed (apt-get install chromium)";
        }
        else if (!JupyterInstalled())
        {
            Skip = "Jupyter is not installed for /usr/bin/python3 (bash ci/install-containers.sh; CI=true makes this a failure)";
        }
    }

    public static bool JupyterInstalled()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("/usr/bin/python3", "-c \"import notebook, ipykernel\"") { RedirectStandardError = true, UseShellExecute = false });
            p!.WaitForExit(60_000);
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

[Collection("portal")]
public sealed class SessionBrowserTests(PortalSite site)
{
    [NotebookFact]
    public async Task Researcher_starts_a_notebook_runs_a_cell_that_sees_its_GPU_and_another_tenant_gets_404()
    {
        NotebookFactAttribute.JupyterInstalled().ShouldBeTrue("python3-notebook must be installed on CI (ci/install-containers.sh)");
        var alice = await site.SignInAsync("alice");
        await alice.GotoAsync($"{site.BaseUrl}/sessions");
        await alice.SelectOptionAsync("#Project", "demo");
        await alice.FillAsync("#Gpus", "1");
        await alice.FillAsync("#Walltime", "30m");
        await alice.ClickAsync("#start-notebook");

        // The list reloads itself until Jupyter has reported back; then the Connect button appears.
        var connect = alice.Locator("#sessions a.connect").First;
        await Expect(connect).ToBeVisibleAsync(new() { Timeout = 120_000 });
        await PortalSite.ShotAsync(alice, "en-sessions-ready");
        var href = await connect.GetAttributeAsync("href");
        var id = long.Parse(Regex.Match(href!, "^/sessions/([0-9]+)/$").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        var job = JsonDocument.Parse(await (await alice.APIRequest.GetAsync($"{site.BaseUrl}/api/jobs/{id}", new() { Headers = new Dictionary<string, string> { ["Authorization"] = "Bearer " + site.Tokens["alice"] } })).TextAsync());
        var gpu = job.RootElement.GetProperty("placement").GetString()!.Split(':')[1]; // local-1:K: the job's virtual GPU K

        try
        {
            var home = await alice.GotoAsync(site.BaseUrl + href);
            home!.Status.ShouldBe(200);
            alice.Url.ShouldContain($"/sessions/{id}/tree");

            // A notebook, made through Jupyter's API behind the proxy, opened in the browser: the kernel talks over a WebSocket.
            var made = await alice.APIRequest.PostAsync($"{site.BaseUrl}/sessions/{id}/api/contents", new() { DataObject = new { type = "notebook" } });
            made.Status.ShouldBe(201, await made.TextAsync());
            var name = JsonDocument.Parse(await made.TextAsync()).RootElement.GetProperty("path").GetString();
            await alice.GotoAsync($"{site.BaseUrl}/sessions/{id}/notebooks/{name}");
            await Expect(alice.Locator("#kernel_indicator_icon.kernel_idle_icon")).ToBeVisibleAsync(new() { Timeout = 90_000 });
            await alice.Locator("div.input_area").First.ClickAsync();
            await alice.Keyboard.TypeAsync("import os; print('CVD=' + os.environ.get('CUDA_VISIBLE_DEVICES', 'none'))");
            await alice.Keyboard.PressAsync("Shift+Enter");
            await Expect(alice.Locator("div.output_subarea pre").First).ToHaveTextAsync($"CVD={gpu}", new() { Timeout = 60_000 });
            await PortalSite.ShotAsync(alice, "en-notebook-cell");

            // bob (same project), sam (another project) and the admin: the session's URL does not exist for anyone but its owner.
            foreach (var other in new[] { "bob", "sam", "admin" })
            {
                var page = await site.SignInAsync(other);
                (await page.GotoAsync($"{site.BaseUrl}/sessions/{id}/tree"))!.Status.ShouldBe(404);
                (await page.APIRequest.GetAsync($"{site.BaseUrl}/sessions/{id}/api/kernels")).Status.ShouldBe(404);
                (await page.ContentAsync()).ShouldNotContain("Jupyter");
                await page.Context.CloseAsync();
            }
        }
        finally
        {
            await alice.APIRequest.DeleteAsync($"{site.BaseUrl}/api/sessions/{id}", new() { Headers = new Dictionary<string, string> { ["Authorization"] = "Bearer " + site.Tokens["alice"] } });
            await alice.Context.CloseAsync();
        }
    }
}
