using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace GpuCommons.Server.Tests;

/// <summary>Quotas set through the API: enforced under concurrent submissions, changed live, kept across a restart.</summary>
public sealed class QuotaTests
{
    private static async Task<long> SubmitAsync(HttpClient c, object job)
    {
        var r = await c.PostAsJsonAsync("/api/jobs", job);
        r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    private static async Task<string> PartitionAsync(ServerHarness s) =>
        (await s.Client("admin").GetFromJsonAsync<JsonElement>("/api/partitions"))[0].GetProperty("name").GetString()!;

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task ConcurrentSubmissions_NeverExceedTheQuota_AndAQuotaChangeTakesEffectAndSurvivesRestart(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend(nodes: 4);
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var admin = s.Client("admin");
            var partition = await PartitionAsync(s);
            var created = await admin.PostAsJsonAsync("/api/projects", new
            {
                name = "capped",
                organisation = "Startup 001",
                pi = "sam",
                quotas = new[] { new { partition, nominalGpus = 3.0, borrowingLimitGpus = 0.0 } },
            });
            created.StatusCode.ShouldBe(HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
            (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("quotas")[0].GetProperty("nominalGpus").GetDouble().ShouldBe(3);
            (await admin.PostAsJsonAsync("/api/allocations", new { id = "capped-1", project = "capped", gpuHours = 1000.0 })).StatusCode.ShouldBe(HttpStatusCode.Created);

            var sam = s.Client("sam");
            var ids = await Task.WhenAll(Enumerable.Range(0, 48).Select(_ => SubmitAsync(sam, new { project = "capped", gpus = 1, walltime = "1h", command = new[] { "x" } })));
            await Task.Delay(1000);

            // 32 GPUs are free, the quota is 3 with no borrowing.
            backend.Running.Keys.Count(ids.Contains).ShouldBe(3);
            var waiting = ids.First(id => !backend.Running.ContainsKey(id));
            (await s.JobAsync(waiting)).GetProperty("reason").GetString().ShouldBe("project_quota");

            // Raised to 5: two more start at once.
            var put = await admin.PutAsJsonAsync("/api/projects/capped/quotas", new { quotas = new[] { new { partition, nominalGpus = 5.0, borrowingLimitGpus = 0.0 } } });
            put.StatusCode.ShouldBe(HttpStatusCode.OK, await put.Content.ReadAsStringAsync());
            await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.Keys.Count(ids.Contains) == 5), "five running after the raise");

            // Lowered to 2: the five keep running, nothing more starts while they do.
            (await admin.PutAsJsonAsync("/api/projects/capped/quotas", new { quotas = new[] { new { partition, nominalGpus = 2.0, borrowingLimitGpus = 0.0 } } })).StatusCode.ShouldBe(HttpStatusCode.OK);
            var running = backend.Running.Keys.Where(ids.Contains).ToList();
            backend.Finish(running[0]);
            await Task.Delay(500);
            backend.Running.Keys.Count(ids.Contains).ShouldBe(4);

            var events = await admin.GetFromJsonAsync<JsonElement>("/api/events?kind=project.quotas");
            events.GetProperty("items").GetArrayLength().ShouldBe(2);

            // A restart keeps the quota: still nothing more starts.
            await s.StopAsync();
            s = await ServerHarness.StartAsync(db, backend);
            await Task.Delay(500);
            backend.Running.Keys.Count(ids.Contains).ShouldBe(4);
            var project = await s.Client("admin").GetFromJsonAsync<JsonElement>("/api/projects/capped");
            project.GetProperty("quotas")[0].GetProperty("nominalGpus").GetDouble().ShouldBe(2);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("""{"quotas":[{"nominalGpus":1}]}""", "quotas[0].partition")]
    [InlineData("""{"quotas":[{"partition":"nope","nominalGpus":1}]}""", "quotas[0].partition")]
    [InlineData("""{"quotas":[{"partition":"PART"}]}""", "quotas[0].nominalGpus")]
    [InlineData("""{"quotas":[{"partition":"PART","nominalGpus":-1}]}""", "quotas[0].nominalGpus")]
    [InlineData("""{"quotas":[{"partition":"PART","nominalGpus":2,"lendingLimitGpus":3}]}""", "quotas[0].lendingLimitGpus")]
    [InlineData("""{"quotas":[{"partition":"PART","nominalGpus":2},{"partition":"PART","nominalGpus":1}]}""", "quotas[1].partition")]
    [InlineData("""{"quotas":[{"partition":"PART","nominalGpus":"lots"}]}""", "quotas[0].nominalGpus")]
    [InlineData("""{}""", "quotas")]
    public async Task BadQuotas_Are400NamingTheField(string body, string field)
    {
        await using var s = await ServerHarness.StartAsync();
        var partition = await PartitionAsync(s);
        var r = await s.Client("admin").PutAsync("/api/organisations/Startup 001/quotas", new StringContent(body.Replace("PART", partition), System.Text.Encoding.UTF8, "application/json"));
        r.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        var problem = await r.Content.ReadFromJsonAsync<JsonElement>();
        problem.GetProperty("field").GetString().ShouldBe(field, problem.ToString());
    }

    [Fact]
    public async Task OnlyAdminsSetQuotas_OthersLearnNothing()
    {
        await using var s = await ServerHarness.StartAsync();
        var partition = await PartitionAsync(s);
        var body = new { quotas = new[] { new { partition, nominalGpus = 1.0 } } };
        (await s.Client("oscar").PutAsJsonAsync("/api/projects/demo/quotas", body)).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await s.Client("bob").PutAsJsonAsync("/api/projects/demo/quotas", body)).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await s.Client("sam").PutAsJsonAsync("/api/projects/demo/quotas", body)).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await s.Client("bob").PutAsJsonAsync("/api/organisations/Startup 001/quotas", body)).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await s.Client("bob").PutAsJsonAsync("/api/organisations/University 01/quotas", body)).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await s.Client("admin").PutAsJsonAsync("/api/projects/nope/quotas", body)).StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }
}
