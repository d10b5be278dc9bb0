using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using CsCheck;
using GpuCommons.Backends;
using GpuCommons.Server.Security;

namespace GpuCommons.Server.Tests;

/// <summary>
/// A test that needs root (real accounts made with useradd). Skipped for a normal user; on CI (CI=true) it runs anyway
/// and fails, so a CI that lost root is never a silent pass.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public static bool IsRoot => Environment.UserName == "root";

    public RootFactAttribute()
    {
        if (!IsRoot && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Skip = "needs root: the server maps users to real POSIX accounts";
        }
    }
}

public sealed class AccountTests
{
    private static async Task<long> SubmitAsync(HttpClient c, object job)
    {
        var r = await c.PostAsJsonAsync("/api/jobs", job);
        r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    private static string Getent(string db, string key)
    {
        var psi = new ProcessStartInfo("getent", [db, key]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var line = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return line;
    }

    [Fact]
    public void DefaultNames_AreValidPosixNames_AndStable()
    {
        PosixNames.Default("bob").ShouldBe("bob");
        var korean = PosixNames.Default("김연구");
        PosixNames.IsValid(korean).ShouldBeTrue(korean);
        korean.ShouldStartWith("gpuc-");
        PosixNames.Default("김연구").ShouldBe(korean);
        PosixNames.Default("김연구2").ShouldNotBe(korean);
        PosixNames.Default("Alice Smith").ShouldStartWith("gpuc-alicesmith-");
        PosixNames.IsValid("..").ShouldBeFalse();
        PosixNames.IsValid("-rf").ShouldBeFalse();
        PosixNames.IsValid("Root").ShouldBeFalse();
        Gen.String.Sample(s => PosixNames.IsValid(PosixNames.Default(s.Length == 0 ? "x" : s)));
    }

    [RootFact]
    public async Task AsRoot_DemoUsersRunAsTheirOwnAccounts_AndMeSaysSo()
    {
        var backend = new TestBackend();
        await using var s = await ServerHarness.StartAsync(backend: backend, configure: o => o.Accounts = AccountMode.MultiUser);
        var me = await s.Client("bob").GetFromJsonAsync<JsonElement>("/api/me");
        me.GetProperty("accounts").GetProperty("mode").GetString().ShouldBe("multi-user");
        me.GetProperty("posixName").GetString().ShouldBe("gpuc-bob");
        var passwd = Getent("passwd", "gpuc-bob").Split(':');
        me.GetProperty("uid").GetInt32().ShouldBe(int.Parse(passwd[2], System.Globalization.CultureInfo.InvariantCulture));

        var id = await SubmitAsync(s.Client("bob"), ApiTests.Job());
        await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(id)), "bob's job starts");
        var runAs = backend.Running[id].RunAs.ShouldNotBeNull();
        runAs.User.ShouldBe("gpuc-bob");
        runAs.Uid.ShouldBe(int.Parse(passwd[2], System.Globalization.CultureInfo.InvariantCulture));
        runAs.Group.ShouldBe("gpuc-demo");
        runAs.Gid.ShouldBe(int.Parse(Getent("group", "gpuc-demo").Split(':')[2], System.Globalization.CultureInfo.InvariantCulture));
        runAs.Uid.ShouldNotBe(0);
    }

