using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace GpuCommons.Server.Tests;

/// <summary>Allocation alerts reach the configured webhook as JSON.</summary>
public sealed class WebhookTests
{
    [Fact]
    public async Task AllocationAlerts_ArePostedToTheWebhook()
    {
        var port = ServeProcess.FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/hook/");
        listener.Start();
        var received = new ConcurrentQueue<string>();
        _ = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                try
                {
                    var ctx = await listener.GetContextAsync();
                    using var r = new StreamReader(ctx.Request.InputStream);
                    received.Enqueue(await r.ReadToEndAsync());
                    ctx.Response.StatusCode = 204;
                    ctx.Response.Close();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }
            }
        });

        await using var s = await ServerHarness.StartAsync(configure: o => o.WebhookUrl = $"http://127.0.0.1:{port}/hook/");
        var admin = s.Client("admin");
        (await admin.PostAsJsonAsync("/api/projects", new { name = "hooked", organisation = "Startup 001", pi = "sam" })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await admin.PostAsJsonAsync("/api/allocations", new { id = "hooked-1", project = "hooked", gpuHours = 1.0 })).StatusCode.ShouldBe(HttpStatusCode.Created);
        var sam = s.Client("sam");
        var id = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "hooked", gpus = 1, walltime = "1h", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(() => Task.FromResult(s.Backend.Running.ContainsKey(id)), "start");
        var start = (await s.JobAsync(id)).GetProperty("startTime").GetDateTimeOffset();
        s.Backend.Finish(id, 0, start.AddMinutes(54)); // 0.9 GPU-hours of 1: past 50% and 80%
        await ServerHarness.EventuallyAsync(() => Task.FromResult(received.Any(b => b.Contains("80% used", StringComparison.Ordinal))), "the 80% alert at the webhook", 20_000);
        var all = string.Join("\n", received);
        all.ShouldContain("allocation/hooked-1");
        all.ShouldContain("50% used");
        all.ShouldNotContain("100% used");
        listener.Stop();
    }

    [Fact]
    public async Task FailingReceiver_IsRetried_AlertsArriveOnce_AndAfterARestart()
    {
        var port = ServeProcess.FreePort();
        using var listener = new HttpListener();
        listener.Prefixes.Add($"http://127.0.0.1:{port}/hook/");
        listener.Start();
        var failures = 0;
        var failNext = 3;
        var received = new ConcurrentQueue<JsonElement>();
        _ = Task.Run(async () =>
        {
            while (listener.IsListening)
            {
                try
                {
                    var ctx = await listener.GetContextAsync();
                    using var r = new StreamReader(ctx.Request.InputStream);
                    var body = await r.ReadToEndAsync();
                    if (Volatile.Read(ref failNext) > 0)
                    {
                        Interlocked.Decrement(ref failNext);
                        Interlocked.Increment(ref failures);
                        ctx.Response.StatusCode = 503;
                    }
                    else
                    {
                        foreach (var e in JsonDocument.Parse(body).RootElement.EnumerateArray())
                        {
                            received.Enqueue(e.Clone());
                        }

                        ctx.Response.StatusCode = 204;
                    }

                    ctx.Response.Close();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }
            }
        });

        var db = TestDatabase.Sqlite();
        void Configure(ServerOptions o)
        {
            o.WebhookUrl = $"http://127.0.0.1:{port}/hook/";
            o.WebhookRetryMin = TimeSpan.FromMilliseconds(100);
            o.WebhookRetryMax = TimeSpan.FromMilliseconds(400);
        }

        var s = await ServerHarness.StartAsync(db, configure: Configure);
        try
        {
            var admin = s.Client("admin");
            (await admin.PostAsJsonAsync("/api/projects", new { name = "hooked", organisation = "Startup 001", pi = "sam" })).StatusCode.ShouldBe(HttpStatusCode.Created);
            (await admin.PostAsJsonAsync("/api/allocations", new { id = "hooked-1", project = "hooked", gpuHours = 1.0 })).StatusCode.ShouldBe(HttpStatusCode.Created);
            var sam = s.Client("sam");
            var id = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "hooked", gpus = 1, walltime = "1h", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            await ServerHarness.EventuallyAsync(() => Task.FromResult(s.Backend.Running.ContainsKey(id)), "start");
            var start = (await s.JobAsync(id)).GetProperty("startTime").GetDateTimeOffset();
            s.Backend.Finish(id, 0, start.AddMinutes(36)); // 0.6 GPU-hours of 1: past 50%
            await ServerHarness.EventuallyAsync(() => Task.FromResult(received.Any(e => e.GetProperty("detail").GetString()!.Contains("50% used", StringComparison.Ordinal))), "the 50% alert after three failures", 20_000);
            failures.ShouldBe(3);

            // The receiver goes down; an alert raised meanwhile is delivered by the restarted server.
            Volatile.Write(ref failNext, 1_000_000);
            var id2 = (await (await sam.PostAsJsonAsync("/api/jobs", new { project = "hooked", gpus = 1, walltime = "20m", command = new[] { "x" } })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            await ServerHarness.EventuallyAsync(() => Task.FromResult(s.Backend.Running.ContainsKey(id2)), "second start");
            var start2 = (await s.JobAsync(id2)).GetProperty("startTime").GetDateTimeOffset();
            s.Backend.Finish(id2, 0, start2.AddMinutes(15)); // 0.85 of 1: past 80%
            await ServerHarness.EventuallyAsync(() => Task.FromResult(Volatile.Read(ref failures) > 3), "a failed delivery of the 80% alert", 20_000);
            await s.StopAsync();
            Volatile.Write(ref failNext, 0);
            s = await ServerHarness.StartAsync(db, s.Backend, Configure);
            await ServerHarness.EventuallyAsync(() => Task.FromResult(received.Any(e => e.GetProperty("detail").GetString()!.Contains("80% used", StringComparison.Ordinal))), "the 80% alert after the restart", 20_000);
            await Task.Delay(500);
            received.Select(e => e.GetProperty("id").GetInt64()).ShouldBeUnique();
            received.Count.ShouldBe(2);
        }
        finally
        {
            await s.DisposeAsync();
            listener.Stop();
        }
    }
}
