using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace GpuCommons.Portal.Tests;

/// <summary>A clock that runs with real time from now and can be moved forward: the round site's server clock.</summary>
public sealed class MovableTime : TimeProvider
{
    private readonly DateTimeOffset _start = System.GetUtcNow();
    private readonly long _origin = System.GetTimestamp();
    private TimeSpan _shift;

    public override DateTimeOffset GetUtcNow() => _start + System.GetElapsedTime(_origin) + _shift;

    public void Advance(TimeSpan by) => _shift += by;
}

/// <summary>The portal site with a server clock the test can move (a call closes without waiting for it).</summary>
public sealed class RoundSite : PortalSite
{
    public MovableTime Clock { get; } = new();

    protected override TimeProvider? Time => Clock;
}

[CollectionDefinition("rounds")]
public sealed class RoundCollection : ICollectionFixture<RoundSite>;

[Collection("rounds")]
public sealed class RoundFlowTests(RoundSite site)
{
    /// <summary>
    /// A whole round in Korean: the PI applies on the call's page, the committee closes the call and assigns the panel, the
    /// reviewer scores every criterion, the committee selects, and the PI sees the award and the comment without a name.
    /// </summary>
    [BrowserFact]
    public async Task Whole_round_in_Korean_from_proposal_to_award()
    {
        using var admin = new HttpClient { BaseAddress = new Uri(site.BaseUrl) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", site.Tokens["admin"]);
        var now = site.Clock.GetUtcNow();
        var created = await admin.PostAsJsonAsync("/api/calls", new
        {
            id = "ko-2026", titleEn = "National GPU call 2026", titleKo = "2026년 국가 GPU 지원 공모", textEn = "Apply by the deadline.", textKo = "마감일까지 신청하세요.",
            opens = now.AddDays(-1), closes = now.AddDays(7),
            rules = new
            {
                partitions = new[] { "local" },
                budgetGpuMonths = new Dictionary<string, double> { ["academia"] = 8 * 6, ["industry"] = 8 * 3 },
                maxGpusPerProject = new Dictionary<string, int> { ["local"] = 8 },
                serverGpus = new Dictionary<string, int> { ["local"] = 4 },
                eligibleTypes = new[] { "university", "institute", "companylab", "startup" },
                criteria = new[]
                {
                    new { key = "impact", weight = 30.0, nameEn = "Technical and social impact", nameKo = "기술적·사회적 파급효과" },
                    new { key = "feasibility", weight = 70.0, nameEn = "Feasibility", nameKo = "실현 가능성" },
                },
                reviewersPerProposal = 1,
                copay = new Dictionary<string, double> { ["startup"] = 0.3 },
            },
        });
        created.EnsureSuccessStatusCode();

        // The PI applies in Korean.
        var pi = await site.SignInAsync("alice", "ko-KR");
        await pi.GotoAsync($"{site.BaseUrl}/calls");
        var row = pi.Locator("#calls tr[data-call='ko-2026']");
        await Expect(row).ToContainTextAsync("2026년 국가 GPU 지원 공모");
        await Expect(row).ToContainTextAsync("접수 중");
        await row.Locator("a", new() { HasTextString = "2026년 국가 GPU 지원 공모" }).ClickAsync();
        await Expect(pi.Locator("body")).ToContainTextAsync("실현 가능성");
        await pi.FillAsync("#Title", "한국어 거대언어모델 사전학습");
        await pi.FillAsync("#Team", "책임연구원 1명, 대학원생 3명");
        await pi.FillAsync("#Gpus", "8");
        await pi.FillAsync("#Months", "3");
        await pi.FillAsync("#Justification", "국산 언어모델의 추론 성능을 높입니다.");
        await pi.CheckAsync("#Regional");
        await PortalSite.ShotAsync(pi, "ko-round-proposal-form");
        await pi.ClickAsync("#submit-proposal");
        await Expect(pi.Locator(".flash.ok")).ToContainTextAsync("제출되었습니다");
        var card = pi.Locator("section[data-proposal]").First;
        await Expect(card.Locator("[data-testid=proposal-state]")).ToHaveTextAsync("제출됨");

        // The call closes; the committee assigns the panel.
        site.Clock.Advance(TimeSpan.FromDays(8));
        var committee = await site.SignInAsync("admin", "ko-KR");
        await committee.GotoAsync($"{site.BaseUrl}/calls/ko-2026/committee");
        await Expect(committee.Locator("#call-status")).ToHaveTextAsync("접수 마감");
        await committee.ClickAsync("#assign-panels");
        await Expect(committee.Locator(".flash.ok")).ToContainTextAsync("심사위원을 배정했습니다");
        await Expect(committee.Locator("#call-status")).ToHaveTextAsync("심사 중");

        // The reviewer scores every criterion.
        var reviewer = await site.SignInAsync("carol", "ko-KR");
        await reviewer.GotoAsync($"{site.BaseUrl}/calls/ko-2026/review");
        var form = reviewer.Locator("form.review-form").First;
        await Expect(reviewer.Locator("body")).ToContainTextAsync("다른 심사 결과는 본인 심사를 제출한 뒤에 볼 수 있습니다");
        await form.Locator("input[name='score.impact']").FillAsync("85");
        await form.Locator("input[name='score.feasibility']").FillAsync("90");
        await form.Locator("textarea[name=comment]").FillAsync("데이터 계획이 구체적입니다");
        await PortalSite.ShotAsync(reviewer, "ko-round-review-form");
        await form.Locator("button[type=submit]").ClickAsync();
        await Expect(reviewer.Locator(".flash.ok")).ToContainTextAsync("심사를 제출했습니다");
        await Expect(reviewer.Locator("body")).ToContainTextAsync("심사 완료");

        // The committee sees the ranking and the fleet's feasibility, and selects.
        await committee.GotoAsync($"{site.BaseUrl}/calls/ko-2026/committee");
        await Expect(committee.Locator("#feasibility-verdict")).ToContainTextAsync("장비 용량 안에서");
        var ranked = committee.Locator("#ranking tbody tr").First;
        await Expect(ranked).ToContainTextAsync("demo");
        await Expect(ranked).ToContainTextAsync("선정");
        await PortalSite.ShotAsync(committee, "ko-round-committee");
        await committee.ClickAsync("#run-selection");
        await Expect(committee.Locator(".flash.ok")).ToContainTextAsync("선정을 마치고 배정했습니다");
        await Expect(committee.Locator("#call-status")).ToHaveTextAsync("선정 완료");

        // The PI sees the award and the reviewer's comment, without the reviewer's name.
        await pi.GotoAsync($"{site.BaseUrl}/calls/ko-2026");
        card = pi.Locator("section[data-proposal]").First;
        await Expect(card.Locator("[data-testid=proposal-state]")).ToHaveTextAsync("선정");
        await Expect(card.Locator("[data-testid=outcome]")).ToContainTextAsync("GPU 8개");
        await Expect(card.Locator(".comments")).ToContainTextAsync("데이터 계획이 구체적입니다");
        await Expect(card.Locator(".comments")).ToContainTextAsync("심사위원 #1");
        (await card.Locator(".comments").TextContentAsync())!.ShouldNotContain("carol");
        await PortalSite.ShotAsync(pi, "ko-round-outcome");

        // Stage review by a named committee member (not an admin): the award ends; an applicant is refused the committee page.
        (await admin.PutAsync("/api/calls/ko-2026/members/oscar", null)).EnsureSuccessStatusCode();
        var member = await site.SignInAsync("oscar", "ko-KR");
        await member.GotoAsync($"{site.BaseUrl}/calls");
        await member.Locator("#calls tr[data-call='ko-2026'] a", new() { HasTextString = "선정위원회" }).ClickAsync();
        var award = member.Locator("#awards tr[data-award]").First;
        await Expect(award).ToContainTextAsync("demo");
        await Expect(award).ToContainTextAsync("진행 중");
        await award.Locator("button", new() { HasTextString = "즉시 종료" }).ClickAsync();
        await Expect(member.Locator(".flash.ok")).ToContainTextAsync("종료했습니다");
        await Expect(member.Locator("#awards tr[data-award]").First).ToContainTextAsync("종료됨");
        (await pi.Context.APIRequest.GetAsync($"{site.BaseUrl}/calls/ko-2026/committee")).Status.ShouldBe(403);
        await member.Context.CloseAsync();
        await pi.Context.CloseAsync();
        await reviewer.Context.CloseAsync();
        await committee.Context.CloseAsync();
    }
}