    [RootFact]
    public async Task MappingToRoot_ASystemAccount_AMissingOne_OrATakenOne_Is400()
    {
        await using var s = await ServerHarness.StartAsync(configure: o => o.Accounts = AccountMode.MultiUser);
        var admin = s.Client("admin");
        foreach (var (login, why) in new[] { ("root", "uid 0"), ("daemon", "system account"), ("no-such-login-x1", "no account"), ("gpuc-alice", "another user"), ("Bad Name", "not a POSIX login") })
        {
            var r = await admin.PatchAsJsonAsync("/api/users/bob", new { posixName = login });
            r.StatusCode.ShouldBe(HttpStatusCode.BadRequest, login);
            var problem = await r.Content.ReadFromJsonAsync<JsonElement>();
            problem.GetProperty("field").GetString().ShouldBe("posixName");
            problem.GetProperty("detail").GetString()!.ShouldContain(why);
        }

        (await admin.PatchAsJsonAsync("/api/projects/demo", new { posixGroup = "shadow" })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await s.Client("bob").PatchAsJsonAsync("/api/users/bob", new { posixName = "gpuc-bob" })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
    }

    [RootFact]
    public async Task AUserWithoutAnAccount_FailsAtStartWithTheReason_AndNeverHoldsTheQueue()
    {
        var backend = new TestBackend(nodes: 1, gpusPerNode: 8);
        await using var s = await ServerHarness.StartAsync(backend: backend, configure: o => o.Accounts = AccountMode.MultiUser);
        var admin = s.Client("admin");
        var name = "nohome-" + Guid.NewGuid().ToString("N")[..8];
        var created = await admin.PostAsJsonAsync("/api/users", new { name });
        created.StatusCode.ShouldBe(HttpStatusCode.Created);
        var token = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
        (await admin.PostAsJsonAsync("/api/projects/demo/members", new { user = name })).StatusCode.ShouldBe(HttpStatusCode.Created);
        var c = s.Client(null);
        c.DefaultRequestHeaders.Authorization = new("Bearer", token);

        // Every GPU asked for by jobs that cannot start, then another tenant's job that can.
        var bad = new List<long>();
        for (var i = 0; i < 4; i++)
        {
            bad.Add(await SubmitAsync(c, ApiTests.Job(8)));
        }

        var good = await SubmitAsync(s.Client("sam"), ApiTests.Job(8, project: "startup-demo"));
        await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(good)), "the other tenant's job starts");
        foreach (var id in bad)
        {
            await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("state").GetString() == "failed", $"job {id} fails");
            var job = await s.JobAsync(id);
            job.GetProperty("outcome").GetString()!.ShouldContain($"user {name} has no POSIX account");
            backend.Starts.ContainsKey(id).ShouldBeFalse();
        }
    }

    [Fact]
    public async Task AJobTheBackendRefuses_Fails_GpusBack_NotRetried()
    {
        var backend = RefusingBackend();
        await using var s = await ServerHarness.StartAsync(backend: backend);
        var bad = await SubmitAsync(s.Client("bob"), new { project = "demo", gpus = 8, walltime = "1h", command = new[] { "refuse-me" } });
        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(bad)).GetProperty("state").GetString() == "failed", "the refused job fails");
        (await s.JobAsync(bad)).GetProperty("outcome").GetString().ShouldBe("failed to start: working directory '/nope' does not exist");
        var good = await SubmitAsync(s.Client("sam"), ApiTests.Job(8, project: "startup-demo"));
        await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(good)), "the next job gets the GPUs");
        await Task.Delay(500);
        backend.Refused.ShouldBe(1);
    }

    [Fact]
    public async Task InfrastructureFailures_BackOff_ShowTheReason_AndGiveUpAfterTheCap()
    {
        var backend = new TestBackend { FailStarts = true };
        await using var s = await ServerHarness.StartAsync(backend: backend, configure: o =>
        {
            o.StartRetryMin = TimeSpan.FromMilliseconds(300);
            o.MaxStartTries = 3;
        });
        var id = await SubmitAsync(s.Client("bob"), ApiTests.Job(8));
        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).TryGetProperty("reason", out var r) && r.GetString() == "StartFailed", "the reason shows");
        (await s.JobAsync(id)).GetProperty("reasonText").GetString()!.ShouldContain("start refused by the test backend");

        // While held back, another job may take the GPUs.
        await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("state").GetString() == "failed", "fails after 3 tries");
        (await s.JobAsync(id)).GetProperty("outcome").GetString()!.ShouldContain("3 tries failed");
    }

    [Fact]
    public async Task Property_JobsThatCannotStart_NeverKeepAnotherTenantsJobFromStarting()
    {
        // Any mix of jobs refused at start (in any order, any size) ahead of one job of another tenant: that job runs,
        // and every refused job fails without a start.
        await Gen.Select(Gen.Int[1, 6], Gen.Int[1, 8].Array[1, 8]).SampleAsync(async (goodGpus, badSizes) =>
        {
            var backend = RefusingBackend();
            await using var s = await ServerHarness.StartAsync(backend: backend);
            var bad = new List<long>();
            foreach (var g in badSizes)
            {
                bad.Add(await SubmitAsync(s.Client("bob"), new { project = "demo", gpus = g, walltime = "1h", command = new[] { "refuse-me" } }));
            }

            var good = await SubmitAsync(s.Client("sam"), ApiTests.Job(goodGpus, project: "startup-demo"));
            await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(good)), "the other tenant's job runs");
            foreach (var id in bad)
            {
                await ServerHarness.EventuallyAsync(async () => (await s.JobAsync(id)).GetProperty("state").GetString() == "failed", $"job {id} fails");
                backend.Running.ContainsKey(id).ShouldBeFalse();
            }
        }, iter: 8, threads: 1);
    }

    private static TestBackend RefusingBackend() => new()
    {
        Refuse = j => j.Command[0] == "refuse-me" ? new JobStartRejectedException("working directory '/nope' does not exist") : null,
    };
}
