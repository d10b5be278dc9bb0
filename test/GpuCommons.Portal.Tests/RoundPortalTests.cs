using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Server.Data;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace GpuCommons.Portal.Tests;

/// <summary>The admin's call-creation form (validation per field) and the monthly statement page (market value beside what is paid, CSV).</summary>
[Collection("rounds")]
public sealed class RoundPortalTests(RoundSite site)
{
    private static ILocator FieldError(IPage page, string field) => page.Locator($".field-error[data-field='{field}']");

    [BrowserFact]
    public async Task Admin_opens_a_call_in_Korean_and_sees_each_error_beside_its_field()
    {
        var page = await site.SignInAsync("admin", "ko-KR");
        await page.GotoAsync($"{site.BaseUrl}/calls");
        await page.ClickAsync("#new-call");
        await Expect(page.Locator("h1")).ToHaveTextAsync("공모 개설");

        // Everything wrong at once: each error beside its field, what was typed kept.
        var opens = site.Clock.GetUtcNow().UtcDateTime;
        await page.FillAsync("#Id", "");
        await page.FillAsync("#TitleKo", "2026년 2차 국가 GPU 지원 공모");
        await page.FillAsync("#Opens", opens.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture));
        await page.FillAsync("#Closes", opens.AddDays(-1).ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture));
        await page.FillAsync("#Budget-academia", "많이");
        await page.FillAsync("input[name='CritWeight[0]']", "-1");
        await page.FillAsync("#Copay-startup", "150");
        await page.FillAsync("#Reviewers", "0");
        await page.ClickAsync("#create-call");
        await Expect(page.Locator("#form-error")).ToContainTextAsync("확인이 필요한 항목이");
        await Expect(FieldError(page, "Id")).ToHaveTextAsync("필수 항목입니다.");
        await Expect(FieldError(page, "TitleEn")).ToHaveTextAsync("필수 항목입니다.");
        await Expect(FieldError(page, "Closes")).ToHaveTextAsync("접수 시작 이후여야 합니다.");
        await Expect(FieldError(page, "Offered")).ToHaveTextAsync("파티션을 하나 이상 선택하세요.");
        await Expect(FieldError(page, "Budget[academia]")).ToContainTextAsync("사이의 숫자");
        await Expect(FieldError(page, "CritWeight[0]")).ToContainTextAsync("사이의 숫자");
        await Expect(FieldError(page, "Copay[startup]")).ToContainTextAsync("0에서 100 사이");
        await Expect(FieldError(page, "Reviewers")).ToContainTextAsync("정수");
        await Expect(page.Locator("#TitleKo")).ToHaveValueAsync("2026년 2차 국가 GPU 지원 공모");
        await Expect(page.Locator("#Budget-academia")).ToHaveAttributeAsync("aria-invalid", "true");
        (await page.Locator(".field-error").CountAsync()).ShouldBe(8);
        await PortalSite.ShotAsync(page, "ko-call-form-errors");

        // Fixed: the call is open, with every field as given.
        await page.FillAsync("#Id", "ko-call-2");
        await page.FillAsync("#TitleEn", "National GPU call 2026-2");
        await page.FillAsync("#TextKo", "지역 기업을 우대합니다.");
        await page.FillAsync("#Closes", opens.AddDays(20).ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture));
        await page.CheckAsync("input[name=Offered][value=local]");
        await page.FillAsync("#Cap-local", "8");
        await page.FillAsync("#Server-local", "4");
        await page.FillAsync("#Budget-academia", "48");
        await page.FillAsync("#Budget-industry", "24");
        await page.FillAsync("input[name='CritWeight[0]']", "40");
        await page.FillAsync("#Copay-startup", "30");
        await page.FillAsync("#Reviewers", "2");
        await page.FillAsync("#RegionalBonus", "3");
        await page.FillAsync("#OrgCap", "8");
        await page.UncheckAsync("input[name=Eligible][value=flagship]");
        await page.ClickAsync("#create-call");
        await Expect(page.Locator(".flash.ok")).ToContainTextAsync("공모 ko-call-2을(를) 개설했습니다");
        await Expect(page.Locator("h1")).ToContainTextAsync("2026년 2차 국가 GPU 지원 공모");

        using var admin = new HttpClient { BaseAddress = new Uri(site.BaseUrl) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", site.Tokens["admin"]);
        var call = await admin.GetFromJsonAsync<JsonElement>("/api/calls/ko-call-2");
        var rules = call.GetProperty("rules");
        rules.GetProperty("partitions").EnumerateArray().Select(p => p.GetString()).ShouldBe(["local"]);
        rules.GetProperty("budgetGpuMonths").GetProperty("academia").GetDouble().ShouldBe(48);
        rules.GetProperty("maxGpusPerProject").GetProperty("local").GetInt32().ShouldBe(8);
        rules.GetProperty("serverGpus").GetProperty("local").GetInt32().ShouldBe(4);
        rules.GetProperty("criteria").GetArrayLength().ShouldBe(4);
        rules.GetProperty("criteria")[0].GetProperty("weight").GetDouble().ShouldBe(40);
        rules.GetProperty("copay").GetProperty("startup").GetDouble().ShouldBe(0.3);
        rules.GetProperty("reviewersPerProposal").GetInt32().ShouldBe(2);
        rules.GetProperty("regionalBonus").GetDouble().ShouldBe(3);
        rules.GetProperty("maxGpusPerOrganisation").GetInt32().ShouldBe(8);
        rules.GetProperty("eligibleTypes").EnumerateArray().Select(t => t.GetString()).ShouldNotContain("flagship");
        call.GetProperty("textKo").GetString().ShouldBe("지역 기업을 우대합니다.");

        // What only the server knows (the id is taken) comes back beside the field it names.
        await page.GotoAsync($"{site.BaseUrl}/calls/new");
        await page.FillAsync("#Id", "ko-call-2");
        await page.FillAsync("#TitleKo", "중복");
        await page.FillAsync("#TitleEn", "Duplicate");
        await page.CheckAsync("input[name=Offered][value=local]");
        await page.FillAsync("#Budget-academia", "8");
        await page.ClickAsync("#create-call");
        await Expect(FieldError(page, "Id")).ToBeVisibleAsync();
        (await page.Locator(".field-error").CountAsync()).ShouldBe(1);

        // Not an admin: the form is refused.
        var pi = await site.SignInAsync("alice", "ko-KR");
        var resp = await pi.GotoAsync($"{site.BaseUrl}/calls/new");
        resp!.Status.ShouldBe(403);
        await pi.Context.CloseAsync();
        await page.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task Statement_shows_market_value_beside_what_is_paid_in_Korean_and_downloads_as_CSV()
    {
        var now = site.Clock.GetUtcNow();
        var month = now.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        await using (var db = site.App.Services.GetRequiredService<GpucDbFactory>().Create())
        {
            db.Ledger.Add(new LedgerRow { JobId = 9_000_001, Attempt = 1, AllocationId = "startup-demo-2026", Project = "startup-demo", User = "sam", Partition = "local", GpuHours = 10, Amount = 10_000m, CopayShare = 0.15, Payable = 1_500m, Time = now });
            db.Ledger.Add(new LedgerRow { JobId = 9_000_002, Attempt = 1, AllocationId = "startup-demo-2026", Project = "startup-demo", User = "sam", Partition = "local", GpuHours = 4, Amount = 4_000m, Time = now });
            db.Ledger.Add(new LedgerRow { JobId = 9_000_003, Attempt = 1, AllocationId = "demo-2026", Project = "demo", User = "alice", Partition = "local", GpuHours = 5, Amount = 5_000m, Time = now });
            await db.SaveChangesAsync();
        }

        var sam = await site.SignInAsync("sam", "ko-KR");
        await sam.GotoAsync($"{site.BaseUrl}/calls");
        await sam.ClickAsync("#nav-statements");
        await Expect(sam.Locator("h1")).ToHaveTextAsync("월별 정산서");
        await sam.FillAsync("#Month", month);
        await sam.ClickAsync("#show-statement");
        var coPaid = sam.Locator("#statement tbody tr[data-project='startup-demo']").Filter(new() { HasTextString = "15.0%" });
        await Expect(coPaid.Locator("[data-testid=market]")).ToHaveTextAsync("₩10,000");
        await Expect(coPaid.Locator("[data-testid=paid]")).ToHaveTextAsync("₩1,500");
        await Expect(sam.Locator("#statement-total [data-testid=market]")).ToHaveTextAsync("₩14,000");
        await Expect(sam.Locator("#statement-total [data-testid=paid]")).ToHaveTextAsync("₩1,500");
        await Expect(sam.Locator("#statement thead")).ToContainTextAsync("기관 부담액");
        (await sam.Locator("#statement tbody tr[data-project='demo']").CountAsync()).ShouldBe(0, "only the project's own charges");
        await PortalSite.ShotAsync(sam, "ko-statement");

        var download = await sam.RunAndWaitForDownloadAsync(() => sam.ClickAsync("#statement-csv"));
        var csv = await File.ReadAllTextAsync((await download.PathAsync())!);
        var lines = csv.Trim().Split('\n');
        lines[0].ShouldBe("project,month,partition,gpu_hours,market_amount,copay_share,due,subsidy,organisation");
        lines.ShouldContain($"startup-demo,{month},local,10,10000,0.15,1500,8500,Startup 001");
        lines.ShouldContain($"startup-demo,{month},local,4,4000,0,0,4000,Startup 001");

        // Another tenant's project is not found; an organisation's statement is for staff.
        (await sam.Context.APIRequest.GetAsync($"{site.BaseUrl}/statements?project=demo&month={month}")).Status.ShouldBe(404);
        (await sam.Context.APIRequest.GetAsync($"{site.BaseUrl}/statements?handler=csv&project=demo&month={month}")).Status.ShouldBe(404);
        (await sam.Context.APIRequest.GetAsync($"{site.BaseUrl}/statements?organisation=Startup%20001&month={month}")).Status.ShouldBe(403);
        await sam.Context.CloseAsync();

        var admin = await site.SignInAsync("admin");
        await admin.GotoAsync($"{site.BaseUrl}/statements?organisation=University%2001&month={month}");
        await Expect(admin.Locator("#statement-h")).ToContainTextAsync("University 01, every project");
        await Expect(admin.Locator("#statement tbody tr[data-project='demo'] [data-testid=market]")).ToHaveTextAsync("₩5,000");
        await Expect(admin.Locator("#statement tbody tr[data-project='demo'] [data-testid=paid]")).ToHaveTextAsync("₩0");
        await admin.Context.CloseAsync();
    }
}
