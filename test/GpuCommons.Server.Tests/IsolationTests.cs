using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace GpuCommons.Server.Tests;

/// <summary>
/// Role × resource × action: every allowed call succeeds and every denial is 403 or 404, never leaking another tenant's
/// names. Users: admin; oscar (operator); carol (reviewer); alice (PI of demo); bob (member of demo); sam (PI of
/// startup-demo, an outsider to demo).
/// </summary>
public sealed class IsolationTests : IAsyncLifetime
{
    private ServerHarness _s = null!;
    private long _demoJob;
    private long _demoRequest;

    public async Task InitializeAsync()
    {
        _s = await ServerHarness.StartAsync();
        var bob = _s.Client("bob");
        _demoJob = (await (await bob.PostAsJsonAsync("/api/jobs", ApiTests.Job())).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
        var r = await _s.Client("alice").PostAsJsonAsync("/api/allocation-requests", new { project = "demo", gpuHours = 10.0, justification = "secret-science-plan" });
        _demoRequest = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    public async Task DisposeAsync() => await _s.DisposeAsync();

    // (user, action, expected status)
    public static TheoryData<string, string, int> Matrix()
    {
        var d = new TheoryData<string, string, int>();
        void Row(string action, int admin, int op, int reviewer, int pi, int member, int outsider)
        {
            d.Add("admin", action, admin);
            d.Add("oscar", action, op);
            d.Add("carol", action, reviewer);
            d.Add("alice", action, pi);
            d.Add("bob", action, member);
            d.Add("sam", action, outsider);
        }

        Row("job.show", 200, 200, 404, 200, 200, 404);
        Row("job.logs", 200, 200, 403, 200, 200, 404);
        Row("job.list-demo", 200, 200, 403, 200, 200, 200); // outsider: 200 with an empty page
        Row("job.submit-demo", 201, 400, 403, 201, 201, 400);
        Row("project.show-demo", 200, 200, 200, 200, 200, 404);
        Row("project.members-demo", 200, 200, 200, 200, 200, 404);
        Row("project.add-member-demo", 201, 403, 403, 201, 403, 404);
        Row("project.create", 201, 403, 403, 403, 403, 403);
        Row("request.show-demo", 200, 200, 200, 200, 200, 404);
        Row("request.review", 200, 403, 200, 403, 403, 403);
        Row("allocation.show-demo", 200, 200, 200, 200, 200, 404);
        Row("allocation.grant", 201, 403, 403, 403, 403, 403);
        Row("node.drain", 200, 200, 403, 403, 403, 403);
        Row("reservation.create", 201, 201, 403, 403, 403, 403);
        Row("usage.orgtype", 200, 200, 200, 403, 403, 403);
        Row("user.create", 201, 403, 403, 403, 403, 403);
        Row("project.quotas-demo", 200, 403, 403, 403, 403, 404);
        Row("organisation.show-demo", 200, 200, 200, 200, 200, 404);
        Row("organisation.quotas-demo", 200, 403, 403, 403, 403, 404);
        Row("allocation.extend-demo", 200, 403, 200, 403, 403, 404);
        Row("user.tokens-bob", 200, 404, 404, 404, 200, 404);
        Row("user.revoke-bob", 404, 404, 404, 404, 404, 404); // no such token id: only the admin and bob get as far as looking
        Row("fleet.discrepancies", 200, 200, 403, 403, 403, 403);
        Row("job.cancel", 202, 202, 404, 202, 202, 404);
        return d;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task RoleResourceAction(string user, string action, int expected)
    {
        var c = _s.Client(user);
        var n = Guid.NewGuid().ToString("N")[..8];
        var now = DateTimeOffset.UtcNow;
        var r = action switch
        {
            "job.show" => await c.GetAsync($"/api/jobs/{_demoJob}"),
            "job.logs" => await c.GetAsync($"/api/jobs/{_demoJob}/logs"),
            "job.list-demo" => await c.GetAsync("/api/jobs?project=demo"),
            "job.submit-demo" => await c.PostAsJsonAsync("/api/jobs", ApiTests.Job()),
            "job.cancel" => await c.PostAsync($"/api/jobs/{_demoJob}/cancel", null),
            "project.show-demo" => await c.GetAsync("/api/projects/demo"),
            "project.members-demo" => await c.GetAsync("/api/projects/demo/members"),
            "project.add-member-demo" => await c.PostAsJsonAsync("/api/projects/demo/members", new { user = "sam" }),
            "project.create" => await c.PostAsJsonAsync("/api/projects", new { name = "p" + n, organisation = "University 01" }),
            "request.show-demo" => await c.GetAsync($"/api/allocation-requests/{_demoRequest}"),
            "request.review" => await c.PostAsJsonAsync($"/api/allocation-requests/{_demoRequest}/review", new { decision = "reject" }),
            "allocation.show-demo" => await c.GetAsync("/api/allocations/demo-2026"),
            "allocation.grant" => await c.PostAsJsonAsync("/api/allocations", new { id = "g" + n, project = "demo", gpuHours = 1.0 }),
            "node.drain" => await c.PostAsync("/api/nodes/node-1/drain", null),
            "reservation.create" => await c.PostAsJsonAsync("/api/reservations", new { name = "r" + n, nodes = new[] { "node-1" }, start = now.AddDays(10), end = now.AddDays(11) }),
            "usage.orgtype" => await c.GetAsync("/api/usage?by=orgtype"),
            "user.create" => await c.PostAsJsonAsync("/api/users", new { name = "u" + n }),
            "project.quotas-demo" => await c.PutAsJsonAsync("/api/projects/demo/quotas", new { quotas = Array.Empty<object>() }),
            "organisation.show-demo" => await c.GetAsync("/api/organisations/University 01"),
            "organisation.quotas-demo" => await c.PutAsJsonAsync("/api/organisations/University 01/quotas", new { quotas = Array.Empty<object>() }),
            "allocation.extend-demo" => await c.PostAsJsonAsync("/api/allocations/demo-2026/extend", new { addGpuHours = 1.0 }),
            "user.tokens-bob" => await c.GetAsync("/api/users/bob/tokens"),
            "user.revoke-bob" => await c.DeleteAsync("/api/users/bob/tokens/000000000000"),
            "fleet.discrepancies" => await c.GetAsync("/api/fleet/discrepancies"),
            _ => throw new ArgumentException(action),
        };
        var body = await r.Content.ReadAsStringAsync();
        ((int)r.StatusCode).ShouldBe(expected, body);
        if (user == "sam" && (int)r.StatusCode >= 400)
        {
            // Denials to an outsider never echo demo's private data. (A problem's trace id is random, not data: ASP.NET
            // Core's connection ids are base32 and may spell a name.)
            var shown = System.Text.RegularExpressions.Regex.Replace(body, "\"traceId\"\\s*:\\s*\"[^\"]*\"", "\"traceId\":\"\"");
            shown.ShouldNotContain("secret-science-plan");
            shown.ShouldNotContain("bob");
            shown.ShouldNotContain("alice");
        }

        if (action == "job.list-demo" && user == "sam")
        {
            JsonDocument.Parse(body).RootElement.GetProperty("items").GetArrayLength().ShouldBe(0);
        }
    }

    [Fact]
    public async Task Outsider_SeesNoOtherTenantInAnyList()
    {
        var sam = _s.Client("sam");
        foreach (var path in new[] { "/api/jobs", "/api/projects", "/api/organisations", "/api/allocations", "/api/allocation-requests", "/api/usage?by=member", "/api/usage?by=allocation", "/api/events" })
        {
            var text = await sam.GetStringAsync(path);
            text.ShouldNotContain("\"demo\"", customMessage: path);
            text.ShouldNotContain("University 01", customMessage: path);
            text.ShouldNotContain("bob", customMessage: path);
        }
    }

    [Fact]
    public async Task Member_SeesOnlyOwnUsageRow_PiSeesAll()
    {
        var admin = _s.Client("admin");
        _ = admin;
        var bob = await _s.Client("bob").GetFromJsonAsync<List<GpuCommons.Contracts.UsageRow>>("/api/usage?by=member");
        bob!.All(r => r.Key == "demo/bob").ShouldBeTrue();
    }
}
