using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GpuCommons.Contracts;
using GpuCommons.Server.Api;

namespace GpuCommons.Server.Tests;

public sealed class ApiTests : IAsyncLifetime
{
    private ServerHarness _s = null!;

    public async Task InitializeAsync() => _s = await ServerHarness.StartAsync();

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    internal static object Job(double gpus = 1, string walltime = "1h", string project = "demo") =>
        new { project, gpus, walltime, command = new[] { "sleep", "1" } };

    [Fact]
    public async Task Health_OpenApi_Metrics_AreServed()
    {
        var c = _s.Client(null);
        (await c.GetAsync("/healthz")).StatusCode.ShouldBe(HttpStatusCode.OK);
        var doc = await c.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        doc.GetProperty("paths").TryGetProperty("/api/jobs", out _).ShouldBeTrue();
        var metrics = await c.GetStringAsync("/metrics");
        metrics.ShouldContain("gpuc_queue_pending_jobs");
        metrics.ShouldContain("gpuc_admission_latency_seconds_bucket");

        // The engine's phases per pass kind, as numbers a scraper reads.
        foreach (var pass in new[] { "full", "incremental" })
        {
            foreach (var phase in new[] { "time_events", "order", "walk" })
            {
                var line = metrics.Split('\n').Single(l => l.StartsWith($"gpuc_schedule_phase_seconds{{pass=\"{pass}\",phase=\"{phase}\"}} ", StringComparison.Ordinal));
                double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture).ShouldBeGreaterThanOrEqualTo(0);
            }
        }
    }

    [Fact]
    public async Task Api_WithoutToken_Is401()
    {
        (await _s.Client(null).GetAsync("/api/jobs")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        var bad = _s.Client(null);
        bad.DefaultRequestHeaders.Authorization = new("Bearer", "gpuc_not-a-token");
        (await bad.GetAsync("/api/jobs")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Submit_Returns201_IsStoredBeforeTheAnswer_AndStarts()
    {
        var r = await _s.Client("bob").PostAsJsonAsync("/api/jobs", Job(2));
        r.StatusCode.ShouldBe(HttpStatusCode.Created);
        var job = await r.Content.ReadFromJsonAsync<JsonElement>();
        var id = job.GetProperty("id").GetInt64();
        (await _s.CountJobsAsync()).ShouldBe(1);
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(id)).GetProperty("state").GetString() == "running", "start");
        _s.Backend.Running[id].Nodes.Sum(n => n.Gpus.Count).ShouldBe(2);
    }

    [Fact]
    public async Task PendingJob_ShowsReasonAndEstimatedStart()
    {
        var c = _s.Client("bob");
        var first = await (await c.PostAsJsonAsync("/api/jobs", Job(8))).Content.ReadFromJsonAsync<JsonElement>();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(first.GetProperty("id").GetInt64())).GetProperty("state").GetString() == "running", "first start");
        var second = await (await c.PostAsJsonAsync("/api/jobs", Job(8))).Content.ReadFromJsonAsync<JsonElement>();
        var id = second.GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () =>
        {
            var j = await _s.JobAsync(id);
            return j.TryGetProperty("reason", out var reason) && reason.GetString() != "new" && j.TryGetProperty("estimatedStart", out _);
        }, "a reason and an estimated start");
    }

    public static TheoryData<string, string> BadJobs() => new()
    {
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"colour":"red"}""", "colour" },
        { """{"project":"demo","gpus":"one","walltime":"1h","command":["x"]}""", "gpus" },
        { """{"project":"demo","gpus":-1,"walltime":"1h","command":["x"]}""", "gpus" },
        { """{"project":"demo","gpus":1.5,"walltime":"1h","command":["x"]}""", "gpus" },
        { """{"project":"demo","gpus":0,"walltime":"1h","command":["x"]}""", "gpus" },
        { """{"project":"demo","gpus":1,"walltime":"99d","command":["x"]}""", "walltime" },
        { """{"project":"demo","gpus":1,"walltime":"soon","command":["x"]}""", "walltime" },
        { """{"project":"demo","gpus":1,"walltime":3600,"command":["x"]}""", "walltime" },
        { """{"project":"nope","gpus":1,"walltime":"1h","command":["x"]}""", "project" },
        { """{"project":"startup-demo","gpus":1,"walltime":"1h","command":["x"]}""", "project" },
        { """{"gpus":1,"walltime":"1h","command":["x"]}""", "project" },
        { """{"project":"demo","gpus":1,"walltime":"1h"}""", "command" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":"x"}""", "command" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"nodes":-2}""", "nodes" },
        { """{"project":"demo","gpus":64,"walltime":"1h","command":["x"]}""", "gpus" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"partition":"mars"}""", "partition" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"priority":"urgent"}""", "priority" },
        { """{"project":"demo",""", "body" },
        { """[1,2]""", "body" },
    };

    [Theory]
    [MemberData(nameof(BadJobs))]
    public async Task BadSubmission_Is400NamingTheField_AndStoresNothing(string body, string field)
    {
        var r = await _s.Client("bob").PostAsync("/api/jobs", Json(body));
        r.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        r.Content.Headers.ContentType!.MediaType.ShouldBe("application/problem+json");
        var p = await r.Content.ReadFromJsonAsync<JsonElement>();
        p.GetProperty("field").GetString().ShouldBe(field);
        p.GetProperty("detail").GetString()!.ShouldStartWith(field);
        (await _s.CountJobsAsync()).ShouldBe(0);
    }

    [Fact]
    public async Task HugeBody_Is400_AndStoresNothing()
    {
        var big = new string('x', 2 * 1024 * 1024);
        var r = await _s.Client("bob").PostAsync("/api/jobs", Json($$"""{"project":"demo","gpus":1,"walltime":"1h","command":["{{big}}"]}"""));
        r.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString().ShouldBe("body");
        (await _s.CountJobsAsync()).ShouldBe(0);
    }

    [Fact]
    public async Task BadQuery_Is400NamingTheParameter()
    {
        var r = await _s.Client("admin").GetAsync("/api/jobs?limit=abc");
        r.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString().ShouldBe("limit");
        r = await _s.Client("admin").GetAsync("/api/jobs?limit=0");
        (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString().ShouldBe("limit");
    }

    [Fact]
    public async Task IdempotencyKey_SameKey_GivesTheSameJobOnce()
    {
        var c = _s.Client("bob");
        var tasks = Enumerable.Range(0, 20).Select(async _ =>
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(Job()) };
            req.Headers.Add("Idempotency-Key", "k-1");
            var r = await c.SendAsync(req);
            r.IsSuccessStatusCode.ShouldBeTrue();
            return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        });
        var ids = await Task.WhenAll(tasks);
        ids.Distinct().Count().ShouldBe(1);
        (await _s.CountJobsAsync()).ShouldBe(1);

        using var again = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(Job()) };
        again.Headers.Add("Idempotency-Key", "k-1");
        var replay = await c.SendAsync(again);
        replay.StatusCode.ShouldBe(HttpStatusCode.OK);
        replay.Headers.GetValues("Idempotent-Replayed").ShouldContain("true");
    }

    [Fact]
    public async Task Paging_WalksEveryJobOnce()
    {
        var c = _s.Client("bob");
        for (var i = 0; i < 25; i++)
        {
            (await c.PostAsJsonAsync("/api/jobs", Job(1, "1h"))).EnsureSuccessStatusCode();
        }

        var seen = new List<long>();
        string? after = null;
        do
        {
            var page = await c.GetFromJsonAsync<JsonElement>("/api/jobs?limit=10" + (after is null ? "" : "&after=" + after));
            seen.AddRange(page.GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetInt64()));
            after = page.TryGetProperty("next", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
        }
        while (after is not null);
        seen.Count.ShouldBe(25);
        seen.Distinct().Count().ShouldBe(25);
        seen.ShouldBeInOrder();
    }

    [Fact]
    public async Task CancelPendingAndRunning_EndsCancelled_AndChargesOnlyTheRunningOne()
    {
        var c = _s.Client("bob");
        var a = (await (await c.PostAsJsonAsync("/api/jobs", Job(8))).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(a)).GetProperty("state").GetString() == "running", "start");
        var b = (await (await c.PostAsJsonAsync("/api/jobs", Job(8))).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        (await c.PostAsync($"/api/jobs/{b}/cancel", null)).StatusCode.ShouldBe(HttpStatusCode.Accepted);
        (await c.PostAsync($"/api/jobs/{a}/cancel", null)).StatusCode.ShouldBe(HttpStatusCode.Accepted);
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(a)).GetProperty("state").GetString() == "cancelled", "cancel of the running job");
        (await _s.JobAsync(b)).GetProperty("state").GetString().ShouldBe("cancelled");
        await using var db = _s.Factory.Create();
        db.Ledger.Select(l => l.JobId).ToList().ShouldBe([a]);
        (await c.PostAsync($"/api/jobs/{a}/cancel", null)).StatusCode.ShouldBe(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task AllocationWorkflow_RequestReviewAwardLess_Tranches_AndAudit()
    {
        var pi = _s.Client("alice");
        var r = await pi.PostAsJsonAsync("/api/allocation-requests", new { project = "demo", gpuHours = 1000.0, justification = "protein folding" });
        r.StatusCode.ShouldBe(HttpStatusCode.Created);
        var id = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        (await _s.Client("bob").PostAsJsonAsync("/api/allocation-requests", new { project = "demo", gpuHours = 1.0, justification = "x" })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await pi.PostAsJsonAsync($"/api/allocation-requests/{id}/review", new { decision = "award" })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        var rev = _s.Client("carol");
        (await rev.PostAsJsonAsync($"/api/allocation-requests/{id}/review", new { decision = "award", gpuHours = 2000.0 })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        var award = await rev.PostAsJsonAsync($"/api/allocation-requests/{id}/review", new { decision = "award", score = 77, gpuHours = 600.0, tranches = 3 });
        award.StatusCode.ShouldBe(HttpStatusCode.OK);
        var alloc = await pi.GetFromJsonAsync<AllocationDto>($"/api/allocations/alloc-{id}");
        alloc!.AwardedGpuHours.ShouldBe(600);
        alloc.ReleasedGpuHours.ShouldBe(200);
        (await rev.PostAsync($"/api/allocations/alloc-{id}/tranches", null)).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await pi.GetFromJsonAsync<AllocationDto>($"/api/allocations/alloc-{id}"))!.ReleasedGpuHours.ShouldBe(400);
        (await rev.PostAsJsonAsync($"/api/allocation-requests/{id}/review", new { decision = "reject" })).StatusCode.ShouldBe(HttpStatusCode.Conflict);
        var events = await _s.Client("admin").GetFromJsonAsync<JsonElement>("/api/events?kind=allocation_request");
        events.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).ShouldBe(["allocation_request.submitted", "allocation_request.awarded"]);
    }

    [Fact]
    public async Task Alerts_At50And80And100Percent_AreEvents()
    {
        var admin = _s.Client("admin");
        (await admin.PostAsJsonAsync("/api/allocations", new { id = "tiny", project = "startup-demo", gpuHours = 1.0 })).StatusCode.ShouldBe(HttpStatusCode.Created);
        var sam = _s.Client("sam");
        // The startup project has its seeded allocation too; run a job long enough to pass 100% of 'tiny' if it is charged there.
        var id = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "startup-demo", gpus = 1, walltime = "1h", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(id)).GetProperty("state").GetString() == "running", "start");
        var job = await _s.JobAsync(id);
        var start = job.GetProperty("startTime").GetDateTimeOffset();
        _s.Backend.Finish(id, 0, start.AddMinutes(59));
        var allocation = job.GetProperty("allocation").GetString();
        await ServerHarness.EventuallyAsync(async () =>
        {
            var ev = await sam.GetFromJsonAsync<JsonElement>("/api/events?kind=allocation.alert");
            return ev.GetProperty("items").EnumerateArray().Count(e => e.GetProperty("subject").GetString() == $"allocation/{allocation}") >= (allocation == "tiny" ? 2 : 0);
        }, "alerts", 15_000);
    }

    [Fact]
    public async Task ExhaustedGrant_StopsAdmission()
    {
        var admin = _s.Client("admin");
        (await admin.PostAsJsonAsync("/api/projects", new { name = "p-small", organisation = "Startup 001", pi = "sam" })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await admin.PostAsJsonAsync("/api/allocations", new { id = "small-1", project = "p-small", gpuHours = 2.0 })).StatusCode.ShouldBe(HttpStatusCode.Created);
        var sam = _s.Client("sam");
        var a = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "p-small", gpus = 2, walltime = "1h", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(a)).GetProperty("state").GetString() == "running", "start");
        var b = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "p-small", gpus = 1, walltime = "1h", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(b)).TryGetProperty("reason", out var r) && r.GetString() == "grant_exhausted", "grant_exhausted");
        var usage = await sam.GetFromJsonAsync<List<UsageRow>>("/api/usage?by=allocation");
        var row = usage!.Single(u => u.Key == "small-1");
        row.CommittedGpuHours.ShouldBe(2);
        row.RemainingGpuHours.ShouldBe(0);
    }

    [Fact]
    public async Task Fleet_DrainAndReservation()
    {
        var op = _s.Client("oscar");
        var nodes = await op.GetFromJsonAsync<List<NodeDto>>("/api/nodes");
        nodes!.Single().State.ShouldBe("up");
        (await op.PostAsJsonAsync("/api/nodes/node-1/drain", new { reason = "fan" })).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await op.GetFromJsonAsync<List<NodeDto>>("/api/nodes"))!.Single().State.ShouldBe("draining");
        var id = (await (await _s.Client("bob").PostAsJsonAsync("/api/jobs", Job())).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(id)).TryGetProperty("reason", out var r) && r.GetString() != "new", "a reason");
        (await _s.JobAsync(id)).GetProperty("state").GetString().ShouldBe("pending");
        (await op.PostAsync("/api/nodes/node-1/undrain", null)).StatusCode.ShouldBe(HttpStatusCode.OK);
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(id)).GetProperty("state").GetString() == "running", "start after undrain");
        var now = DateTimeOffset.UtcNow;
        (await op.PostAsJsonAsync("/api/reservations", new { name = "maint", nodes = new[] { "node-1" }, start = now.AddDays(1), end = now.AddDays(2) })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await op.PostAsJsonAsync("/api/reservations", new { name = "bad", nodes = new[] { "node-9" }, start = now, end = now.AddDays(1) })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await op.GetFromJsonAsync<List<ReservationDto>>("/api/reservations"))!.Single().Name.ShouldBe("maint");
    }

    [Theory]
    [InlineData("3600", 3600)]
    [InlineData("90m", 5400)]
    [InlineData("2h", 7200)]
    [InlineData("1d", 86400)]
    [InlineData("1h30m", 5400)]
    [InlineData("1-12:00:00", 129600)]
    [InlineData("01:30", 5400)]
    public void TryParseDuration_ReadsSlurmAndUnitForms(string text, int seconds)
    {
        Http.TryParseDuration(text, out var t).ShouldBeTrue();
        t.TotalSeconds.ShouldBe(seconds);
    }

    [Theory]
    [InlineData("")]
    [InlineData("h")]
    [InlineData("2x")]
    [InlineData("-5")]
    [InlineData("1:2:3:4")]
    public void TryParseDuration_RejectsNonsense(string text) => Http.TryParseDuration(text, out _).ShouldBeFalse();

    [Fact]
    public async Task Tokens_ListedWithoutSecrets_RevokedOneOrAll_StopWorkingAtOnce()
    {
        var admin = _s.Client("admin");
        var created = await (await admin.PostAsJsonAsync("/api/users", new { name = "tess" })).Content.ReadFromJsonAsync<JsonElement>();
        var first = created.GetProperty("token").GetString()!;
        var tess = _s.Client(null);
        tess.DefaultRequestHeaders.Authorization = new("Bearer", first);
        var second = (await (await tess.PostAsync("/api/users/tess/tokens", null)).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
        var tess2 = _s.Client(null);
        tess2.DefaultRequestHeaders.Authorization = new("Bearer", second);
        (await tess2.GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.OK);

        var list = await tess.GetFromJsonAsync<JsonElement>("/api/users/tess/tokens");
        list.GetArrayLength().ShouldBe(2);
        list.ToString().ShouldNotContain(first);
        list.ToString().ShouldNotContain(second);

        // Another user cannot see or revoke them, nor learn that tess exists.
        (await _s.Client("bob").GetAsync("/api/users/tess/tokens")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await _s.Client("bob").DeleteAsync("/api/users/tess/tokens/all")).StatusCode.ShouldBe(HttpStatusCode.NotFound);

        // Log out with the second token: it stops working, the first still works.
        (await tess2.DeleteAsync("/api/tokens/current")).StatusCode.ShouldBe(HttpStatusCode.NoContent);
        (await tess2.GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await tess.GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.OK);

        // The admin revokes all of tess's tokens.
        (await admin.DeleteAsync("/api/users/tess/tokens/all")).StatusCode.ShouldBe(HttpStatusCode.NoContent);
        (await tess.GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await admin.DeleteAsync("/api/users/tess/tokens/0123456789ab")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        var events = await admin.GetFromJsonAsync<JsonElement>("/api/events?kind=token.revoked");
        events.GetProperty("items").GetArrayLength().ShouldBe(2);
    }

    [Fact]
    public async Task AllocationExtension_MoreHoursAndLaterEnd_ReopensAdmission()
    {
        var admin = _s.Client("admin");
        (await admin.PostAsJsonAsync("/api/projects", new { name = "p-ext", organisation = "Startup 001", pi = "sam" })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await admin.PostAsJsonAsync("/api/allocations", new { id = "ext-1", project = "p-ext", gpuHours = 1.0 })).StatusCode.ShouldBe(HttpStatusCode.Created);
        var sam = _s.Client("sam");
        var a = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "p-ext", gpus = 1, walltime = "1h", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(a)).GetProperty("state").GetString() == "running", "start");
        var b = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "p-ext", gpus = 2, walltime = "1h", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(b)).TryGetProperty("reason", out var r) && r.GetString() == "grant_exhausted", "grant_exhausted");

        // Only a reviewer extends; the PI and an operator are refused, another tenant learns nothing.
        (await sam.PostAsJsonAsync("/api/allocations/ext-1/extend", new { addGpuHours = 5.0 })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await _s.Client("bob").PostAsJsonAsync("/api/allocations/ext-1/extend", new { addGpuHours = 5.0 })).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await _s.Client("oscar").PostAsJsonAsync("/api/allocations/ext-1/extend", new { addGpuHours = 5.0 })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        var carol = _s.Client("carol");
        var current = await carol.GetFromJsonAsync<JsonElement>("/api/allocations/ext-1");
        var end = current.GetProperty("end").GetDateTimeOffset();
        var bad = await carol.PostAsJsonAsync("/api/allocations/ext-1/extend", new { end = end.AddDays(-1) });
        bad.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString().ShouldBe("end");
        (await carol.PostAsJsonAsync("/api/allocations/ext-1/extend", new { addGpuHours = -1.0 })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);

        var r = await carol.PostAsJsonAsync("/api/allocations/ext-1/extend", new { addGpuHours = 5.0, end = end.AddMonths(3), comment = "results promising" });
        r.StatusCode.ShouldBe(HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
        var dto = await r.Content.ReadFromJsonAsync<JsonElement>();
        dto.GetProperty("awardedGpuHours").GetDouble().ShouldBe(6);
        dto.GetProperty("end").GetDateTimeOffset().ShouldBe(end.AddMonths(3));
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(b)).GetProperty("state").GetString() == "running", "the waiting job starts on the extension");
        var events = await admin.GetFromJsonAsync<JsonElement>("/api/events?kind=allocation.extended");
        events.GetProperty("items")[0].GetProperty("detail").GetString()!.ShouldContain("results promising");
    }
}
