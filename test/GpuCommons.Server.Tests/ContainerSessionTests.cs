using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Backends;
using GpuCommons.Server.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Tests;

public sealed class ContainerSessionTests
{
    private static async Task<long> SubmitAsync(ServerHarness h, object body, HttpStatusCode expected = HttpStatusCode.Created, string user = "alice")
    {
        var r = await h.Client(user).PostAsJsonAsync("/api/jobs", body);
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(expected, text);
        return expected == HttpStatusCode.Created ? JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64() : 0;
    }

    private static async Task<string> ErrorAsync(ServerHarness h, object body)
    {
        var r = await h.Client("alice").PostAsJsonAsync("/api/jobs", body);
        r.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        return await r.Content.ReadAsStringAsync();
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Submit_WithImageAndMounts_TheBackendGetsTheContainer_AndTheApiShowsIt(string provider)
    {
        await using var h = await ServerHarness.StartAsync(TestDatabase.For(provider));

        var id = await SubmitAsync(h, new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "python", "x.py" }, image = "localhost/gpuc-busybox:test", mounts = new[] { "/data/set:/data:ro", "/scratch/a:/work" }, workingDirectory = "/work" });

        await ServerHarness.EventuallyAsync(() => Task.FromResult(h.Backend.Running.ContainsKey(id)), "the job to start");
        var job = h.Backend.Running[id];
        job.Container.ShouldNotBeNull();
        job.Container.Image.ShouldBe("localhost/gpuc-busybox:test");
        job.Container.Mounts.ShouldBe([new ContainerMount("/data/set", "/data", true), new ContainerMount("/scratch/a", "/work", false)]);
        job.WorkingDirectory.ShouldBe("/work");
        var dto = await h.JobAsync(id);
        dto.GetProperty("image").GetString().ShouldBe("localhost/gpuc-busybox:test");
        dto.GetProperty("mounts").EnumerateArray().Select(m => m.GetString()).ShouldBe(["/data/set:/data:ro", "/scratch/a:/work"]);

