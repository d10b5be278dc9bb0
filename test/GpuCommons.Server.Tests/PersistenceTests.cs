using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Backends;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Tests;

/// <summary>Durability, restart and accounting, on SQLite and (when TEST_PG_CONNECTION is set, or on CI) PostgreSQL.</summary>
public sealed class PersistenceTests
{
    private static async Task<long> SubmitAsync(HttpClient c, object job, string? key = null)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(job) };
        if (key is not null)
        {
            req.Headers.Add("Idempotency-Key", key);
        }

        var r = await c.SendAsync(req);
        r.IsSuccessStatusCode.ShouldBeTrue(await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Restart_RebuildsQueueRunningJobsAndLedger_NothingChargedTwice(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend();
        var s = await ServerHarness.StartAsync(db, backend);
        var ids = new List<long>();
        try
        {
            var bob = s.Client("bob");
            for (var i = 0; i < 3; i++)
            {
                ids.Add(await SubmitAsync(bob, ApiTests.Job(4)));
            }

            await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.Count == 2), "two starts");
            var first = ids.First(backend.Running.ContainsKey);
            backend.Finish(first);
            await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(first)).GetProperty("state").GetString() == "finished", "finish");
            await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.Count == 2), "third start");
            await s.StopAsync();

            // A new server over the same database and the same (still running) backend.
            s = await ServerHarness.StartAsync(db, backend);
            (await s.JobAsync(first)).GetProperty("state").GetString().ShouldBe("finished");
            foreach (var id in ids.Where(i => i != first))
            {
                (await s.JobAsync(id)).GetProperty("state").GetString().ShouldBe("running");
            }

            backend.Starts.Values.ShouldAllBe(v => v == 1);

            // The backend repeats an end it already reported: no second charge.
            backend.Replay(new BackendEvent(BackendEventKind.Finished, first, DateTimeOffset.UtcNow, 0));
            foreach (var id in ids.Where(i => i != first))
            {
                backend.Finish(id);
            }

            await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(ids[^1])).GetProperty("state").GetString() == "finished", "all finish");
            await using var ctx = s.Factory.Create();
            var ledger = await ctx.Ledger.ToListAsync();
            ledger.Select(l => l.JobId).OrderBy(x => x).ShouldBe(ids.OrderBy(x => x));
            var usage = await s.Client("admin").GetFromJsonAsync<List<GpuCommons.Contracts.UsageRow>>("/api/usage?by=allocation");
            usage!.Single(u => u.Key == "demo-2026").SpentGpuHours.ShouldBe(Math.Round(ledger.Sum(l => l.GpuHours), 6), 1e-6);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Restart_LostJob_IsChargedOnce_AndRequeuedOnlyIfRequeueable(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend();
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var bob = s.Client("bob");
            var again = await SubmitAsync(bob, ApiTests.Job(1));
            var once = await SubmitAsync(bob, new { project = "demo", gpus = 1, walltime = "1h", requeueable = false, command = new[] { "x" } });
            await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(again) && backend.Running.ContainsKey(once)), "start");
            await s.StopAsync();
            backend.LoseOnReattach = true;
            s = await ServerHarness.StartAsync(db, backend);
            backend.LoseOnReattach = false;

            // Not requeueable: failed for good, never started again.
            var job = await s.JobAsync(once);
            job.GetProperty("state").GetString().ShouldBe("failed");
            job.GetProperty("outcome").GetString()!.ShouldContain("lost");
            await Task.Delay(300);
            backend.Starts[once].ShouldBe(1);

            // Requeueable: its lost run is charged, and it runs again as its next attempt.
            await ServerHarness.EventuallyAsync(async () =>
            {
                var j = await s.JobAsync(again);
                return j.GetProperty("state").GetString() == "running" && j.GetProperty("attempt").GetInt32() == 1;
            }, "the requeued job runs as attempt 1");
            (await s.JobAsync(again)).GetProperty("outcome").GetString()!.ShouldContain("lost");
            backend.Running[again].Attempt.ShouldBe(1);
            await using var ctx = s.Factory.Create();
            (await ctx.Ledger.CountAsync(l => l.JobId == once)).ShouldBe(1);
            (await ctx.Ledger.Where(l => l.JobId == again).Select(l => l.Attempt).ToListAsync()).ShouldBe([0]);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Takeover_AStartHandedToAnotherMachinesBackend_WithNoHandleYet_IsLost_NeverStartedTwice(string provider)
    {
        // The old server wrote the starts and handed them to its backend, then died before any handle came back. A server
        // whose backend sees other runs (another machine's local backend) cannot ask whether they run: it must not start
        // them again. The one that may not be run twice fails as lost; the requeueable one runs again as its next attempt.
        var db = TestDatabase.For(provider);
        var old = new TestBackend { RunScope = "local:machine-a" };
        var held = new TaskCompletionSource();
        old.BeforeStart = () => held.Task;
        var s = await ServerHarness.StartAsync(db, old);
        try
        {
            var bob = s.Client("bob");
            var once = await SubmitAsync(bob, new { project = "demo", gpus = 1, walltime = "1h", requeueable = false, command = new[] { "x" } });
            var again = await SubmitAsync(bob, ApiTests.Job(1));
            await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(once)).GetProperty("state").GetString() == "running"
                && (await s.JobAsync(again)).GetProperty("state").GetString() == "running", "both written as started");
            await s.StopAsync();

            var other = new TestBackend { RunScope = "local:machine-b" };
            s = await ServerHarness.StartAsync(db, other);
            var job = await s.JobAsync(once);
            job.GetProperty("state").GetString().ShouldBe("failed");
            job.GetProperty("outcome").GetString()!.ShouldContain("lost");
            await ServerHarness.EventuallyAsync(async () =>
            {
                var j = await s.JobAsync(again);
                return j.GetProperty("state").GetString() == "running" && j.GetProperty("attempt").GetInt32() == 1;
            }, "the requeued job runs as attempt 1");
            other.Starts.ContainsKey(once).ShouldBeFalse();
            other.Running[again].Attempt.ShouldBe(1);
            await using var ctx = s.Factory.Create();
            (await ctx.Ledger.CountAsync(l => l.JobId == once)).ShouldBe(1);
        }
        finally
        {
            held.TrySetResult();
            await s.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Restart_AStartWithNoHandleYet_OnTheSameBackend_IsAskedAgain_AndRunsOnce(string provider)
    {
        // The same machine's backend (the same scope) answers for its runs: starting is idempotent by job id, so the
        // restarted server asks it again and the job runs, once.
        var db = TestDatabase.For(provider);
        var backend = new TestBackend { RunScope = "local:machine-a" };
        var held = new TaskCompletionSource();
        backend.BeforeStart = () => held.Task;
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var once = await SubmitAsync(s.Client("bob"), new { project = "demo", gpus = 1, walltime = "1h", requeueable = false, command = new[] { "x" } });
            await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(once)).GetProperty("state").GetString() == "running", "written as started");
            await s.StopAsync();

            backend.BeforeStart = null;
            s = await ServerHarness.StartAsync(db, backend);
            var job = await s.JobAsync(once);
            job.GetProperty("state").GetString().ShouldBe("running");
            job.GetProperty("attempt").GetInt32().ShouldBe(0);
            backend.Starts[once].ShouldBe(1);
        }
        finally
        {
            held.TrySetResult();
            await s.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task ConcurrentSubmissions_NeverExceedTheGrant(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend(nodes: 4);
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var admin = s.Client("admin");
            (await admin.PostAsJsonAsync("/api/projects", new { name = "race", organisation = "Startup 001", pi = "sam" })).StatusCode.ShouldBe(HttpStatusCode.Created);
            (await admin.PostAsJsonAsync("/api/allocations", new { id = "race-1", project = "race", gpuHours = 10.0 })).StatusCode.ShouldBe(HttpStatusCode.Created);
            var sam = s.Client("sam");
            var ids = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => SubmitAsync(sam, new { project = "race", gpus = 1, walltime = "1h", command = new[] { "x" } })));
            ids.Distinct().Count().ShouldBe(64);
            await Task.Delay(1000);
            // 10 GPU-hours cover ten 1-GPU × 1 h jobs at once, never more, although 32 GPUs are free.
            backend.Running.Keys.Count(ids.Contains).ShouldBe(10);
            var a = await sam.GetFromJsonAsync<GpuCommons.Contracts.AllocationDto>("/api/allocations/race-1");
            (a!.CommittedGpuHours + a.SpentGpuHours).ShouldBeLessThanOrEqualTo(10);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task FailedBackendStart_RollsBack_AndTheJobStaysPending(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend { FailStarts = true };
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var id = await SubmitAsync(s.Client("bob"), ApiTests.Job(8));
            await Task.Delay(300);
            backend.Starts.ContainsKey(id).ShouldBeFalse();
            await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("state").GetString() == "pending", "rolled back to pending");
            backend.FailStarts = false;
            await ServerHarness.EventuallyAsync(async () => backend.Starts.ContainsKey(id) && (await s.JobAsync(id)).GetProperty("state").GetString() == "running", "start once the backend works");
            backend.Starts[id].ShouldBe(1);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task IdempotencyKey_SurvivesARestart(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend();
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var id = await SubmitAsync(s.Client("bob"), ApiTests.Job(), "retry-me");
            await s.StopAsync();
            s = await ServerHarness.StartAsync(db, backend);
            (await SubmitAsync(s.Client("bob"), ApiTests.Job(), "retry-me")).ShouldBe(id);
            (await s.CountJobsAsync()).ShouldBe(1);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [PostgresFact]
    public async Task Postgres_MigratesAndServes()
    {
        await using var s = await ServerHarness.StartAsync(TestDatabase.Postgres());
        (await s.Client("bob").PostAsJsonAsync("/api/jobs", ApiTests.Job())).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await s.CountJobsAsync()).ShouldBe(1);
    }
}
