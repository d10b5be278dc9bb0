using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace GpuCommons.Server.Tests;

/// <summary>The job list as <c>gpuc queue</c> reads it: why each pending job waits, newest first on request, errors said once.</summary>
public sealed class JobListTests : IAsyncLifetime
{
    private ServerHarness _s = null!;

    public async Task InitializeAsync() => _s = await ServerHarness.StartAsync();

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private static object Job(double gpus) => new { project = "demo", gpus, walltime = "1h", command = new[] { "sleep", "100" } };

    [Fact]
    public async Task List_CarriesThePendingReason_AndOrdersNewestFirstOnRequest()
    {
        var c = _s.Client("bob");
        var first = (await (await c.PostAsJsonAsync("/api/jobs", Job(8))).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(first)).GetProperty("state").GetString() == "running", "first start");
        var second = (await (await c.PostAsJsonAsync("/api/jobs", Job(8))).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () =>
        {
            var page = await c.GetFromJsonAsync<JsonElement>("/api/jobs?state=pending,running");
            var pending = page.GetProperty("items").EnumerateArray().Single(j => j.GetProperty("id").GetInt64() == second);
            return pending.TryGetProperty("reason", out var r) && r.GetString() is { } code && code != "new" && pending.TryGetProperty("reasonText", out _);
        }, "the pending job's reason in the list");
        var running = (await c.GetFromJsonAsync<JsonElement>("/api/jobs?state=running")).GetProperty("items").EnumerateArray().Single();
        running.TryGetProperty("reason", out _).ShouldBeFalse("a running job waits for nothing");

        var desc = (await c.GetFromJsonAsync<JsonElement>("/api/jobs?order=desc&limit=1")).GetProperty("items").EnumerateArray().Single();
        desc.GetProperty("id").GetInt64().ShouldBe(second);
        var next = (await c.GetFromJsonAsync<JsonElement>($"/api/jobs?order=desc&after={second}")).GetProperty("items").EnumerateArray().Select(j => j.GetProperty("id").GetInt64());
        next.ShouldBe([first]);

        var bad = await c.GetAsync("/api/jobs?order=sideways");
        bad.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString().ShouldBe("order");
    }

    [Fact]
    public async Task AFieldError_NamesTheFieldOnce()
    {
        var r = await _s.Client("bob").PostAsJsonAsync("/api/jobs", Job(16_000));
        r.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        var detail = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("detail").GetString()!;
        detail.ShouldStartWith("gpus: ");
        detail.ShouldNotStartWith("gpus: gpus:");
        detail.ShouldContain("GPUs need"); // the engine's message, which names its field itself
    }
}
