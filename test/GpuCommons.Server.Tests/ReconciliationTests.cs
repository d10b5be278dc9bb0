using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Backends;
using GpuCommons.Server.Engine;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Server.Tests;

/// <summary>
/// Reconciliation in the server, with a scripted reconciler: what a pass finds is stored, shown to operators only,
/// resolved when gone, and acted on where the rules allow. The real Slurm side is in the Slurm integration suite.
/// </summary>
public sealed class ReconciliationTests
{
    /// <summary>Answers each pass with what the test put in <see cref="Next"/>; remembers what it was asked to cancel.</summary>
    private sealed class ScriptedReconciler : IBackendReconciler
    {
        public Func<IReadOnlyCollection<ExpectedRun>, BackendReconciliation> Next { get; set; } = _ => Pass();

        public ConcurrentBag<BackendDiscrepancy> Cancelled { get; } = [];

        public IReadOnlyCollection<ExpectedRun> LastExpected { get; private set; } = [];

        public DateTimeOffset NextAttempt => DateTimeOffset.MinValue;

        public Task<BackendReconciliation> ReconcileAsync(IReadOnlyCollection<ExpectedRun> expected, CancellationToken cancellationToken)
        {
            LastExpected = expected;
            return Task.FromResult(Next(expected));
        }

        public Task CancelStrayAsync(BackendDiscrepancy stray, CancellationToken cancellationToken)
        {
            Cancelled.Add(stray);
            return Task.CompletedTask;
        }
    }

    /// <summary>A string property, or null when it is null or left out (the API leaves nulls out).</summary>
    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v.ToString() : null;

    private static BackendReconciliation Pass(params BackendDiscrepancy[] found) =>
        new(DateTimeOffset.UtcNow, true, 0, 0, TimeSpan.FromMilliseconds(3), found);

    private static BackendDiscrepancy D(string kind, long? job = null, int? attempt = null, string? ext = null, string detail = "seen") =>
        new(kind, job, attempt, ext, "node-1", detail, "do something");

    /// <summary>A server whose background loop has made its first pass (on an empty script); the tests run the others.</summary>
    private static async Task<ServerHarness> StartAsync(ScriptedReconciler r, string provider = "sqlite", TestBackend? backend = null)
    {
        var s = await ServerHarness.StartAsync(TestDatabase.For(provider), backend, o => o.ReconcileInterval = TimeSpan.FromHours(1), r);
        await ServerHarness.EventuallyAsync(() => Task.FromResult(Service(s).Status.Passes >= 1), "first pass");
        return s;
    }

    private static ReconciliationService Service(ServerHarness s) => s.App.Services.GetRequiredService<ReconciliationService>();

