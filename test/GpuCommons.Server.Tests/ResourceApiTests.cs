using System.Net;
using System.Text;
using System.Text.Json;
using Shouldly;
using Xunit;

namespace GpuCommons.Server.Tests;

/// <summary>Cores, memory, GPU models and features through the API, the database and the backend.</summary>
public sealed class ResourceApiTests : IAsyncLifetime
{
    private ServerHarness _s = null!;

    public async Task InitializeAsync() =>
        _s = await ServerHarness.StartAsync(backend: new TestBackend(2, 8) { NodeResources = (64, 524_288, ["ib"]) });

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Submit_WithResources_StoresThem_AndTheBackendGetsThePlacedCoresAndMemory()
    {
        var r = await _s.Client("bob").PostAsync("/api/jobs", Json("""
            {"project":"demo","gpus":2,"walltime":"1h","command":["x"],"cpusPerGpu":6,"memPerGpu":"16G","gpuModels":["TEST"],"constraint":"ib"}
            """));
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(HttpStatusCode.Created, text);
        var job = JsonDocument.Parse(text).RootElement;
        job.GetProperty("cpusPerGpu").GetInt32().ShouldBe(6);
        job.GetProperty("memoryMiBPerGpu").GetInt64().ShouldBe(16384);
        job.GetProperty("gpuModels")[0].GetString().ShouldBe("TEST");
        job.GetProperty("features")[0].GetString().ShouldBe("ib");
        var id = job.GetProperty("id").GetInt64();

        await ServerHarness.EventuallyAsync(() => Task.FromResult(_s.Backend.Running.ContainsKey(id)), "the job starts");
        var node = _s.Backend.Running[id].Nodes.ShouldHaveSingleItem();
        (node.Cpus, node.MemoryMiB).ShouldBe((12, 32768L));

        // A GPU-only job gets the partition's share: 64 cores / 8 GPUs and 512 GiB / 8 per GPU.
        var plain = JsonDocument.Parse(await (await _s.Client("bob").PostAsync("/api/jobs", Json("""{"project":"demo","gpus":0.5,"walltime":"1h","command":["x"]}"""))).Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(() => Task.FromResult(_s.Backend.Running.ContainsKey(plain)), "the share starts");
        var share = _s.Backend.Running[plain].Nodes.ShouldHaveSingleItem();
        (share.Cpus, share.MemoryMiB).ShouldBe((4, 32768L));
    }

    [Fact]
    public async Task AJobWhoseGpusFitButNotItsCores_SaysCpus()
    {
        // Two nodes of 8 GPUs and 64 cores: two jobs of 60 cores take one GPU of each, leaving 14 GPUs and 4 cores a
        // node. The first job of 8 cores holds the reservation; the next one says why it waits.
        async Task<long> Submit(int cpus) => JsonDocument.Parse(await (await _s.Client("bob").PostAsync("/api/jobs", Json(
            $$"""{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"cpusPerNode":{{cpus}}}"""))).Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetInt64();
        var big = new[] { await Submit(60), await Submit(60) };
        await ServerHarness.EventuallyAsync(() => Task.FromResult(big.All(_s.Backend.Running.ContainsKey)), "both 60-core jobs start");
        var first = await Submit(8);
        var second = await Submit(8);
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(second)).GetProperty("reason").GetString() == "cpus", "the second 8-core job says cpus");
        var job = await _s.JobAsync(second);
        job.GetProperty("state").GetString().ShouldBe("pending");
        job.GetProperty("reasonText").GetString()!.ShouldContain("CPU cores");
        (await _s.JobAsync(first)).GetProperty("reason").GetString().ShouldBe("reserved");
    }

    [Theory]
    [InlineData("""{"cpusPerGpu":2,"cpusPerNode":4}""", "cpusPerGpu")]
    [InlineData("""{"memPerGpu":"lots"}""", "memPerGpu")]
    [InlineData("""{"memPerNode":"-4G"}""", "memPerNode")]
    [InlineData("""{"cpusPerGpu":0}""", "cpusPerGpu")]
    [InlineData("""{"gpuModels":["H200"]}""", "gpuModels")]
    [InlineData("""{"gpuModels":["a b"]}""", "gpuModels")]
    [InlineData("""{"constraint":"ib|nvme"}""", "constraint")]
    [InlineData("""{"constraint":"nvme"}""", "constraint")]
    [InlineData("""{"cpusPerGpu":40}""", "cpusPerGpu")]
    [InlineData("""{"memPerNode":"1T"}""", "memPerNode")]
    public async Task BadOrImpossibleResources_Are400NamingTheField_AndStoreNothing(string extra, string field)
    {
        var body = """{"project":"demo","gpus":2,"walltime":"1h","command":["x"],""" + extra[1..];
        var r = await _s.Client("bob").PostAsync("/api/jobs", Json(body));
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(HttpStatusCode.BadRequest, text);
        JsonDocument.Parse(text).RootElement.GetProperty("field").GetString().ShouldBe(field, text);
        (await _s.CountJobsAsync()).ShouldBe(0);
    }
}
