using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests.Tenants;

/// <summary>
/// A tenant's job attacks the server and another tenant. Every attempt must be refused by the operating system
/// (EACCES "Permission denied", EPERM "Operation not permitted") while the target exists: a missing target proves nothing.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class HostileTenantTests(TenantAccounts tenants) : IClassFixture<TenantAccounts>
{
    private TestBackend NewBackend() => new(configure: o =>
    {
        o.GpuDeviceDirectory = tenants.DeviceDirectory;
        o.ScratchDirectory = tenants.Root;
    });

    private static async Task<BackendHandle> RunToEndAsync(TestBackend t, BackendJob job)
    {
        var handle = await t.StartAsync(job);
        var end = (await t.PollUntilEndAsync(job.JobId)).Last();
        end.Kind.ShouldBeOneOf(BackendEventKind.Finished, BackendEventKind.Failed);
        return handle;
    }

    /// <summary>Starts a job of tenant B that prints a line and then runs until the test ends; returns once it printed.</summary>
    private static async Task<BackendHandle> StartVictimAsync(TestBackend t, long id, PosixIdentity b)
    {
        var handle = await t.StartAsync(t.JobAs(id, b, "echo victim-line; exec sleep 300"));
        await TestBackend.WaitForAsync(() => TestBackend.Out(handle).Contains("victim-line", StringComparison.Ordinal), "the victim job to start");
        return handle;
    }

    [RootFact]
    public async Task Job_RunsAsTheMappedUidWithTheProjectGroupOnly_NoCapabilitiesNoNewPrivs()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var a = tenants.A;

        var handle = await RunToEndAsync(t, t.JobAs(1, a, "id -u; id -g; id -G; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status"));

        var lines = TestBackend.Out(handle).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines[0].ShouldBe(a.Uid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        lines[1].ShouldBe(a.Gid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        lines[2].ShouldBe(a.Gid.ToString(System.Globalization.CultureInfo.InvariantCulture)); // no supplementary group but the project's
        lines.Where(l => l.StartsWith("Cap", StringComparison.Ordinal)).ShouldAllBe(l => l.EndsWith("0000000000000000", StringComparison.Ordinal));
        lines.Count(l => l.StartsWith("Cap", StringComparison.Ordinal)).ShouldBe(5);
        lines.ShouldContain("NoNewPrivs:\t1");
    }

    [RootFact]
    public async Task Job_ReadsTheAdminToken_PermissionDenied()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();

        var handle = await RunToEndAsync(t, t.JobAs(2, tenants.A, $"cat '{tenants.Secret}'"));

        File.Exists(tenants.Secret).ShouldBeTrue();
        TestBackend.Err(handle).ShouldContain($"{tenants.Secret}: Permission denied");
        TestBackend.Out(handle).ShouldNotContain("gpuct-admin-token");
    }

    [RootFact]
    public async Task Job_ReadsTheServersEnvironment_PermissionDenied()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var environ = $"/proc/{Environment.ProcessId}/environ";

        var handle = await RunToEndAsync(t, t.JobAs(3, tenants.A, $"cat {environ}"));

        File.Exists(environ).ShouldBeTrue();
        TestBackend.Err(handle).ShouldContain($"{environ}: Permission denied");
        TestBackend.Out(handle).ShouldBeEmpty();
    }

    [RootFact]
    public async Task Job_ReadsListsAndAppendsToAnotherTenantsLog_PermissionDenied()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var victim = await StartVictimAsync(t, 10, tenants.B);
        var log = victim.StdoutPath!;
        var directory = Path.GetDirectoryName(log)!;

        var handle = await RunToEndAsync(t, t.JobAs(11, tenants.A, $"cat '{log}'; echo forged >> '{log}'; ls '{directory}'"));

        var err = TestBackend.Err(handle);
        err.ShouldContain($"cat: {log}: Permission denied", Case.Sensitive, err);
        err.ShouldContain($"cannot create {log}: Permission denied");
        err.ShouldContain($"cannot open directory '{directory}': Permission denied");
        TestBackend.Out(victim).ShouldBe("victim-line\n");

        // Not only the folder: the file itself is B's and B's project's alone.
        TenantAccounts.Owner(log).ShouldBe($"{tenants.B.Uid}:{tenants.B.Gid}:640");
        TenantAccounts.Owner(directory).ShouldBe("0:0:700");
    }

    [RootFact]
    public async Task Job_SignalsAnotherTenantsJob_OperationNotPermitted()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var victim = await StartVictimAsync(t, 20, tenants.B);
        var leader = TestBackend.LeaderPid(victim);
        var sleeper = Posix.ProcessesOf(leader).Single(p => Posix.RealUid(p.Pid) == tenants.B.Uid).Pid;

        var handle = await RunToEndAsync(t, t.JobAs(21, tenants.A, $"kill -TERM {sleeper}; kill -KILL {leader}; kill -TERM -{leader}"));

        var err = TestBackend.Err(handle);
        err.Split('\n').Count(l => l.Contains("Operation not permitted", StringComparison.Ordinal)).ShouldBe(3, err);
        Posix.ReadStat(sleeper).ShouldNotBeNull().IsZombie.ShouldBeFalse();
        Posix.ReadStat(leader).ShouldNotBeNull().IsZombie.ShouldBeFalse();
    }

    [RootFact]
    public async Task Job_OpensAGpuItWasNotGiven_PermissionDenied_ItsOwnOpens()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var dev = tenants.DeviceDirectory;

        var handle = await RunToEndAsync(t, t.JobAs(30, tenants.A,
            $"head -c 0 {dev}/nvidia1 && echo own-opened; for n in 0 2 3; do head -c 0 {dev}/nvidia$n && echo other-opened-$n; done", gpus: [1]));

        TestBackend.Out(handle).ShouldBe("own-opened\n");
        var err = TestBackend.Err(handle);
        foreach (var n in new[] { 0, 2, 3 })
        {
            err.ShouldContain($"cannot open '{dev}/nvidia{n}' for reading: Permission denied");
            // The device is there, untouched, outside the job's mount namespace.
            TenantAccounts.Run("stat", "-c", "%F:%a", $"{dev}/nvidia{n}").Trim().ShouldBe("character special file:666");
        }
    }

    [RootFact]
    public async Task Job_GivenNoGpu_OpensNone()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var dev = tenants.DeviceDirectory;

        var handle = await RunToEndAsync(t, t.JobAs(31, tenants.A, $"for n in 0 1 2 3; do head -c 0 {dev}/nvidia$n && echo opened-$n; done"));

        TestBackend.Out(handle).ShouldBeEmpty();
        TestBackend.Err(handle).Split('\n').Count(l => l.EndsWith("Permission denied", StringComparison.Ordinal)).ShouldBe(4);
    }

    [RootFact]
    public async Task Job_RunsASetuidRootBinary_StaysItsUser()
    {
        RootFactAttribute.Require();
        var a = tenants.A;
        // The control: without no_new_privs, the same binary run by the same account does become root, so the file system
        // honours setuid and what the job shows below is the backend's doing.
        var control = TenantAccounts.Run("setpriv", "--reuid", $"{a.Uid}", "--regid", $"{a.Gid}", "--groups", $"{a.Gid}", "--", tenants.SetuidId);
        control.ShouldContain("euid=0(root)");

        await using var t = NewBackend();
        var handle = await RunToEndAsync(t, t.JobAs(40, a, $"'{tenants.SetuidId}'"));

        var output = TestBackend.Out(handle);
        output.ShouldStartWith($"uid={a.Uid}({a.User}) gid={a.Gid}({a.Group})");
        output.ShouldNotContain("euid=");
    }

    [RootFact]
    public async Task Job_Environment_HasNothingOfTheServers()
    {
        RootFactAttribute.Require();
        var canary = "GPUCT_CANARY_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        Environment.SetEnvironmentVariable(canary, "server-secret");
        Environment.SetEnvironmentVariable("GPUC_DB_CONNECTION", "Host=db;Password=server-secret");
        try
        {
            await using var t = NewBackend();
            var a = tenants.A;
            var env = new Dictionary<string, string> { ["EXTRA"] = "yes", ["LD_LIBRARY_PATH"] = "/opt/lib", ["CUDA_VISIBLE_DEVICES"] = "0,1,2,3" };

            var handle = await RunToEndAsync(t, t.JobAs(50, a, "env", gpus: [2], env: env));

            var vars = TestBackend.Out(handle).Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "");
            vars.Values.ShouldNotContain(v => v.Contains("server-secret", StringComparison.Ordinal));
            vars.Keys.ShouldNotContain(canary);
            vars.Keys.Where(k => !k.StartsWith("GPUC_", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ShouldBe(
                ["CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "EXTRA", "HOME", "LANG", "LD_LIBRARY_PATH", "LOGNAME", "PATH", "PWD", "USER"]);
            vars["HOME"].ShouldBe(a.Home);
            vars["USER"].ShouldBe(a.User);
            vars["LOGNAME"].ShouldBe(a.User);
            vars["CUDA_VISIBLE_DEVICES"].ShouldBe("2"); // the job's own GPUs win over what it asked for
            vars["EXTRA"].ShouldBe("yes");
            vars["PWD"].ShouldBe(a.Home);
        }
        finally
        {
            Environment.SetEnvironmentVariable(canary, null);
            Environment.SetEnvironmentVariable("GPUC_DB_CONNECTION", null);
        }
    }

    [RootFact]
    public async Task Job_WritesItsExitCodeOrReadsTheBackendState_PermissionDenied()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var state = Path.Combine(t.StateDirectory, "jobs", "60");

        var handle = await RunToEndAsync(t, t.JobAs(60, tenants.A, $"echo 0 > '{state}/exitcode'; cat '{state}/job.json'; exit 9"));

        var err = TestBackend.Err(handle);
        err.ShouldContain($"cannot create {state}/exitcode: Permission denied");
        err.ShouldContain($"{state}/job.json: Permission denied");
        File.ReadAllText(Path.Combine(state, "exitcode")).Trim().ShouldBe("9");
        TenantAccounts.Owner(t.StateDirectory).ShouldBe("0:0:700");
        TenantAccounts.Owner(Path.Combine(state, "job.json")).ShouldBe("0:0:600");
    }

    [RootFact]
    public async Task ReattachAsync_TenantJobAfterARestart_TakenBackAndCancelledWithEveryProcess()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var script = "trap 'echo got-term; exit 0' TERM; sleep 300 & echo ready; while true; do sleep 0.1; done";
        var handle = await t.StartAsync(t.JobAs(90, tenants.A, script));
        await TestBackend.WaitForAsync(() => TestBackend.Out(handle).Contains("ready", StringComparison.Ordinal), "the job to be ready");
        var leader = TestBackend.LeaderPid(handle);
        Posix.RealUid(leader).ShouldBe(0); // the wrapper stays the backend's
        Posix.ProcessesOf(leader).Where(p => p.Pid != leader).ShouldAllBe(p => Posix.RealUid(p.Pid) == tenants.A.Uid);

        var restarted = await t.NewBackendAsync();
        (await restarted.ReattachAsync(90, handle, CancellationToken.None)).ShouldBeTrue();
        await restarted.CancelAsync(90, TimeSpan.FromSeconds(1), CancellationToken.None);
        var end = (await t.PollUntilEndAsync(90, restarted)).Last();

        (end.Kind, end.ExitCode).ShouldBe((BackendEventKind.Cancelled, 0));
        TestBackend.Out(handle).ShouldContain("got-term");
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(leader).Count == 0, "every process of the job to be gone");
    }

    [RootFact]
    public async Task StartAsync_NoWorkingDirectory_StartsInTheUsersHome_OrAScratchDirectoryOfItsOwn()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var a = tenants.A;

        var home = await RunToEndAsync(t, t.JobAs(70, a, "pwd"));
        TestBackend.Out(home).ShouldBe(a.Home + "\n");

        var homeless = a with { Home = Path.Combine(tenants.Root, "no-such-home") };
        var scratch = await RunToEndAsync(t, t.JobAs(71, homeless, "pwd"));
        var dir = TestBackend.Out(scratch).Trim();
        dir.ShouldStartWith(Path.Combine(tenants.Root, "gpuc-job-71-"));
        TenantAccounts.Owner(dir).ShouldBe($"{a.Uid}:{a.Gid}:700");

        // A uid with no passwd entry and no home (a reserved range): HOME is its scratch directory.
        var nobody = new PosixIdentity("gpuct-dynamic", 61_234, a.Group, a.Gid, "");
        var dynamic = await RunToEndAsync(t, t.JobAs(72, nobody, "id -u; pwd; echo \"$HOME\""));
        var lines = TestBackend.Out(dynamic).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines[0].ShouldBe("61234");
        lines[1].ShouldStartWith(Path.Combine(tenants.Root, "gpuc-job-72-"));
        lines[2].ShouldBe(lines[1]);
    }

    [RootFact]
    public async Task StartAsync_WorkingDirectoryMissing_Rejected()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var missing = Path.Combine(tenants.Root, "no-such-dir");

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(t.JobAs(80, tenants.A, "true") with { WorkingDirectory = missing }));

        e.Message.ShouldContain($"'{missing}' does not exist");
        File.Exists(Path.Combine(t.StateDirectory, "jobs", "80", "job.json")).ShouldBeFalse();
    }

    [RootFact]
    public async Task StartAsync_WorkingDirectoryTheUserCannotEnter_Rejected()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        // B's home (0700, B's): it exists, and A may not enter it.
        var e = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(t.JobAs(81, tenants.A, "true") with { WorkingDirectory = tenants.B.Home }));

        Directory.Exists(tenants.B.Home).ShouldBeTrue();
        e.Message.ShouldContain("cannot be entered by the job's user (permission denied)");
        e.Message.ShouldContain(tenants.A.User);
    }

    [RootFact]
    public async Task StartAsync_RunAsRoot_Rejected()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var root = new PosixIdentity("root", 0, tenants.A.Group, tenants.A.Gid, "/root");

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(t.JobAs(82, root, "true")));

        e.Message.ShouldContain("never run as root");
    }

    [RootFact]
    public async Task StartAsync_RunAsAnotherAccount_BackendNotRoot_Rejected()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        t.Backend.ProcessUid = 54321; // a backend run by an ordinary account

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(t.JobAs(83, tenants.A, "true")));

        e.Message.ShouldContain("cannot switch to another account");
    }
}
