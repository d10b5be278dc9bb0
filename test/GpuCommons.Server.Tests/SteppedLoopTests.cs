using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Time.Testing;
using Shouldly;
using Xunit;

namespace GpuCommons.Server.Tests;

/// <summary>
/// The server on a fake clock, stepped one loop pass at a time with <c>RunOnceAsync</c>: what the loop does at each
/// instant, exactly, without waiting on the real clock. Starts are dispatched off the loop; their results come back as
/// commands, and a stepped pass waits for them.
/// </summary>
public sealed class SteppedLoopTests
{
    private static async Task<long> SubmitAsync(HttpClient c, object job)
    {
        var r = await c.PostAsJsonAsync("/api/jobs", job);
        r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    private static async Task<(ServerHarness Server, FakeTimeProvider Time, TestBackend Backend)> StartAsync(Action<ServerOptions>? configure = null)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 3, 2, 9, 0, 0, TimeSpan.Zero));
        var backend = new TestBackend();
        var s = await ServerHarness.StartAsync(backend: backend, configure: o =>
        {
            o.FullCycleInterval = TimeSpan.FromSeconds(2);
            o.PollInterval = TimeSpan.FromMilliseconds(100);
            configure?.Invoke(o);
        }, time: time);
        return (s, time, backend);
    }

    [Fact]
    public async Task InfrastructureFailures_BackOffExactly_DoublingFromTheMinimum_ThenFail()
    {
        var (s, time, backend) = await StartAsync(o =>
        {
            o.StartRetryMin = TimeSpan.FromSeconds(2);
            o.MaxStartTries = 3;
        });
        await using var _ = s;
        backend.FailStarts = true;
        var id = await SubmitAsync(s.Client("bob"), ApiTests.Job(8));
        await s.Coordinator.RunOnceAsync();

        // Try 1 failed: held out of the queue for 2 s.
        var job = await s.JobAsync(id);
        job.GetProperty("state").GetString().ShouldBe("pending");
        job.GetProperty("reason").GetString().ShouldBe("StartFailed");
        job.GetProperty("reasonText").GetString()!.ShouldContain("failed 1 of 3 times");
        s.Coordinator.GetStartRetry(id)!.NextTry.ShouldBe(time.GetUtcNow() + TimeSpan.FromSeconds(2));

        // 1.9 s later it is still held; at 2 s it is tried again and fails: held for 4 s.
        time.Advance(TimeSpan.FromMilliseconds(1900));
        await s.Coordinator.RunOnceAsync();
        s.Coordinator.GetStartRetry(id)!.Failures.ShouldBe(1);
        time.Advance(TimeSpan.FromMilliseconds(100));
        await s.Coordinator.RunOnceAsync();
        await s.Coordinator.RunOnceAsync();
        s.Coordinator.GetStartRetry(id)!.Failures.ShouldBe(2);
        s.Coordinator.GetStartRetry(id)!.NextTry.ShouldBe(time.GetUtcNow() + TimeSpan.FromSeconds(4));
        (await s.JobAsync(id)).GetProperty("reasonText").GetString()!.ShouldContain("failed 2 of 3 times");

        // The third failure is the last: failed, no GPU held, nothing charged.
        time.Advance(TimeSpan.FromSeconds(4));
        await s.Coordinator.RunOnceAsync();
        await s.Coordinator.RunOnceAsync();
        job = await s.JobAsync(id);
        job.GetProperty("state").GetString().ShouldBe("failed");
        job.GetProperty("outcome").GetString()!.ShouldContain("3 tries failed");
        s.Coordinator.GetStartRetry(id).ShouldBeNull();
        s.Coordinator.View.RunningCount.ShouldBe(0);
        await using var db = s.Factory.Create();
        (await db.Ledger.CountAsync()).ShouldBe(0);
        (await db.Events.CountAsync(e => e.Kind == "job.start_failed" && e.Subject == $"job/{id}")).ShouldBe(2);
    }

    [Fact]
    public async Task AJobRunsAndEnds_AtTheBackendsTimes_AndIsChargedOnce()
    {
        var (s, time, backend) = await StartAsync();
        await using var _ = s;
        var id = await SubmitAsync(s.Client("bob"), ApiTests.Job(2, walltime: "1h"));
        await s.Coordinator.RunOnceAsync();
        backend.Running.ContainsKey(id).ShouldBeTrue();
        var job = await s.JobAsync(id);
        job.GetProperty("state").GetString().ShouldBe("running");
        var started = job.GetProperty("startTime").GetDateTimeOffset();
        started.ShouldBe(time.GetUtcNow());

        // Ten minutes later its process exits; the next pass records the end and the one ledger entry.
        time.Advance(TimeSpan.FromMinutes(10));
        backend.Finish(id, 0, time.GetUtcNow());
        await s.Coordinator.RunOnceAsync();
        job = await s.JobAsync(id);
        job.GetProperty("state").GetString().ShouldBe("finished");
        job.GetProperty("endTime").GetDateTimeOffset().ShouldBe(time.GetUtcNow());
        await using var db = s.Factory.Create();
        var entry = await db.Ledger.SingleAsync(l => l.JobId == id);
        entry.GpuHours.ShouldBe(2 * 10 / 60.0, 1e-9);

        // The backend says it again: nothing more is charged.
        backend.Replay(new GpuCommons.Backends.BackendEvent(GpuCommons.Backends.BackendEventKind.Finished, id, time.GetUtcNow(), 0));
        await s.Coordinator.RunOnceAsync();
        (await db.Ledger.CountAsync(l => l.JobId == id)).ShouldBe(1);
    }

    [Fact]
    public async Task ACancelWhileTheStartIsInFlight_StopsTheRunOnceTheBackendHasIt()
    {
        var (s, _, backend) = await StartAsync();
        await using var __ = s;
        var gate = new TaskCompletionSource();
        backend.BeforeStart = () => gate.Task;
        var id = await SubmitAsync(s.Client("bob"), ApiTests.Job(1));
        (await s.Client("bob").PostAsync($"/api/jobs/{id}/cancel", null)).EnsureSuccessStatusCode();
        backend.Cancelled.ShouldNotContain(id);

        gate.SetResult();
        await s.Coordinator.RunOnceAsync();
        await s.Coordinator.RunOnceAsync();
        backend.Cancelled.ShouldContain(id);
        await s.Coordinator.RunOnceAsync();
        (await s.JobAsync(id)).GetProperty("state").GetString().ShouldBe("cancelled");
    }
}