        var plain = await SubmitAsync(h, new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "true" } });
        await ServerHarness.EventuallyAsync(() => Task.FromResult(h.Backend.Running.ContainsKey(plain)), "the plain job to start");
        h.Backend.Running[plain].Container.ShouldBeNull();
    }

    [Fact]
    public async Task Submit_ImageFromARegistryTheCenterDoesNotAllow_400NamingTheImage_AllowedOnesPass()
    {
        await using var h = await ServerHarness.StartAsync(configure: o => o.ContainerRegistries.Add("registry.example.org"));
        object Job(string image, string[]? mounts = null) => new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "true" }, image, mounts };

        (await ErrorAsync(h, Job("ubuntu:24.04"))).ShouldContain("image: registry 'docker.io' is not one this center allows (allowed: registry.example.org)");
        (await ErrorAsync(h, Job("evil.example.com/x/y:1"))).ShouldContain("registry 'evil.example.com'");
        (await ErrorAsync(h, Job("--privileged"))).ShouldContain("\"image\"");
        (await ErrorAsync(h, Job("Registry.example.org/UPPER:1"))).ShouldContain("is not an image reference");
        (await ErrorAsync(h, Job("localhost/x:1", ["relative:/x"]))).ShouldContain("mounts[0]: 'relative:/x' is not SOURCE:TARGET");
        (await ErrorAsync(h, Job("localhost/x:1", ["/a:/b:rx"]))).ShouldContain("mounts[0]");
        (await ErrorAsync(h, Job("localhost/x:1", ["/a,b:/b"]))).ShouldContain("mounts[0]");
        (await ErrorAsync(h, new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "true" }, mounts = new[] { "/a:/b" } })).ShouldContain("mounts: mounts need an image");
        (await h.CountJobsAsync()).ShouldBe(0);

        await SubmitAsync(h, Job("registry.example.org/team/torch:2.4"));
        await SubmitAsync(h, Job("oci-archive:/shared/images/torch.tar"));
        await SubmitAsync(h, Job("localhost/gpuc-busybox:test", ["/home/alice:/home/alice:rw"]));
    }

    [Fact]
    public async Task Submit_SameIdempotencyKeyWithAnotherImage_422()
    {
        await using var h = await ServerHarness.StartAsync();
        async Task<HttpStatusCode> Send(string image)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(new { project = "demo", gpus = 1, walltime = "10m", command = new[] { "true" }, image }) };
            req.Headers.Add("Idempotency-Key", "k-1");
            return (await h.Client("alice").SendAsync(req)).StatusCode;
        }

        (await Send("localhost/a:1")).ShouldBe(HttpStatusCode.Created);
        (await Send("localhost/a:1")).ShouldBe(HttpStatusCode.OK);
        ((int)await Send("localhost/b:1")).ShouldBe(422);
    }

    private static async Task<(long Id, BackendJob Job)> StartSessionAsync(ServerHarness h, string user = "alice")
    {
        var r = await h.Client(user).PostAsJsonAsync("/api/sessions", new { kind = "jupyter", project = "demo", gpus = 1, walltime = "1h" });
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(HttpStatusCode.Created, text);
        var id = JsonDocument.Parse(text).RootElement.GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(() => Task.FromResult(h.Backend.Running.ContainsKey(id)), "the session job to start");
        return (id, h.Backend.Running[id]);
    }

    private static async Task<HttpStatusCode> ReportAsync(ServerHarness h, long id, string secret, object body)
    {
        var c = h.Client(null);
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        return (await c.PostAsJsonAsync($"/api/sessions/{id}/ready", body)).StatusCode;
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Session_TheJobReportsOnceWithItsOwnSecret_OnlyItsOwnerSeesIt(string provider)
    {
        await using var h = await ServerHarness.StartAsync(TestDatabase.For(provider));
        var (id, job) = await StartSessionAsync(h);

        JupyterLauncher.IsLauncher(job.Command).ShouldBeTrue();
        var secret = job.Environment["GPUC_SESSION_SECRET"];
        secret.Length.ShouldBe(43);
        job.Environment["GPUC_SESSION_URL"].ShouldEndWith($"/api/sessions/{id}/ready");
        job.Environment["GPUC_SESSION_BIND"].ShouldBe("0.0.0.0"); // not the local backend: the node must be reachable
        var node = job.Nodes[0].Node;

        // The secret is derived at start, never stored.
        await using (var db = h.Factory.Create())
        {
            (await db.Jobs.SingleAsync(j => j.Id == id)).Environment.ShouldBeNull();
        }

        (await ReportAsync(h, id, "not-the-secret", new { host = node, port = 20000 })).ShouldBe(HttpStatusCode.NotFound);
        (await ReportAsync(h, id, h.Tokens["alice"], new { host = node, port = 20000 })).ShouldBe(HttpStatusCode.NotFound); // an API token is not the session's secret
        (await ReportAsync(h, id + 1000, secret, new { host = node, port = 20000 })).ShouldBe(HttpStatusCode.NotFound);
        (await ReportAsync(h, id, secret, new { host = "metadata.internal", port = 20000 })).ShouldBe(HttpStatusCode.BadRequest); // the proxy reaches the job's node only
        (await ReportAsync(h, id, secret, new { host = node, port = 22 })).ShouldBe(HttpStatusCode.BadRequest);
        (await ReportAsync(h, id, secret, new { host = node, port = 20000 })).ShouldBe(HttpStatusCode.NoContent);
        (await ReportAsync(h, id, secret, new { host = node, port = 20001 })).ShouldBe(HttpStatusCode.Conflict); // once per run

        var mine = await h.Client("alice").GetFromJsonAsync<JsonElement>($"/api/sessions/{id}");
        mine.GetProperty("ready").GetBoolean().ShouldBeTrue();
        mine.GetProperty("url").GetString().ShouldBe($"/sessions/{id}/");
        await using (var db = h.Factory.Create())
        {
            var row = await db.Sessions.SingleAsync(s => s.JobId == id);
            (row.Host, row.Port).ShouldBe((node, 20000));
            row.SecretHash.ShouldBe(SessionSecrets.Hash(secret));
            row.SecretHash!.ShouldNotContain(secret);
        }

        foreach (var other in new[] { "bob", "sam", "admin" })
        {
            (await h.Client(other).GetAsync($"/api/sessions/{id}")).StatusCode.ShouldBe(HttpStatusCode.NotFound, other);
            (await h.Client(other).DeleteAsync($"/api/sessions/{id}")).StatusCode.ShouldBe(HttpStatusCode.NotFound, other);
            (await h.Client(other).GetFromJsonAsync<JsonElement>("/api/sessions")).GetArrayLength().ShouldBe(0, other);
        }

        (await h.Client("alice").DeleteAsync($"/api/sessions/{id}")).StatusCode.ShouldBe(HttpStatusCode.Accepted);
        await ServerHarness.EventuallyAsync(() => Task.FromResult(h.Backend.Cancelled.Contains(id)), "the session's job to be cancelled");
    }

    [Fact]
    public async Task Session_BadRequests_400NamingTheField()
    {
        await using var h = await ServerHarness.StartAsync();
        async Task<string> Bad(object body)
        {
            var r = await h.Client("alice").PostAsJsonAsync("/api/sessions", body);
            r.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
            return await r.Content.ReadAsStringAsync();
        }

        (await Bad(new { kind = "rstudio", project = "demo", gpus = 1, walltime = "1h" })).ShouldContain("kind: must be jupyter");
        (await Bad(new { project = "demo", gpus = 1 })).ShouldContain("walltime: is required");
        (await Bad(new { project = "startup-demo", gpus = 1, walltime = "1h" })).ShouldContain("project");
        (await Bad(new { project = "demo", gpus = 1, walltime = "1h", image = "ubuntu:24.04" })).ShouldContain("image: registry 'docker.io'");
        (await h.CountJobsAsync()).ShouldBe(0);
    }

    [Fact]
    public async Task IdleService_StopsASessionWhoseKernelsAreIdle_KeepsABusyOne_AndAsksWithTheSessionsToken()
    {
        await using var h = await ServerHarness.StartAsync(configure: o =>
        {
            o.SessionIdleTimeout = TimeSpan.FromMinutes(30);
            o.SessionIdleCheckInterval = TimeSpan.FromHours(1);
        });
        var (idle, idleJob) = await StartSessionAsync(h);
        var (busy, busyJob) = await StartSessionAsync(h);
        var secrets = new Dictionary<long, string> { [idle] = idleJob.Environment["GPUC_SESSION_SECRET"], [busy] = busyJob.Environment["GPUC_SESSION_SECRET"] };

        // A stand-in Jupyter that answers only with the session's own token: idle for two hours, or running a cell.
        var old = DateTimeOffset.UtcNow.AddHours(-2).ToString("O");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var jupyter = builder.Build();
        jupyter.MapGet("/sessions/{id:long}/api/{what}", (long id, string what, HttpRequest req) =>
            req.Headers.Authorization.ToString() != "token " + secrets.GetValueOrDefault(id) ? Results.StatusCode(403)
            : what == "status" ? Results.Text($$"""{"last_activity": "{{old}}", "kernels": 1}""", "application/json")
            : Results.Text(id == busy ? $$"""[{"id": "k", "execution_state": "busy", "last_activity": "{{old}}"}]""" : $$"""[{"id": "k", "execution_state": "idle", "last_activity": "{{old}}"}]""", "application/json"));
        await jupyter.StartAsync();
        var port = new Uri(jupyter.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
        foreach (var id in new[] { idle, busy })
        {
            (await ReportAsync(h, id, secrets[id], new { host = "node-1", port = 20000 })).ShouldBe(HttpStatusCode.NoContent);
        }

        await using (var db = h.Factory.Create())
        {
            // The test backend's node is not a host name: point both sessions at the stand-in, reported three hours ago.
            var reported = DateTimeOffset.UtcNow.AddHours(-3);
            await db.Sessions.ExecuteUpdateAsync(s => s.SetProperty(x => x.Host, "127.0.0.1").SetProperty(x => x.Port, port)
                .SetProperty(x => x.ReadyAt, reported).SetProperty(x => x.LastActivity, reported));
        }

        var service = h.App.Services.GetServices<IHostedService>().OfType<SessionIdleService>().Single();
        var stopped = await service.CheckOnceAsync(CancellationToken.None);

        // The busy one was kept: the stand-in told it was busy, which it tells only to the session's own token.
        stopped.ShouldBe([idle]);
        await ServerHarness.EventuallyAsync(() => Task.FromResult(h.Backend.Cancelled.Contains(idle)), "the idle session's job to be cancelled");
        h.Backend.Cancelled.ShouldNotContain(busy);
        await using (var db = h.Factory.Create())
        {
            (await db.Sessions.SingleAsync(s => s.JobId == idle)).IdleStoppedAt.ShouldNotBeNull();
            (await db.Events.CountAsync(e => e.Kind == "session.idle_stopped" && e.Subject == $"job/{idle}")).ShouldBe(1);
        }


    }
}
