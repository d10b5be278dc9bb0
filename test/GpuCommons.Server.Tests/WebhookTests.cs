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
}
