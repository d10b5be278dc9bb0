using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace GpuCommons.Portal.Tests;

[Collection("portal")]
public sealed class PortalFlowTests(PortalSite site)
{
    /// <summary>PI requests → reviewer awards less → member submits → job runs and finishes on the local backend → charge on the home page.</summary>
    private async Task<long> FullFlowAsync(string lang, string ask, string award, string marker)
    {
        var ko = lang.StartsWith("ko", StringComparison.Ordinal);
        var tag = ko ? "ko" : "en";

        // PI (alice) asks for GPU-hours.
        var pi = await site.SignInAsync("alice", lang);
        await pi.GotoAsync($"{site.BaseUrl}/projects/demo");
        await pi.SelectOptionAsync("#partition", "local");
        await pi.FillAsync("#gpuHours", ask);
        await pi.FillAsync("#months", "3");
        await pi.FillAsync("#justification", $"Fine-tuning a Korean LLM ({marker})");
        await PortalSite.ShotAsync(pi, $"{tag}-pi-project-request-form");
        await pi.ClickAsync("#send-request");
        await Expect(pi.Locator(".flash.ok")).ToContainTextAsync(ko ? "심사위원에게" : "Request sent");
        var requestRow = pi.Locator("#requests tbody tr", new() { HasTextString = Num(ask, ko) }).First;
        await Expect(requestRow).ToContainTextAsync(ko ? "심사 중" : "under review");
        var requestId = long.Parse((await requestRow.GetAttributeAsync("data-request"))!, System.Globalization.CultureInfo.InvariantCulture);

        // Reviewer (carol) scores it and awards less than asked.
        var reviewer = await site.SignInAsync("carol", lang);
        await reviewer.GotoAsync($"{site.BaseUrl}/review");
        await Expect(reviewer.Locator("#oversubscription")).ToBeVisibleAsync();
        var card = reviewer.Locator($"section[data-request='{requestId}']");
        await Expect(card).ToContainTextAsync(marker);
        await PortalSite.ShotAsync(reviewer, $"{tag}-reviewer-queue");
        await card.Locator($"#score-{requestId}").FillAsync("85");
        await card.Locator($"#hours-{requestId}").FillAsync(award);
        await card.Locator($"#comment-{requestId}").FillAsync(ko ? "훌륭한 계획입니다" : "Strong plan; trimmed to fit the call");
        await card.Locator("button[value=award]").ClickAsync();
        await Expect(reviewer.Locator(".flash.ok")).ToContainTextAsync(requestId.ToString(System.Globalization.CultureInfo.InvariantCulture));

        // The PI sees the decision.
        await pi.GotoAsync($"{site.BaseUrl}/projects/demo");
        var decided = pi.Locator($"#requests tr[data-request='{requestId}']");
        await Expect(decided).ToContainTextAsync(ko ? "배정됨" : "awarded");
        await Expect(decided).ToContainTextAsync(Num(award, ko));

        // Member (bob) submits a job, watches it run and finish.
        var member = await site.SignInAsync("bob", lang);
        await member.GotoAsync($"{site.BaseUrl}/submit");
        await member.SelectOptionAsync("#Project", "demo");
        await member.SelectOptionAsync("#Partition", "local");
        await member.FillAsync("#Name", $"train-{tag}");
        await member.FillAsync("#Gpus", "1");
        await member.FillAsync("#Walltime", "10m");
        await member.FillAsync("#Command", $"echo start {marker}; echo \"GPUs: $CUDA_VISIBLE_DEVICES\"; sleep 3; echo done {marker}");
        await member.CheckAsync("#Checkpointable");
        await PortalSite.ShotAsync(member, $"{tag}-submit-form");
        await member.ClickAsync("#submit-job");
        await member.WaitForURLAsync(new Regex("/jobs/[0-9]+$"));
        var jobId = long.Parse(member.Url[(member.Url.LastIndexOf('/') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        await Expect(member.Locator("#log")).ToContainTextAsync($"start {marker}", new() { Timeout = 30_000 });
        await Expect(member.Locator("#job-state")).ToHaveTextAsync(ko ? "실행 중" : "running", new() { Timeout = 30_000 });
        await Expect(member.Locator("#placement")).ToContainTextAsync("local-1:");
        await PortalSite.ShotAsync(member, $"{tag}-job-running");
        await Expect(member.Locator("#job-state")).ToHaveTextAsync(ko ? "완료" : "finished", new() { Timeout = 30_000 });
        await Expect(member.Locator("#log")).ToContainTextAsync($"done {marker}");
        await Expect(member.Locator("#charge")).ToContainTextAsync("₩");
        await PortalSite.ShotAsync(member, $"{tag}-job-finished");

        // The charge is on the home page.
        await member.GotoAsync($"{site.BaseUrl}/");
        var jobRow = member.Locator("#recent-jobs tr", new() { Has = member.Locator($"a[href='/jobs/{jobId}']") });
        await Expect(jobRow).ToContainTextAsync(ko ? "완료" : "finished");
        var charge = (await jobRow.Locator("td.n").Last.TextContentAsync())!;
        charge.ShouldContain("₩");
        charge.ShouldNotBe("₩0");
        var spentCells = await member.Locator("#allocations td.spent").AllTextContentsAsync();
        spentCells.ShouldContain(s => s != "0.000" && s != "0,000", "some allocation shows GPU-hours spent");
        await Expect(member.Locator("h1")).ToHaveTextAsync(ko ? "나의 GPU-시간" : "Your GPU-hours");
        await PortalSite.ShotAsync(member, $"{tag}-home-with-charge");

        // The queue page renders for the member.
        await member.GotoAsync($"{site.BaseUrl}/queue");
        await Expect(member.Locator("#queue")).ToBeVisibleAsync();
        await PortalSite.ShotAsync(member, $"{tag}-queue");
        await pi.Context.CloseAsync();
        await reviewer.Context.CloseAsync();
        await member.Context.CloseAsync();
        return jobId;
    }

    private static string Num(string n, bool ko) => double.Parse(n, System.Globalization.CultureInfo.InvariantCulture).ToString("N1", new System.Globalization.CultureInfo(ko ? "ko-KR" : "en-US"));

    [BrowserFact]
    public async Task Researcher_flow_in_English_from_request_to_charge()
    {
        await FullFlowAsync("en-US", "1500", "1200", "flow-en");
    }

    [BrowserFact]
    public async Task Researcher_flow_in_Korean_from_request_to_charge()
    {
        await FullFlowAsync("ko-KR", "2500", "2000", "flow-ko");
    }

    [BrowserFact]
    public async Task Member_cannot_open_another_projects_job_by_URL()
    {
        // bob (project demo) runs a job; sam (startup-demo) tries its URL and its log endpoint.
        var bob = await site.SignInAsync("bob");
        await bob.GotoAsync($"{site.BaseUrl}/submit");
        await bob.SelectOptionAsync("#Project", "demo");
        await bob.FillAsync("#Command", "echo secret-output-of-demo");
        await bob.ClickAsync("#submit-job");
        await bob.WaitForURLAsync(new Regex("/jobs/[0-9]+$"));
        var url = bob.Url;
        await Expect(bob.Locator("#log")).ToContainTextAsync("secret-output-of-demo", new() { Timeout = 30_000 });

        var sam = await site.SignInAsync("sam");
        var resp = await sam.GotoAsync(url);
        resp!.Status.ShouldBe(404);
        await Expect(sam.Locator("#not-found")).ToBeVisibleAsync();
        (await sam.ContentAsync()).ShouldNotContain("secret-output-of-demo");
        var log = await sam.APIRequest.GetAsync(url + "?handler=Log&offset=0");
        log.Status.ShouldBe(404);
        (await log.TextAsync()).ShouldNotContain("secret-output-of-demo");
        await PortalSite.ShotAsync(sam, "en-other-project-job-404");
        await bob.Context.CloseAsync();
        await sam.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task Signed_out_visitor_is_sent_to_login_and_a_bad_token_is_refused()
    {
        var context = await site.Browser!.NewContextAsync();
        var page = await context.NewPageAsync();
        await page.GotoAsync($"{site.BaseUrl}/queue");
        page.Url.ShouldContain("/login?returnUrl=");
        await page.FillAsync("#token", "gpuc_not-a-token");
        await page.ClickAsync("button[type=submit]");
        await Expect(page.Locator(".flash.err")).ToContainTextAsync("not valid");
        await PortalSite.ShotAsync(page, "en-login");
        await context.CloseAsync();
    }

    [BrowserFact]
    public async Task Operator_sees_the_fleet_drains_a_node_and_director_exports_CSV()
    {
        var op = await site.SignInAsync("oscar");
        await op.GotoAsync($"{site.BaseUrl}/fleet");
        await Expect(op.Locator("svg.fleet")).ToHaveCountAsync(1);
        await op.FillAsync("#node", "local-1");
        await op.FillAsync("#reason", "fan replacement");
        await op.ClickAsync("#node-form button[value=drain]");
        await op.WaitForLoadStateAsync();
        await PortalSite.ShotAsync(op, "en-operator-fleet-after-drain");
        await Expect(op.Locator("#unavailable")).ToContainTextAsync("fan replacement");
        await PortalSite.ShotAsync(op, "en-operator-fleet-drained");
        await op.Locator("#unavailable button[value=undrain]").ClickAsync();
        await Expect(op.Locator(".flash.ok")).ToContainTextAsync("local-1");
        await Expect(op.Locator("#unavailable")).ToHaveCountAsync(0);

        await op.GotoAsync($"{site.BaseUrl}/director?lang=ko-KR");
        await Expect(op.Locator("h1")).ToHaveTextAsync("센터 보고서");
        await PortalSite.ShotAsync(op, "ko-director-report");
        var csv = await op.APIRequest.GetAsync($"{site.BaseUrl}/director?handler=Csv");
        csv.Status.ShouldBe(200);
        csv.Headers["content-type"].ShouldStartWith("text/csv");
        (await csv.TextAsync()).ShouldContain("section,month,org_type,partition,gpu_hours");
        await op.GotoAsync($"{site.BaseUrl}/fleet");
        await Expect(op.Locator("h1")).ToHaveTextAsync("장비 현황");
        await PortalSite.ShotAsync(op, "ko-operator-fleet");
        await op.GotoAsync($"{site.BaseUrl}/director?lang=en-US");
        await PortalSite.ShotAsync(op, "en-director-report");

        // A researcher may not open the fleet page.
        var bob = await site.SignInAsync("bob");
        var resp = await bob.GotoAsync($"{site.BaseUrl}/fleet");
        resp!.Status.ShouldBe(403);
        await op.Context.CloseAsync();
        await bob.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task Operator_sees_the_discrepancies_with_the_cluster_manager_in_English_and_Korean()
    {
        var factory = site.App.Services.GetRequiredService<GpuCommons.Server.Data.GpucDbFactory>();
        var now = DateTimeOffset.UtcNow;
        await using (var db = factory.Create())
        {
            db.Discrepancies.Add(new() { Key = "unknown|999999|0|4242", Kind = "unknown", JobId = 999_999, Attempt = 0, ExternalId = "4242", Detail = "gpuc-999999 (Slurm 4242) is PENDING in Slurm but GpuCommons does not expect it", SuggestedAction = "scancel it if it is a leftover", FirstSeen = now.AddMinutes(-3), LastSeen = now, Seen = 3 });
            db.Discrepancies.Add(new() { Key = "lost|7|0|17", Kind = "lost", JobId = 7, Attempt = 0, ExternalId = "17", Detail = "gpuc-7 is in neither squeue nor sacct", SuggestedAction = "requeue", FirstSeen = now.AddMinutes(-2), LastSeen = now.AddMinutes(-1), Seen = 1, Resolved = now, Action = "marked failed and requeued (attempt 1)" });
            await db.SaveChangesAsync();
        }

        var op = await site.SignInAsync("oscar");
        await op.GotoAsync($"{site.BaseUrl}/fleet");
        await Expect(op.Locator("#reconcile-status")).ToContainTextAsync("no cluster manager"); // the local backend
        var open = op.Locator("#open-discrepancies tr[data-kind=unknown]");
        await Expect(open).ToContainTextAsync("Unknown job in Slurm");
        await Expect(open).ToContainTextAsync("gpuc-999999");
        await Expect(open).ToContainTextAsync("Suggested: scancel");
        await Expect(op.Locator("#resolved-discrepancies tr[data-kind=lost]")).ToContainTextAsync("requeued (attempt 1)");
        await PortalSite.ShotAsync(op, "en-operator-discrepancies");
        await op.GotoAsync($"{site.BaseUrl}/fleet?lang=ko-KR");
        await Expect(op.Locator("#open-discrepancies tr[data-kind=unknown]")).ToContainTextAsync("Slurm에 있는 알 수 없는 작업");
        await Expect(op.Locator("#reconcile-h")).ToHaveTextAsync("클러스터 관리자(Slurm)와의 대조");
        await op.GotoAsync($"{site.BaseUrl}/fleet?lang=en-US");
        await op.Context.CloseAsync();
    }

    [BrowserFact]
    public async Task Pi_sees_the_quotas_that_bind_the_project_in_English_and_Korean()
    {
        // The admin sets quotas through the API: on the startup's project and on its organisation.
        using var http = new HttpClient { BaseAddress = new Uri(site.BaseUrl) };
        http.DefaultRequestHeaders.Authorization = new("Bearer", site.Tokens["admin"]);
        var org = await http.PutAsync("/api/organisations/Startup%20001/quotas", new StringContent("""{"quotas":[{"partition":"local","nominalGpus":6}]}""", System.Text.Encoding.UTF8, "application/json"));
        org.EnsureSuccessStatusCode();
        var project = await http.PutAsync("/api/projects/startup-demo/quotas", new StringContent("""{"quotas":[{"partition":"local","nominalGpus":2,"borrowingLimitGpus":1}]}""", System.Text.Encoding.UTF8, "application/json"));
        project.EnsureSuccessStatusCode();
        try
        {
            var pi = await site.SignInAsync("sam");
            await pi.GotoAsync($"{site.BaseUrl}/projects/startup-demo");
            var own = pi.Locator("#quotas tr[data-quota='project-local']");
            await Expect(own).ToContainTextAsync("this project");
            await Expect(own).ToContainTextAsync("2.0");
            await Expect(own).ToContainTextAsync("1.0");
            await Expect(own).ToContainTextAsync("all unused");
            await Expect(pi.Locator("#quotas tr[data-quota='organisation-local']")).ToContainTextAsync("no limit");
            await PortalSite.ShotAsync(pi, "en-pi-project-quotas");
            await pi.GotoAsync($"{site.BaseUrl}/projects/startup-demo?lang=ko-KR");
            await Expect(pi.Locator("#quota-h")).ToHaveTextAsync("쿼터");
            await Expect(pi.Locator("#quotas tr[data-quota='project-local']")).ToContainTextAsync("이 과제");
            await pi.GotoAsync($"{site.BaseUrl}/projects/startup-demo?lang=en-US");
            await pi.Context.CloseAsync();
        }
        finally
        {
            // Other tests share the site: leave no quota behind.
            (await http.PutAsync("/api/projects/startup-demo/quotas", new StringContent("""{"quotas":[]}""", System.Text.Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
            (await http.PutAsync("/api/organisations/Startup%20001/quotas", new StringContent("""{"quotas":[]}""", System.Text.Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
        }
    }
}
