using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Server.Rounds;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Tests;

/// <summary>A clock that runs with real time from a chosen instant and can be moved forward (the server's TimeProvider in these tests).</summary>
public sealed class ShiftedTime(DateTimeOffset start) : TimeProvider
{
    private readonly long _origin = System.GetTimestamp();
    private TimeSpan _shift;

    public override DateTimeOffset GetUtcNow() => start + System.GetElapsedTime(_origin) + _shift;

    public void Advance(TimeSpan by) => _shift += by;

    public void AdvanceTo(DateTimeOffset t)
    {
        var now = GetUtcNow();
        if (t > now)
        {
            _shift += t - now;
        }
    }
}

/// <summary>A whole allocation round through the API on the real server: call, proposals, panels, reviews, selection, awards as quotas, stage review, statements.</summary>
public sealed class RoundTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 10, 9, 0, 0, TimeSpan.Zero);

    private static object Rules(int academiaGpuMonths = 16 * 3, int industryGpuMonths = 8 * 3) => new
    {
        partitions = new[] { "gpu" },
        budgetGpuMonths = new Dictionary<string, double> { ["academia"] = academiaGpuMonths, ["industry"] = industryGpuMonths },
        maxGpusPerProject = new Dictionary<string, int> { ["gpu"] = 16 },
        maxMonths = 12,
        eligibleTypes = new[] { "university", "institute", "companylab", "startup" },
        criteria = new[]
        {
            new { key = "impact", weight = 30.0, nameEn = "Impact", nameKo = "파급효과" },
            new { key = "feasibility", weight = 70.0, nameEn = "Feasibility", nameKo = "실현 가능성" },
        },
        reviewersPerProposal = 2,
        regionalBonus = 3.0,
        copay = new Dictionary<string, double> { ["startup"] = 0.3, ["companylab"] = 0.3 },
        youthDiscount = 0.5,
    };

    private static async Task<JsonElement> OkAsync(HttpResponseMessage r, HttpStatusCode code = HttpStatusCode.OK)
    {
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(code, text);
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task<HttpClient> NewReviewerAsync(ServerHarness s, string name, string organisation)
    {
        var admin = s.Client("admin");
        var u = await OkAsync(await admin.PostAsJsonAsync("/api/users", new { name, role = "reviewer" }), HttpStatusCode.Created);
        await OkAsync(await admin.PutAsJsonAsync($"/api/reviews/profiles/{name}", new { organisation }));
        var c = s.App.GetTestClient();
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", u.GetProperty("token").GetString());
        return c;
    }

    private static async Task<long> ProposeAsync(HttpClient pi, string project, int gpus, bool youth = false)
    {
        var p = await OkAsync(await pi.PostAsJsonAsync("/api/proposals", new
        {
            call = "r1", project, title = $"{project} model", team = "PI and 3 students", partition = "gpu", gpus, startMonth = "2026-02", months = 3,
            justification = "Pretraining a Korean model.", youth,
        }), HttpStatusCode.Created);
        p.GetProperty("state").GetString().ShouldBe("draft");
        var id = p.GetProperty("id").GetInt64();
        (await OkAsync(await pi.PostAsync($"/api/proposals/{id}/submit", null))).GetProperty("state").GetString().ShouldBe("submitted");
        return id;
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task WholeRound_AwardsBecomeQuotasTheEngineHonoursFromTheStartDate_AndLapseAtTheEnd(string provider)
    {
        var time = new ShiftedTime(T0);
        var s = await ServerHarness.StartAsync(TestDatabase.For(provider), new TestBackend(nodes: 4), time: time);
        try
        {
            var admin = s.Client("admin");
            var alice = s.Client("alice"); // PI of demo (University 01)
            var sam = s.Client("sam");     // PI of startup-demo (Startup 001)
            await OkAsync(await admin.PostAsJsonAsync("/api/calls", new
            {
                id = "r1", titleEn = "GPU call 2026-1", titleKo = "2026년 1차 GPU 지원 공모", textEn = "Apply.", textKo = "신청하세요.",
                opens = T0.AddDays(-1), closes = T0.AddDays(10), rules = Rules(),
            }), HttpStatusCode.Created);

            var a = await ProposeAsync(alice, "demo", 16);
            var b = await ProposeAsync(sam, "startup-demo", 8, youth: true);

            // Tenants never see each other's proposals.
            (await sam.GetAsync($"/api/proposals/{a}")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
            (await sam.GetFromJsonAsync<JsonElement>("/api/proposals")).GetArrayLength().ShouldBe(1);
            // Panels wait for the close; the call closes, and nothing changes after it but by the committee.
            (await admin.PostAsync("/api/calls/r1/assign", null)).StatusCode.ShouldBe(HttpStatusCode.Conflict);
            time.AdvanceTo(T0.AddDays(11));
            (await alice.PutAsJsonAsync($"/api/proposals/{a}", new { gpus = 8 })).StatusCode.ShouldBe(HttpStatusCode.Conflict);
            (await alice.PostAsync($"/api/proposals/{a}/withdraw", null)).StatusCode.ShouldBe(HttpStatusCode.Conflict);

            // carol (demo reviewer) is of University 01: never on alice's panel. Two more reviewers.
            await OkAsync(await admin.PutAsJsonAsync("/api/reviews/profiles/carol", new { organisation = "University 01" }));
            var carol = s.Client("carol");
            var rev2 = await NewReviewerAsync(s, "rev2", "Institute 01");
            var rev3 = await NewReviewerAsync(s, "rev3", "Institute 02");
            await OkAsync(await admin.PostAsync("/api/calls/r1/assign", null));
            var mine = await carol.GetFromJsonAsync<JsonElement>("/api/reviews");
            mine.EnumerateArray().Select(x => x.GetProperty("proposal").GetInt64()).ShouldNotContain(a);
            (await carol.GetAsync($"/api/proposals/{a}")).StatusCode.ShouldBe(HttpStatusCode.NotFound);

            // Every assigned reviewer scores; a reviewer sees the others' reviews only after submitting theirs.
            var reviewers = new Dictionary<string, HttpClient> { ["carol"] = carol, ["rev2"] = rev2, ["rev3"] = rev3 };
            var submittedFirst = false;
            foreach (var (name, client) in reviewers)
            {
                foreach (var item in (await client.GetFromJsonAsync<JsonElement>("/api/reviews")).EnumerateArray())
                {
                    var pid = item.GetProperty("proposal").GetInt64();
                    var seen = await client.GetFromJsonAsync<JsonElement>($"/api/reviews/{pid}");
                    seen.EnumerateArray().ShouldAllBe(r => r.GetProperty("label").GetString() == name, "before submitting, only their own (empty) review");
                    if (submittedFirst)
                    {
                        seen.GetArrayLength().ShouldBe(1);
                    }

                    var score = pid == a ? 90.0 : 80.0;
                    var bad = await client.PutAsJsonAsync($"/api/reviews/{pid}", new { scores = new { impact = score } });
                    (await OkAsync(bad, HttpStatusCode.BadRequest)).GetProperty("field").GetString().ShouldBe("scores.feasibility");
                    await OkAsync(await client.PutAsJsonAsync($"/api/reviews/{pid}", new { scores = new { impact = score, feasibility = score }, comment = $"comment by {name}" }));
                    (await client.PutAsJsonAsync($"/api/reviews/{pid}", new { scores = new { impact = 1.0, feasibility = 1.0 } })).StatusCode.ShouldBe(HttpStatusCode.Conflict);
                    submittedFirst = true;
                }
            }

            var committee = await admin.GetFromJsonAsync<JsonElement>("/api/calls/r1/committee");
            committee.GetProperty("feasible").GetBoolean().ShouldBeTrue();
            var sel = await OkAsync(await admin.PostAsJsonAsync("/api/calls/r1/select", new { note = "first round" }));
            sel.GetProperty("decisions").EnumerateArray().Select(d => d.GetProperty("outcome").GetString()).ShouldBe(["awarded", "awarded"], ignoreOrder: true);

            // The applicant sees the outcome and the comments without names.
            var pa = await alice.GetFromJsonAsync<JsonElement>($"/api/proposals/{a}");
            pa.GetProperty("state").GetString().ShouldBe("awarded");
            pa.GetProperty("awardedGpus").GetInt32().ShouldBe(16);
            var comments = await alice.GetFromJsonAsync<JsonElement>($"/api/reviews/{a}");
            comments.GetArrayLength().ShouldBe(2);
            foreach (var r in comments.EnumerateArray())
            {
                r.TryGetProperty("reviewer", out var named).ShouldBeFalse(named.ToString());
                r.GetProperty("label").GetString()!.ShouldStartWith("#");
                r.GetProperty("comment").GetString()!.ShouldStartWith("comment by");
            }

            // Before the start date: no quota; a filler holds the whole fleet, and the awardee's job waits.
            var quotas = s.App.Services.GetRequiredService<AwardQuotaService>();
            await quotas.ApplyAsync();
            var before = await admin.GetFromJsonAsync<JsonElement>("/api/projects/demo");
            (before.TryGetProperty("quotas", out var q0) && q0.GetArrayLength() > 0).ShouldBeFalse(before.ToString());
            time.AdvanceTo(new DateTimeOffset(2026, 1, 31, 23, 0, 0, TimeSpan.Zero));
            await quotas.ApplyAsync();
            await OkAsync(await admin.PostAsJsonAsync("/api/organisations", new { name = "Institute 09", type = "institute" }), HttpStatusCode.Created);
            await OkAsync(await admin.PostAsJsonAsync("/api/projects", new { name = "filler", organisation = "Institute 09", pi = "bob" }), HttpStatusCode.Created);
            await OkAsync(await admin.PostAsJsonAsync("/api/allocations", new { id = "filler-1", project = "filler", gpuHours = 1e6, end = T0.AddYears(1) }), HttpStatusCode.Created);
            var bob = s.Client("bob");
            var fillers = new List<long>();
            for (var i = 0; i < 4; i++)
            {
                fillers.Add((await OkAsync(await bob.PostAsJsonAsync("/api/jobs", new { project = "filler", gpus = 8, walltime = "7d", command = new[] { "train" } }), HttpStatusCode.Created)).GetProperty("id").GetInt64());
            }

            await ServerHarness.EventuallyAsync(async () => (await Task.WhenAll(fillers.Select(s.JobAsync))).All(j => j.GetProperty("state").GetString() == "running"), "the filler holds the fleet");
            var job = (await OkAsync(await alice.PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 16, nodes = 2, walltime = "1h", command = new[] { "train" } }), HttpStatusCode.Created)).GetProperty("id").GetInt64();
            await Task.Delay(600);
            (await s.JobAsync(job)).GetProperty("state").GetString().ShouldBe("pending", "no guarantee before the start date");

            // From the start date (the server's clock), the award is a quota the engine honours: it reclaims the GPUs.
            time.AdvanceTo(new DateTimeOffset(2026, 2, 1, 0, 0, 1, TimeSpan.Zero));
            await quotas.ApplyAsync();
            var demo = await admin.GetFromJsonAsync<JsonElement>("/api/projects/demo");
            demo.GetProperty("quotas")[0].GetProperty("partition").GetString().ShouldBe("gpu");
            demo.GetProperty("quotas")[0].GetProperty("nominalGpus").GetDouble().ShouldBe(16);
            var org = await admin.GetFromJsonAsync<JsonElement>("/api/organisations/University 01");
            org.GetProperty("quotas")[0].GetProperty("nominalGpus").GetDouble().ShouldBe(16, "the organisation holds the guarantee too");
            try
            {
                await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(job)).GetProperty("state").GetString() is "running" or "finished", "the awardee's job starts inside its guarantee", 20_000);
            }
            catch (TimeoutException)
            {
                throw new ShouldAssertException((await s.JobAsync(job)).ToString() + string.Join("\n", await Task.WhenAll(fillers.Select(async f => (await s.JobAsync(f)).ToString()))));
            }

            // A stage review cuts the startup's award: the quota follows at once.
            var award = (await admin.GetFromJsonAsync<JsonElement>("/api/awards?project=startup-demo"))[0];
            award.GetProperty("copayShare").GetDouble().ShouldBe(0.15);
            (await admin.PostAsJsonAsync($"/api/awards/{award.GetProperty("id").GetString()}/cut", new { gpus = 4 })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);
            (await sam.PostAsJsonAsync($"/api/awards/{award.GetProperty("id").GetString()}/end", new { })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
            await OkAsync(await admin.PostAsJsonAsync($"/api/awards/{award.GetProperty("id").GetString()}/end", new { note = "misuse" }));
            var startup = await admin.GetFromJsonAsync<JsonElement>("/api/projects/startup-demo");
            (startup.TryGetProperty("quotas", out var qs) && qs.GetArrayLength() > 0).ShouldBeFalse(startup.ToString());

            // At the end date the quota lapses.
            time.AdvanceTo(new DateTimeOffset(2026, 5, 1, 0, 0, 1, TimeSpan.Zero));
            await quotas.ApplyAsync();
            var after = await admin.GetFromJsonAsync<JsonElement>("/api/projects/demo");
            (after.TryGetProperty("quotas", out var q1) && q1.GetArrayLength() > 0).ShouldBeFalse(after.ToString());
            var events = await admin.GetFromJsonAsync<JsonElement>("/api/events?kind=award.quota");
            events.GetProperty("items").GetArrayLength().ShouldBeGreaterThanOrEqualTo(3);
            foreach (var kind in new[] { "call.created", "proposal.submitted", "call.review", "review.submitted", "proposal.awarded", "award.created", "award.ended", "call.decided" })
            {
                (await admin.GetFromJsonAsync<JsonElement>($"/api/events?kind={kind}")).GetProperty("items").GetArrayLength().ShouldBeGreaterThan(0, kind);
            }
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Fact]
    public async Task OpenApi_HasThePathsOfCallsProposalsAndReviews()
    {
        await using var s = await ServerHarness.StartAsync();
        var doc = await s.Client(null).GetStringAsync("/openapi/v1.json");
        foreach (var path in new[] { "/api/calls", "/api/calls/{id}/committee", "/api/calls/{id}/select", "/api/proposals", "/api/proposals/{id}/submit", "/api/reviews", "/api/reviews/{proposal}", "/api/awards/{id}/cut", "/api/projects/{name}/statement", "/api/organisations/{name}/statement", "/api/calls/{id}/members", "/api/calls/{id}/members/{user}" })
        {
            doc.ShouldContain($"\"{path}\"");
        }
    }

    [Theory]
    [InlineData("""{"id":"c","titleEn":"t","titleKo":"t","opens":"2026-01-01T00:00:00Z","closes":"2025-01-01T00:00:00Z","rules":{}}""", "closes")]
    [InlineData("""{"id":"c","titleEn":"t","titleKo":"t","opens":"2026-01-01T00:00:00Z","closes":"2026-02-01T00:00:00Z"}""", "rules")]
    [InlineData("""{"id":"c","titleEn":"t","titleKo":"t","opens":"2026-01-01T00:00:00Z","closes":"2026-02-01T00:00:00Z","rules":{"partitions":["nope"],"budgetGpuMonths":{"academia":10},"criteria":[{"key":"a","weight":1,"nameEn":"A","nameKo":"A"}]}}""", "rules.partitions[0]")]
    [InlineData("""{"id":"c","titleEn":"t","titleKo":"t","opens":"2026-01-01T00:00:00Z","closes":"2026-02-01T00:00:00Z","rules":{"partitions":["gpu"],"budgetGpuMonths":{"pirates":10},"criteria":[{"key":"a","weight":1,"nameEn":"A","nameKo":"A"}]}}""", "rules.budgetGpuMonths.pirates")]
    [InlineData("""{"id":"c","titleEn":"t","titleKo":"t","opens":"2026-01-01T00:00:00Z","closes":"2026-02-01T00:00:00Z","rules":{"partitions":["gpu"],"budgetGpuMonths":{"academia":10},"criteria":[]}}""", "rules.criteria")]
    [InlineData("""{"id":"c","titleEn":"t","titleKo":"t","opens":"2026-01-01T00:00:00Z","closes":"2026-02-01T00:00:00Z","rules":{"partitions":["gpu"],"budgetGpuMonths":{"academia":10},"criteria":[{"key":"a","weight":1,"nameEn":"A","nameKo":"A"}]},"bogus":1}""", "bogus")]
    public async Task BadCalls_Are400NamingTheField_AndStoreNothing(string body, string field)
    {
        await using var s = await ServerHarness.StartAsync();
        var r = await s.Client("admin").PostAsync("/api/calls", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        (await OkAsync(r, HttpStatusCode.BadRequest)).GetProperty("field").GetString().ShouldBe(field);
        (await s.Client("admin").GetFromJsonAsync<JsonElement>("/api/calls")).GetArrayLength().ShouldBe(0);
        (await s.Client("alice").PostAsync("/api/calls", new StringContent(body, System.Text.Encoding.UTF8, "application/json"))).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
    }

    [Theory]
    [InlineData("gpus", 12, "gpus")]          // not whole servers of 8
    [InlineData("gpus", 24, "gpus")]          // above the per-project cap of 16
    [InlineData("months", 13, "months")]
    [InlineData("partition", "other", "partition")]
    [InlineData("startMonth", "2026-13", "startMonth")]
    public async Task BadProposals_Are400NamingTheField(string key, object value, string field)
    {
        var time = new ShiftedTime(T0);
        await using var s = await ServerHarness.StartAsync(time: time);
        await OkAsync(await s.Client("admin").PostAsJsonAsync("/api/calls", new { id = "r1", titleEn = "t", titleKo = "t", opens = T0.AddDays(-1), closes = T0.AddDays(10), rules = Rules() }), HttpStatusCode.Created);
        var body = new Dictionary<string, object> { ["call"] = "r1", ["project"] = "demo", ["title"] = "x", ["partition"] = "gpu", ["gpus"] = 8, ["startMonth"] = "2026-02", ["months"] = 3, ["justification"] = "y" };
        body[key] = value;
        (await OkAsync(await s.Client("alice").PostAsJsonAsync("/api/proposals", body), HttpStatusCode.BadRequest)).GetProperty("field").GetString().ShouldBe(field);
        // Only the project's PI applies; a member learns they may not, another tenant learns nothing.
        body[key] = key == "gpus" ? 8 : key == "months" ? 3 : key == "partition" ? "gpu" : "2026-02";
        (await s.Client("bob").PostAsJsonAsync("/api/proposals", body)).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await OkAsync(await s.Client("sam").PostAsJsonAsync("/api/proposals", body), HttpStatusCode.BadRequest)).GetProperty("field").GetString().ShouldBe("project");
    }
}