    private static async Task<JsonElement> ReportAsync(ServerHarness s, string state = "open")
    {
        var r = await s.Client("oscar").GetAsync("/api/fleet/discrepancies?state=" + state);
        r.StatusCode.ShouldBe(HttpStatusCode.OK, await r.Content.ReadAsStringAsync());
        return await r.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static async Task<long> SubmitAsync(ServerHarness s, double gpus = 1, bool requeueable = true)
    {
        var r = await s.Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus, walltime = "2h", command = new[] { "sleep", "1" }, requeueable });
        r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        var id = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(() => Task.FromResult(s.Backend.Running.ContainsKey(id)), "start");
        return id;
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Discrepancies_AreStored_ShownToOperatorsOnly_AndResolvedWhenGone(string provider)
    {
        var rec = new ScriptedReconciler();
        await using var s = await StartAsync(rec, provider);
        rec.Next = _ => Pass(D(DiscrepancyKinds.Unknown, 999_999, 0, "4242", "gpuc-999999 (Slurm 4242) is PENDING in Slurm but GpuCommons does not expect it"),
            D(DiscrepancyKinds.MalformedOutput, detail: "squeue line 3: 'garbage|||' has 3 fields, expected 11"));
        await Service(s).RunOnceAsync(default);
        await Service(s).RunOnceAsync(default);

        var report = await ReportAsync(s);
        report.GetProperty("open").GetInt32().ShouldBe(2);
        var status = report.GetProperty("reconciliation");
        status.GetProperty("enabled").GetBoolean().ShouldBeTrue();
        status.GetProperty("reachable").GetBoolean().ShouldBeTrue();
        status.GetProperty("problem").GetString()!.ShouldContain("could not be read");
        var items = report.GetProperty("items").EnumerateArray().ToList();
        var unknown = items.Single(i => i.GetProperty("kind").GetString() == "unknown");
        unknown.GetProperty("jobId").GetInt64().ShouldBe(999_999);
        unknown.GetProperty("externalId").GetString().ShouldBe("4242");
        unknown.GetProperty("seen").GetInt32().ShouldBe(2);
        Str(unknown, "action").ShouldBeNull();
        rec.Cancelled.ShouldBeEmpty("a name the database does not know is only reported");
        items.Single(i => i.GetProperty("kind").GetString() == "malformed_output").GetProperty("detail").GetString()!.ShouldContain("garbage");

        // Fleet-wide: operators and admins only.
        (await s.Client("admin").GetAsync("/api/fleet/discrepancies")).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await s.Client("bob").GetAsync("/api/fleet/discrepancies")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await s.Client("carol").GetAsync("/api/fleet/discrepancies")).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await s.Client(null).GetAsync("/api/fleet/discrepancies")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await s.Client("oscar").GetAsync("/api/fleet/discrepancies?state=bogus")).StatusCode.ShouldBe(HttpStatusCode.BadRequest);

        // First sightings are audit events, once each; researchers do not see them.
        var events = await s.Client("oscar").GetFromJsonAsync<JsonElement>("/api/events?kind=reconcile");
        events.GetProperty("items").EnumerateArray().Select(e => e.GetProperty("kind").GetString()).Order()
            .ShouldBe(["reconcile.malformed_output", "reconcile.unknown"]);
        (await s.Client("bob").GetFromJsonAsync<JsonElement>("/api/events?kind=reconcile")).GetProperty("items").GetArrayLength().ShouldBe(0);

        // The controller goes away: the job discrepancy stays open (nothing can be concluded), the outage is shown.
        rec.Next = _ => new BackendReconciliation(DateTimeOffset.UtcNow, false, 0, 0, TimeSpan.Zero,
            [D(DiscrepancyKinds.Unreachable, detail: "Slurm does not answer (3 failures in a row): connection refused")]);
        await Service(s).RunOnceAsync(default);
        report = await ReportAsync(s);
        report.GetProperty("reconciliation").GetProperty("reachable").GetBoolean().ShouldBeFalse();
        report.GetProperty("reconciliation").GetProperty("problem").GetString()!.ShouldContain("does not answer");
        report.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("kind").GetString()).ShouldContain("unknown");
        report.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("kind").GetString()).ShouldContain("unreachable");

        // Back, and clean: everything resolves.
        rec.Next = _ => Pass();
        await Service(s).RunOnceAsync(default);
        report = await ReportAsync(s);
        report.GetProperty("open").GetInt32().ShouldBe(0);
        Str(report.GetProperty("reconciliation"), "problem").ShouldBeNull();
        var resolved = await ReportAsync(s, "resolved");
        resolved.GetProperty("items").GetArrayLength().ShouldBe(3);
        resolved.GetProperty("items").EnumerateArray().ShouldAllBe(i => Str(i, "resolved") != null);
    }

    [Fact]
    public async Task PassWithUnreadableOutput_ResolvesNothingAboutJobs()
    {
        var rec = new ScriptedReconciler { Next = _ => Pass(D(DiscrepancyKinds.Unknown, 999_999, 0, "4242")) };
        await using var s = await StartAsync(rec);
        await Service(s).RunOnceAsync(default);

        rec.Next = _ => Pass(D(DiscrepancyKinds.MalformedOutput, detail: "squeue line 1: 'x' has 1 field, expected 8"));
        await Service(s).RunOnceAsync(default);
        (await ReportAsync(s)).GetProperty("open").GetInt32().ShouldBe(2);

        rec.Next = _ => Pass();
        await Service(s).RunOnceAsync(default);
        (await ReportAsync(s)).GetProperty("open").GetInt32().ShouldBe(0);
    }

    [Fact]
    public async Task OpenApi_DocumentsTheDiscrepanciesEndpoint()
    {
        await using var s = await StartAsync(new ScriptedReconciler());
        var doc = await s.Client(null).GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var get = doc.GetProperty("paths").GetProperty("/api/fleet/discrepancies").GetProperty("get");
        get.GetProperty("responses").TryGetProperty("403", out _).ShouldBeTrue();
        get.GetProperty("summary").GetString()!.ShouldContain("operator");
    }

    [Fact]
    public async Task ExpectedRuns_AreTheRunningJobs_WithTheirBackendIdAndAttempt()
    {
        var rec = new ScriptedReconciler();
        await using var s = await StartAsync(rec);
        var id = await SubmitAsync(s, 2);
        await ServerHarness.EventuallyAsync(async () => (await Service(s).RunOnceAsync(default)) is not null && rec.LastExpected.Any(e => e.ExternalId is not null), "handle saved");
        var run = rec.LastExpected.ShouldHaveSingleItem();
        run.JobId.ShouldBe(id);
        run.Attempt.ShouldBe(0);
        run.ExternalId.ShouldBe($"test-{id}");
        run.StartedInBackend.ShouldBeFalse();
        run.Nodes.ShouldBe(["node-1"]);
    }

    [Fact]
    public async Task LostRun_IsFailedAndRequeued_AsTheNextAttempt()
    {
        var rec = new ScriptedReconciler();
        await using var s = await StartAsync(rec);
        var id = await SubmitAsync(s);
        rec.Next = _ => Pass(D(DiscrepancyKinds.Lost, id, 0, $"test-{id}", $"gpuc-{id} is Running in GpuCommons but in neither squeue nor sacct"));

        await Service(s).RunOnceAsync(default);

        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("attempt").GetInt32() == 1, "requeued");
        await using var db = s.Factory.Create();
        var ledger = await db.Ledger.Where(l => l.JobId == id).ToListAsync();
        ledger.ShouldHaveSingleItem().Attempt.ShouldBe(0);
        (await db.Events.AnyAsync(e => e.Kind == "job.requeued" && e.Subject == $"job/{id}")).ShouldBeTrue();
        var row = await db.Discrepancies.SingleAsync(d => d.Kind == "lost");
        row.Action.ShouldNotBeNull().ShouldContain("requeued");
        (await db.Events.AnyAsync(e => e.Kind == "reconcile.action")).ShouldBeTrue();

        // Seen again for the old attempt: nothing more happens to the new one.
        await Service(s).RunOnceAsync(default);
        (await s.JobAsync(id)).GetProperty("attempt").GetInt32().ShouldBe(1);
    }

    [Fact]
    public async Task LostRun_NotRequeueable_IsFailed()
    {
        var rec = new ScriptedReconciler();
        await using var s = await StartAsync(rec);
        var id = await SubmitAsync(s, requeueable: false);
        rec.Next = _ => Pass(D(DiscrepancyKinds.Lost, id, 0, $"test-{id}"));

        await Service(s).RunOnceAsync(default);

        var job = await s.JobAsync(id);
        job.GetProperty("state").GetString().ShouldBe("failed");
        job.GetProperty("outcome").GetString()!.ShouldStartWith("failed: lost");
    }

    [Fact]
    public async Task NotStartedInTime_IsCancelledInTheBackendAndRequeued_WithoutACharge()
    {
        var rec = new ScriptedReconciler();
        var backend = new TestBackend { CancelSilently = true };
        await using var s = await StartAsync(rec, backend: backend);
        var id = await SubmitAsync(s);
        rec.Next = _ => Pass(D(DiscrepancyKinds.NotStarted, id, 0, $"test-{id}", $"gpuc-{id} pinned to node-1 is still PENDING (Resources) after 400 s"));

        await Service(s).RunOnceAsync(default);

        backend.Cancelled.ShouldContain(id);
        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("attempt").GetInt32() == 1, "requeued");
        await using var db = s.Factory.Create();
        (await db.Ledger.CountAsync(l => l.JobId == id)).ShouldBe(0);
        (await db.Discrepancies.SingleAsync()).Action.ShouldNotBeNull().ShouldContain("requeued");
    }

    [Fact]
    public async Task NotStartedInTime_AfterTheBackendStartedIt_IsLeftAlone()
    {
        var rec = new ScriptedReconciler();
        await using var s = await StartAsync(rec);
        var id = await SubmitAsync(s);
        s.Backend.Replay(new BackendEvent(BackendEventKind.Started, id, DateTimeOffset.UtcNow));
        await ServerHarness.EventuallyAsync(async () =>
        {
            await Service(s).RunOnceAsync(default);
            return rec.LastExpected.Any(e => e.JobId == id && e.StartedInBackend);
        }, "start taken in");
        rec.Next = _ => Pass(D(DiscrepancyKinds.NotStarted, id, 0, $"test-{id}"));

        await Service(s).RunOnceAsync(default);

        s.Backend.Cancelled.ShouldNotContain(id);
        (await s.JobAsync(id)).GetProperty("attempt").GetInt32().ShouldBe(0);
    }

    [Fact]
    public async Task Stray_IsCancelledOnlyWhenTheDatabaseProvesItALeftover_AndOnTheSecondSighting()
    {
        var rec = new ScriptedReconciler();
        await using var s = await StartAsync(rec);
        var done = await SubmitAsync(s);
        s.Backend.Finish(done);
        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(done)).GetProperty("state").GetString() == "finished", "finish");
        var running = await SubmitAsync(s);
        rec.Next = _ => Pass(
            D(DiscrepancyKinds.Unknown, done, 0, "501"),        // ours, and ended in GpuCommons: a leftover
            D(DiscrepancyKinds.Unknown, running, 0, "502"),     // ours and still running at this attempt: never
            D(DiscrepancyKinds.Unknown, 123_456_789, 0, "503")); // not in the database: a person's, or another server's

        await Service(s).RunOnceAsync(default);
        rec.Cancelled.ShouldBeEmpty();
        await Service(s).RunOnceAsync(default);

        rec.Cancelled.Select(c => c.ExternalId).ShouldBe(["501"]);
        await Service(s).RunOnceAsync(default);
        rec.Cancelled.Count.ShouldBe(1, "acted on once");
        var report = await ReportAsync(s);
        report.GetProperty("items").EnumerateArray().Single(i => i.GetProperty("externalId").GetString() == "501")
            .GetProperty("action").GetString()!.ShouldContain("finished");
    }

    [Fact]
    public async Task FailingPass_IsShown_AndTheNextPassRuns()
    {
        var rec = new ScriptedReconciler { Next = _ => throw new InvalidOperationException("sacct: unexpected header") };
        await using var s = await StartAsync(rec);

        var failed = await Service(s).RunOnceAsync(default);
        failed.Reachable.ShouldBeFalse();
        var report = await ReportAsync(s);
        report.GetProperty("items").EnumerateArray().Single().GetProperty("kind").GetString().ShouldBe("pass_failed");
        report.GetProperty("reconciliation").GetProperty("problem").GetString()!.ShouldContain("unexpected header");

        rec.Next = _ => Pass();
        (await Service(s).RunOnceAsync(default)).Reachable.ShouldBeTrue();
        (await ReportAsync(s)).GetProperty("open").GetInt32().ShouldBe(0);
    }

    [Fact]
    public async Task Charge_RunsFromTheBackendsStart_ToItsEnd()
    {
        await using var s = await StartAsync(new ScriptedReconciler());
        var id = await SubmitAsync(s, 2);
        // The backend (Slurm) started it later than the engine placed it, and says when it ended.
        var start = DateTimeOffset.UtcNow.AddMinutes(7);
        start = new DateTimeOffset(start.Year, start.Month, start.Day, start.Hour, start.Minute, start.Second, TimeSpan.Zero);
        s.Backend.Replay(new BackendEvent(BackendEventKind.Started, id, start));
        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("startTime").GetDateTimeOffset() == start, "start taken in");
        s.Backend.Finish(id, 0, start.AddSeconds(1800));

        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("state").GetString() == "finished", "finish");
        await using var db = s.Factory.Create();
        var l = await db.Ledger.SingleAsync(x => x.JobId == id);
        l.Seconds.ShouldBe(1800);
        l.GpuHours.ShouldBe(1.0, 1e-9);
        l.Amount.ShouldBe(1000m);
        (await s.JobAsync(id)).GetProperty("endTime").GetDateTimeOffset().ShouldBe(start.AddSeconds(1800));
    }
}
