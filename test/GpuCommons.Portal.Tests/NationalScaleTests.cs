using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace GpuCommons.Portal.Tests;

/// <summary>The pages at national scale: 3,400 nodes in six partitions, thousands of jobs running and waiting.</summary>
public sealed class NationalScaleTests(NationalSite site) : IClassFixture<NationalSite>
{
    [BrowserFact]
    public async Task Fleet_queue_review_and_reports_render_at_national_scale()
    {
        var op = await site.SignInAsync("admin");
        var fleet = await op.GotoAsync($"{site.BaseUrl}/fleet");
        fleet!.Status.ShouldBe(200);
        await Expect(op.Locator("svg.fleet")).ToHaveCountAsync(6);
        (await op.Locator("main p").First.TextContentAsync())!.ShouldContain("18,952 GPUs");
        await PortalSite.ShotAsync(op, "national-fleet");
        await op.GotoAsync($"{site.BaseUrl}/queue");
        await Expect(op.Locator("#queue tbody tr")).ToHaveCountAsync(50);
        await PortalSite.ShotAsync(op, "national-queue");
        await op.GotoAsync($"{site.BaseUrl}/review");
        await Expect(op.Locator("#oversubscription tbody tr")).ToHaveCountAsync(6);
        await PortalSite.ShotAsync(op, "national-review");
        await op.GotoAsync($"{site.BaseUrl}/director");
        await Expect(op.Locator("#gpu-hours tbody tr").First).ToBeVisibleAsync();
        await PortalSite.ShotAsync(op, "national-director");
        await op.GotoAsync($"{site.BaseUrl}/?lang=ko-KR");
        await PortalSite.ShotAsync(op, "national-home-ko");
        await op.Context.CloseAsync();
    }
}
