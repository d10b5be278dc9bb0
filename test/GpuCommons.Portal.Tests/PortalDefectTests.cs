using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace GpuCommons.Portal.Tests;

/// <summary>The portal defects found by trying it as a newcomer would, one browser test each.</summary>
[Collection("portal")]
public sealed class PortalDefectTests(PortalSite site)
{
    private async Task<IPage> SubmitAsync(IPage page, string command, string gpus = "1", string walltime = "10m", string project = "demo")
    {
        await page.GotoAsync($"{site.BaseUrl}/submit");
        await page.SelectOptionAsync("#Project", project);
        await page.FillAsync("#Gpus", gpus);
        await page.FillAsync("#Walltime", walltime);
        await page.FillAsync("#Command", command);
        await page.ClickAsync("#submit-job");
        return page;
    }

    private HttpClient Api(string user)
    {
        var http = new HttpClient { BaseAddress = new Uri(site.BaseUrl) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", site.Tokens[user]);
        return http;
    }

    [BrowserFact]
    public async Task A_half_GPU_job_shows_half_a_GPU_not_zero()
    {
        var bob = await site.SignInAsync("bob");
        await SubmitAsync(bob, "echo shared; sleep 1", gpus: "0.5");
        await bob.WaitForURLAsync(new Regex("/jobs/[0-9]+$"));
        var gpus = bob.Locator("table.card tr", new() { Has = bob.Locator("th", new() { HasTextString = "GPUs" }) }).Locator("td");
        await Expect(gpus.First).ToHaveTextAsync("0.5");
        var id = bob.Url[(bob.Url.LastIndexOf('/') + 1)..];
        await bob.GotoAsync($"{site.BaseUrl}/");
        var row = bob.Locator("#recent-jobs tr", new() { Has = bob.Locator($"a[href='/jobs/{id}']") });
        await Expect(row.Locator("td.n").First).ToHaveTextAsync("0.5");
        await bob.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task The_fleet_page_is_fresh_on_its_first_view_after_a_quiet_spell()
    {
        var reports = site.App.Services.GetRequiredService<Reports>();
        var old = await reports.GetAsync();
        var maxAge = reports.MaxAge;
        try
        {
            // As if the last snapshot was taken long ago: any snapshot is now too old.
            reports.MaxAge = TimeSpan.FromMilliseconds(1);
            await Task.Delay(20);
            var before = DateTimeOffset.UtcNow;
            var op = await site.SignInAsync("oscar");
            await op.GotoAsync($"{site.BaseUrl}/fleet");
            var taken = DateTimeOffset.Parse((await op.Locator("#report-taken").GetAttributeAsync("data-taken"))!, CultureInfo.InvariantCulture);
            taken.ShouldBeGreaterThan(old.Taken);
            taken.ShouldBeGreaterThanOrEqualTo(before.AddSeconds(-1), "the first view shows figures taken when it was asked for, not the stale ones");
            await op.Context.CloseAsync();
        }
        finally
        {
            reports.MaxAge = maxAge;
        }
    }

    [BrowserFact]
    public async Task The_GPU_map_of_a_small_fleet_is_large_enough_to_see()
    {
        var op = await site.SignInAsync("oscar");
        await op.GotoAsync($"{site.BaseUrl}/fleet");
        var box = await op.Locator("svg.fleet").First.BoundingBoxAsync();
        box.ShouldNotBeNull();
        box.Width.ShouldBeGreaterThanOrEqualTo(300, "one node of 8 GPUs was drawn 23 px wide");
        box.Height.ShouldBeGreaterThanOrEqualTo(100);
        await PortalSite.ShotAsync(op, "en-operator-fleet-small-map");
        await op.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task Korean_pages_show_server_errors_and_outcomes_in_Korean()
    {
        var bob = await site.SignInAsync("bob", "ko-KR");
        await SubmitAsync(bob, "echo x", walltime: "abc");
        var error = bob.Locator("#submit-error");
        await Expect(error).ToContainTextAsync("올바른 시간이 아닙니다");
        await Expect(error).Not.ToContainTextAsync("is not a duration");

        await SubmitAsync(bob, "echo the-reason-it-failed >&2; exit 3");
        await bob.WaitForURLAsync(new Regex("/jobs/[0-9]+$"));
        await Expect(bob.Locator("#job-state")).ToHaveTextAsync("실패", new() { Timeout = 30_000 });
        await bob.ReloadAsync();
        await Expect(bob.Locator("#outcome")).ToContainTextAsync("실패: 종료 코드 3");
        await Expect(bob.Locator("#outcome")).Not.ToContainTextAsync("exit code");
        // Why it failed is on the page: its standard error.
        await Expect(bob.Locator("#stderr")).ToContainTextAsync("the-reason-it-failed");
        await PortalSite.ShotAsync(bob, "ko-job-failed");
        await bob.GotoAsync($"{site.BaseUrl}/?lang=en-US");
        await bob.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task An_admin_submits_from_the_portal_as_from_the_CLI()
    {
        var admin = await site.SignInAsync("admin");
        await admin.GotoAsync($"{site.BaseUrl}/submit");
        await Expect(admin.Locator("#Project option[value=demo]")).ToHaveCountAsync(1);
        await SubmitAsync(admin, "echo from-the-admin");
        await admin.WaitForURLAsync(new Regex("/jobs/[0-9]+$"));
        await Expect(admin.Locator("#log")).ToContainTextAsync("from-the-admin", new() { Timeout = 30_000 });
        await admin.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task A_403_is_a_page_of_the_portal_in_the_users_language()
    {
        var bob = await site.SignInAsync("bob");
        var resp = await bob.GotoAsync($"{site.BaseUrl}/fleet");
        resp!.Status.ShouldBe(403);
        await Expect(bob.Locator("header.top nav")).ToBeVisibleAsync();
        await Expect(bob.Locator("h1")).ToHaveTextAsync("Not allowed");
        await Expect(bob.Locator("#forbidden")).ToContainTextAsync("does not allow");
        resp = await bob.GotoAsync($"{site.BaseUrl}/director?lang=ko-KR");
        resp!.Status.ShouldBe(403);
        await Expect(bob.Locator("h1")).ToHaveTextAsync("허용되지 않음");
        await PortalSite.ShotAsync(bob, "ko-forbidden");
        await bob.GotoAsync($"{site.BaseUrl}/?lang=en-US");
        await bob.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task The_director_report_counts_the_GPU_hours_of_running_jobs()
    {
        using var bob = Api("bob");
        var r = await bob.PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 2, walltime = "10m", command = new[] { "sleep", "60" } });
        r.EnsureSuccessStatusCode();
        var id = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        var reports = site.App.Services.GetRequiredService<Reports>();
        var maxAge = reports.MaxAge;
        try
        {
            var until = DateTime.UtcNow.AddSeconds(30);
            while ((await bob.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}")).GetProperty("state").GetString() != "running")
            {
                DateTime.UtcNow.ShouldBeLessThan(until, "the job did not start");
                await Task.Delay(100);
            }

            await Task.Delay(1500); // some GPU-seconds
            reports.MaxAge = TimeSpan.FromMilliseconds(1);
            var op = await site.SignInAsync("oscar");
            await op.GotoAsync($"{site.BaseUrl}/director");
            var note = op.Locator("#running-note");
            await Expect(note).ToBeVisibleAsync();
            double.Parse((await note.GetAttributeAsync("data-gpu-hours"))!, CultureInfo.InvariantCulture).ShouldBeGreaterThan(2 * 1.0 / 3600);
            await Expect(op.Locator("#gpu-hours tbody tr")).Not.ToHaveCountAsync(0);
            await PortalSite.ShotAsync(op, "en-director-running");
            await op.Context.CloseAsync();
        }
        finally
        {
            reports.MaxAge = maxAge;
            await bob.PostAsync($"/api/jobs/{id}/cancel", null);
        }
    }
}
