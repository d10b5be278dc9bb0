using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Server.Data;
using GpuCommons.Server.Rounds;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Tests;

/// <summary>
/// Co-pay in the ledger (each charge records the market value and what the organisation pays; statements read the
/// ledger) and the committee role (only a call's committee or an admin ranks, selects, cuts and ends), on the real server.
/// </summary>
public sealed class RoundCopayCommitteeTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 10, 9, 0, 0, TimeSpan.Zero);

    private static object Rules() => new
    {
        partitions = new[] { "gpu" },
        budgetGpuMonths = new Dictionary<string, double> { ["academia"] = 8 * 3, ["industry"] = 16 * 3 },
        maxGpusPerProject = new Dictionary<string, int> { ["gpu"] = 16 },
        maxMonths = 12,
        eligibleTypes = new[] { "university", "institute", "companylab", "startup" },
        criteria = new[]
        {
            new { key = "impact", weight = 50.0, nameEn = "Impact", nameKo = "파급효과" },
            new { key = "feasibility", weight = 50.0, nameEn = "Feasibility", nameKo = "실현 가능성" },
        },
        reviewersPerProposal = 1,
        copay = new Dictionary<string, double> { ["startup"] = 0.3, ["companylab"] = 0.3 },
        youthDiscount = 0.5,
    };

    private static async Task<JsonElement> OkAsync(HttpResponseMessage r, HttpStatusCode code = HttpStatusCode.OK)
    {
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(code, text);
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task<HttpClient> NewUserAsync(ServerHarness s, string name, string role, string? organisation = null)
    {
        var admin = s.Client("admin");
        var u = await OkAsync(await admin.PostAsJsonAsync("/api/users", new { name, role }), HttpStatusCode.Created);
        if (organisation is not null)
        {
            await OkAsync(await admin.PutAsJsonAsync($"/api/reviews/profiles/{name}", new { organisation }));
        }

        var c = s.App.GetTestClient();
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", u.GetProperty("token").GetString());
        return c;
    }

    private static async Task<long> ProposeAsync(HttpClient pi, string project, int gpus, bool youth = false)
    {
        var p = await OkAsync(await pi.PostAsJsonAsync("/api/proposals", new
        {
            call = "r1", project, title = $"{project} model", team = "PI and 2 engineers", partition = "gpu", gpus, startMonth = "2026-02", months = 3,
            justification = "Training a model.", youth,
        }), HttpStatusCode.Created);
        var id = p.GetProperty("id").GetInt64();
        await OkAsync(await pi.PostAsync($"/api/proposals/{id}/submit", null));
        return id;
    }

    /// <summary>A call with three applicants (a university, a company lab and a youth-founded startup), reviewed and closed for selection.</summary>
    private static async Task<(Dictionary<string, long> Proposals, Dictionary<string, HttpClient> Reviewers)> RoundUnderReviewAsync(ServerHarness s, ShiftedTime time)
    {
        var admin = s.Client("admin");
        await OkAsync(await admin.PostAsJsonAsync("/api/organisations", new { name = "Lab 01", type = "companylab" }), HttpStatusCode.Created);
        await OkAsync(await admin.PostAsJsonAsync("/api/organisations", new { name = "Startup 02", type = "startup" }), HttpStatusCode.Created);
        await OkAsync(await admin.PostAsJsonAsync("/api/projects", new { name = "uni-x", organisation = "University 01", pi = "alice" }), HttpStatusCode.Created);
        await OkAsync(await admin.PostAsJsonAsync("/api/projects", new { name = "lab-x", organisation = "Lab 01", pi = "bob" }), HttpStatusCode.Created);
        await OkAsync(await admin.PostAsJsonAsync("/api/projects", new { name = "youth-x", organisation = "Startup 02", pi = "sam" }), HttpStatusCode.Created);
        await OkAsync(await admin.PostAsJsonAsync("/api/calls", new
        {
            id = "r1", titleEn = "GPU call 2026-1", titleKo = "2026년 1차 GPU 지원 공모", opens = T0.AddDays(-1), closes = T0.AddDays(10), rules = Rules(),
        }), HttpStatusCode.Created);
        var proposals = new Dictionary<string, long>
        {
            ["uni-x"] = await ProposeAsync(s.Client("alice"), "uni-x", 8),
            ["lab-x"] = await ProposeAsync(s.Client("bob"), "lab-x", 8),
            ["youth-x"] = await ProposeAsync(s.Client("sam"), "youth-x", 8, youth: true),
        };
        time.AdvanceTo(T0.AddDays(11));
        await OkAsync(await admin.PutAsJsonAsync("/api/reviews/profiles/carol", new { organisation = "University 01" }));
        var reviewers = new Dictionary<string, HttpClient>
        {
            ["carol"] = s.Client("carol"),
            ["rev2"] = await NewUserAsync(s, "rev2", "reviewer", "Institute 01"),
        };
        await OkAsync(await admin.PostAsync("/api/calls/r1/assign", null));
        return (proposals, reviewers);
    }

    private static async Task ReviewAllAsync(Dictionary<string, HttpClient> reviewers)
    {
        foreach (var (name, client) in reviewers)
        {
            foreach (var item in (await client.GetFromJsonAsync<JsonElement>("/api/reviews")).EnumerateArray())
            {
                var pid = item.GetProperty("proposal").GetInt64();
                await OkAsync(await client.PutAsJsonAsync($"/api/reviews/{pid}", new { scores = new { impact = 80.0, feasibility = 70.0 }, comment = $"comment by {name}" }));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Ledger_RecordsMarketValueAndWhatTheOrganisationPays_AndStatementsReadTheLedger(string provider)
    {
        var time = new ShiftedTime(T0);
        var s = await ServerHarness.StartAsync(TestDatabase.For(provider), new TestBackend(nodes: 4), time: time);
        try
        {
            var admin = s.Client("admin");
            var (_, reviewers) = await RoundUnderReviewAsync(s, time);
            await ReviewAllAsync(reviewers);
            var sel = await OkAsync(await admin.PostAsJsonAsync("/api/calls/r1/select", new { }));
            sel.GetProperty("decisions").EnumerateArray().Select(d => d.GetProperty("outcome").GetString()).ShouldAllBe(o => o == "awarded");

            time.AdvanceTo(new DateTimeOffset(2026, 2, 2, 9, 0, 0, TimeSpan.Zero));
            await s.App.Services.GetRequiredService<AwardQuotaService>().ApplyAsync();
            // One job per project: three awards and one plain grant (startup-demo's allocation is no award).
            var users = new Dictionary<string, string> { ["uni-x"] = "alice", ["lab-x"] = "bob", ["youth-x"] = "sam", ["startup-demo"] = "sam" };
            var jobs = new Dictionary<string, long>();
            foreach (var (project, user) in users)
            {
                jobs[project] = (await OkAsync(await s.Client(user).PostAsJsonAsync("/api/jobs", new { project, gpus = 8, walltime = "4h", command = new[] { "train" } }), HttpStatusCode.Created))
                    .GetProperty("id").GetInt64();
            }

            await ServerHarness.EventuallyAsync(async () => (await Task.WhenAll(jobs.Values.Select(s.JobAsync))).All(j => j.GetProperty("state").GetString() == "running"), "every job runs");
            var end = time.GetUtcNow().AddHours(2);
            foreach (var id in jobs.Values)
            {
                s.Backend.Finish(id, 0, end);
            }

            List<LedgerRow> ledger = [];
            await ServerHarness.EventuallyAsync(async () =>
            {
                await using var db = s.Factory.Create();
                ledger = await db.Ledger.AsNoTracking().ToListAsync();
                return ledger.Count == jobs.Count;
            }, "a ledger entry per job");

            var by = ledger.ToDictionary(l => l.Project);
            foreach (var l in ledger)
            {
                l.Amount.ShouldBeGreaterThan(0m, l.Project);
            }

            // University: nothing; company lab: its 30% share; youth-founded startup: a further 50% off; a grant: nothing.
            by["uni-x"].CopayShare.ShouldBe(0);
            by["uni-x"].Payable.ShouldBe(0m);
            by["lab-x"].CopayShare.ShouldBe(0.3);
            Math.Abs(by["lab-x"].Payable - (by["lab-x"].Amount * 0.3m)).ShouldBeLessThanOrEqualTo(0.0001m, "payable is the market value × 30%, to the ledger's 4 decimals");
            by["youth-x"].CopayShare.ShouldBe(0.15);
            Math.Abs(by["youth-x"].Payable - (by["youth-x"].Amount * 0.15m)).ShouldBeLessThanOrEqualTo(0.0001m, "payable is the market value × 15%");
            by["startup-demo"].Payable.ShouldBe(0m);
            by["startup-demo"].AllocationId.ShouldBe("startup-demo-2026");

            // The statement reads the ledger: changing the award's rate afterwards does not rewrite what was charged.
            await using (var db = s.Factory.Create())
            {
                var alloc = await db.Allocations.SingleAsync(a => a.Project == "youth-x");
                alloc.CopayShare = 0.9;
                await db.SaveChangesAsync();
            }

            var st = await OkAsync(await s.Client("sam").GetAsync("/api/projects/youth-x/statement?month=2026-02"));
            st.GetProperty("marketAmount").GetDecimal().ShouldBe(by["youth-x"].Amount);
            st.GetProperty("due").GetDecimal().ShouldBe(Math.Round(by["youth-x"].Payable, 0, MidpointRounding.AwayFromZero));
            (st.GetProperty("due").GetDecimal() + st.GetProperty("subsidy").GetDecimal()).ShouldBe(by["youth-x"].Amount);
            st.GetProperty("lines")[0].GetProperty("share").GetDouble().ShouldBe(0.15);
            st.GetProperty("organisation").GetString().ShouldBe("Startup 02");

            // Another month has nothing; another tenant sees nothing.
            (await OkAsync(await s.Client("sam").GetAsync("/api/projects/youth-x/statement?month=2026-03"))).GetProperty("lines").GetArrayLength().ShouldBe(0);
            (await s.Client("alice").GetAsync("/api/projects/youth-x/statement?month=2026-02")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
            (await OkAsync(await s.Client("sam").GetAsync("/api/projects/youth-x/statement?month=2026-2"), HttpStatusCode.BadRequest)).GetProperty("field").GetString().ShouldBe("month");

            // CSV: market value beside what is paid.
            var csv = await s.Client("sam").GetStringAsync("/api/projects/youth-x/statement?month=2026-02&format=csv");
            var lines = csv.Trim().Split('\n');
            lines[0].ShouldBe("project,month,partition,gpu_hours,market_amount,copay_share,due,subsidy,organisation");
            lines.Length.ShouldBe(2);
            var cells = lines[1].Split(',');
            cells[..3].ShouldBe(["youth-x", "2026-02", "gpu"]);
            double.Parse(cells[3], System.Globalization.CultureInfo.InvariantCulture).ShouldBe(16, 0.01, "8 GPUs for 2 hours");
            decimal.Parse(cells[4], System.Globalization.CultureInfo.InvariantCulture).ShouldBe(Math.Round(by["youth-x"].Amount, 2));
            cells[5].ShouldBe("0.15");
            decimal.Parse(cells[6], System.Globalization.CultureInfo.InvariantCulture).ShouldBe(st.GetProperty("due").GetDecimal());
            cells[8].ShouldBe("Startup 02");

            // An organisation's statement (staff): a line per project; the lab pays its share, the university nothing.
            var lab = await OkAsync(await admin.GetAsync("/api/organisations/Lab 01/statement?month=2026-02"));
            lab.GetProperty("due").GetDecimal().ShouldBe(Math.Round(by["lab-x"].Payable, 0, MidpointRounding.AwayFromZero));
            var uni = await OkAsync(await admin.GetAsync("/api/organisations/University 01/statement?month=2026-02"));
            uni.GetProperty("due").GetDecimal().ShouldBe(0m);
            uni.GetProperty("marketAmount").GetDecimal().ShouldBe(by["uni-x"].Amount);
            (await s.Client("bob").GetAsync("/api/organisations/Lab 01/statement?month=2026-02")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
            (await admin.GetAsync("/api/organisations/Nowhere/statement")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    /// <summary>
    /// The committee role, tested as an attacker: applicants and reviewers are refused (403) every committee action and see
    /// only what their role allows; a named committee member ranks, selects and ends awards; membership changes are audited.
    /// </summary>
    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task OnlyTheCallsCommittee_RanksSelectsCutsAndEnds_AndOthersSeeOnlyWhatTheirRoleAllows(string provider)
    {
        var time = new ShiftedTime(T0);
        var s = await ServerHarness.StartAsync(TestDatabase.For(provider), new TestBackend(nodes: 4), time: time);
        try
        {
            var admin = s.Client("admin");
            var (proposals, reviewers) = await RoundUnderReviewAsync(s, time);
            var alice = s.Client("alice"); // applicant (uni-x)
            var sam = s.Client("sam");     // applicant (youth-x)
            var carol = reviewers["carol"];
            var chair = await NewUserAsync(s, "chair", "user");

            // Membership: admins only; never someone from a project that applied; audited.
            (await carol.PutAsync("/api/calls/r1/members/carol", null)).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
            (await OkAsync(await admin.PutAsync("/api/calls/r1/members/alice", null), HttpStatusCode.Conflict)).GetProperty("field").GetString().ShouldBe("user");
            (await admin.PutAsync("/api/calls/r1/members/nobody", null)).StatusCode.ShouldBe(HttpStatusCode.NotFound);
            (await admin.PutAsync("/api/calls/nope/members/chair", null)).StatusCode.ShouldBe(HttpStatusCode.NotFound);
            await OkAsync(await admin.PutAsync("/api/calls/r1/members/chair", null));
            (await OkAsync(await chair.GetAsync("/api/calls/r1/members"))).EnumerateArray().Select(m => m.GetProperty("user").GetString()).ShouldBe(["chair"]);
            (await alice.GetAsync("/api/calls/r1/members")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);

            // Before submitting their own review, a reviewer sees no other review; nor the ranking; nor may they select.
            var carolsPid = (await carol.GetFromJsonAsync<JsonElement>("/api/reviews"))[0].GetProperty("proposal").GetInt64();
            (await carol.GetFromJsonAsync<JsonElement>($"/api/reviews/{carolsPid}")).EnumerateArray().ShouldAllBe(r => r.GetProperty("label").GetString() == "carol");
            await ReviewAllAsync(new Dictionary<string, HttpClient> { ["rev2"] = reviewers["rev2"] });
            var rev2Pid = (await reviewers["rev2"].GetFromJsonAsync<JsonElement>("/api/reviews"))[0].GetProperty("proposal").GetInt64();
            (await carol.GetAsync($"/api/reviews/{rev2Pid}")).StatusCode.ShouldBe(HttpStatusCode.NotFound, "a proposal not assigned to carol");
            foreach (var attacker in new[] { carol, alice, sam })
            {
                (await attacker.GetAsync("/api/calls/r1/committee")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
                (await attacker.PostAsJsonAsync("/api/calls/r1/select", new { @override = true })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
            }

            // An applicant cannot read another's proposal, nor list it, nor read its reviews.
            (await alice.GetAsync($"/api/proposals/{proposals["youth-x"]}")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
            (await alice.GetAsync($"/api/reviews/{proposals["youth-x"]}")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
            (await alice.GetFromJsonAsync<JsonElement>("/api/proposals?call=r1")).EnumerateArray().Select(p => p.GetProperty("project").GetString()).ShouldBe(["uni-x"]);

            // The committee member sees every proposal of the call and the reviews with the reviewers' names.
            (await chair.GetFromJsonAsync<JsonElement>("/api/proposals?call=r1")).GetArrayLength().ShouldBe(3);
            var named = await chair.GetFromJsonAsync<JsonElement>($"/api/reviews/{rev2Pid}");
            named[0].GetProperty("reviewer").GetString().ShouldBe("rev2");
            await ReviewAllAsync(new Dictionary<string, HttpClient> { ["carol"] = carol });
            var table = await OkAsync(await chair.GetAsync("/api/calls/r1/committee"));
            table.GetProperty("decisions").GetArrayLength().ShouldBe(3);
            await OkAsync(await chair.PostAsJsonAsync("/api/calls/r1/select", new { note = "by the chair" }));

            // Decided: the applicant sees the comments, numbered and without names.
            foreach (var r in (await alice.GetFromJsonAsync<JsonElement>($"/api/reviews/{proposals["uni-x"]}")).EnumerateArray())
            {
                r.TryGetProperty("reviewer", out var who).ShouldBeFalse(who.ToString());
                r.GetProperty("label").GetString()!.ShouldStartWith("#");
            }

            // Stage review: applicants and reviewers are refused; another tenant learns nothing; the committee member cuts and ends.
            var award = (await chair.GetFromJsonAsync<JsonElement>("/api/awards?call=r1")).EnumerateArray().First(a => a.GetProperty("project").GetString() == "lab-x");
            var awardId = award.GetProperty("id").GetString();
            (await s.Client("bob").PostAsJsonAsync($"/api/awards/{awardId}/end", new { })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
            (await carol.PostAsJsonAsync($"/api/awards/{awardId}/cut", new { gpus = 0 })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
            (await alice.PostAsJsonAsync($"/api/awards/{awardId}/end", new { })).StatusCode.ShouldBe(HttpStatusCode.NotFound);
            (await OkAsync(await chair.PostAsJsonAsync($"/api/awards/{awardId}/cut", new { gpus = 0, note = "stage review" }))).GetProperty("gpus").GetInt32().ShouldBe(0);
            (await OkAsync(await chair.PostAsJsonAsync($"/api/awards/{awardId}/end", new { note = "misuse" }))).GetProperty("state").GetString().ShouldBe("ended");

            // Off the committee, the chair is refused like anyone else.
            (await admin.DeleteAsync("/api/calls/r1/members/chair")).StatusCode.ShouldBe(HttpStatusCode.NoContent);
            (await chair.GetAsync("/api/calls/r1/committee")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
            (await chair.GetAsync($"/api/proposals/{proposals["lab-x"]}")).StatusCode.ShouldBe(HttpStatusCode.NotFound);

            var events = await admin.GetFromJsonAsync<JsonElement>("/api/events?kind=committee");
            events.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ShouldBe(["committee.added", "committee.removed"]);
            var cut = (await admin.GetFromJsonAsync<JsonElement>("/api/events?kind=award.cut")).GetProperty("items")[0];
            cut.GetProperty("actor").GetString().ShouldBe("chair");
            RoundEvents.Kinds.ShouldContain("committee.added");
        }
        finally
        {
            await s.DisposeAsync();
        }
    }
}
