using System.Globalization;
using Shouldly;
using Xunit;
using static GpuCommons.Backends.Slurm.Tests.Integration.SlurmTestKit;

namespace GpuCommons.Backends.Slurm.Tests.Integration;

/// <summary>
/// Two real local accounts (tenants A and B, each with its own project group), made with useradd for this run and removed
/// afterwards, plus a root-only 0600 file. The CI nodes all run on this host, so the tenants' jobs run side by side here.
/// </summary>
public sealed class SlurmTenants : IDisposable
{
    public SlurmTenants()
    {
        if (LocalSlurm.WhyNot is not null || !OperatingSystem.IsLinux())
        {
            return; // the tests fail (CI) or are skipped with the reason
        }

        var tag = Guid.NewGuid().ToString("N")[..6];
        A = Create("a", tag);
        B = Create("b", tag);
        SecretFile = Path.Combine("/var/tmp", $"gpucs-secret-{tag}");
        File.WriteAllText(SecretFile, "admin-token-" + tag);
        File.SetUnixFileMode(SecretFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        Spool = Path.Combine("/var/spool", $"gpucs-it-{tag}");
    }

    public Tenant A { get; } = null!;
    public Tenant B { get; } = null!;
    public string SecretFile { get; } = "";
    public string Spool { get; } = "";

    public SlurmBackendOptions Options()
    {
        var o = SlurmTestKit.Options();
        o.JobSpoolDirectory = Spool;
        return o;
    }

    public void Dispose()
    {
        if (A is null)
        {
            return;
        }

        foreach (var t in new[] { A, B })
        {
            LocalSlurm.Run("scancel", "--user=" + t.Identity.User);
        }

        for (var i = 0; i < 60 && new[] { A, B }.Any(t => LocalSlurm.Run("squeue", "-h", "--user=" + t.Identity.User).Output.Trim().Length > 0); i++)
        {
            Task.Delay(250).Wait();
        }

        foreach (var t in new[] { A, B })
        {
            LocalSlurm.Run("sacctmgr", "-i", "delete", "user", "name=" + t.Identity.User);
            LocalSlurm.Run("sacctmgr", "-i", "delete", "account", "name=" + SlurmAccountName.FromProject(t.Project));
            LocalSlurm.Run("userdel", t.Identity.User);
            LocalSlurm.Run("groupdel", t.Identity.Group);
        }

        File.Delete(SecretFile);
        if (Directory.Exists(Spool))
        {
            Directory.Delete(Spool, true);
        }
    }

    private static Tenant Create(string which, string tag)
    {
        var user = $"gpucs-{which}-{tag}";
        var group = $"gpucs-p{which}-{tag}";
        Check(LocalSlurm.Run("groupadd", group));
        Check(LocalSlurm.Run("useradd", "--no-create-home", "--no-user-group", "--gid", group, "--home-dir", "/nonexistent", "--shell", "/bin/bash", user));
        var uid = int.Parse(LocalSlurm.Run("id", "-u", user).Output.Trim(), CultureInfo.InvariantCulture);
        var gid = int.Parse(LocalSlurm.Run("getent", "group", group).Output.Split(':')[2], CultureInfo.InvariantCulture);
        return new Tenant(new PosixIdentity(user, uid, group, gid, "/nonexistent"), $"gpucs-proj-{which}-{tag}");
    }

    private static void Check((int Code, string Output) r)
    {
        if (r.Code != 0)
        {
            throw new InvalidOperationException(r.Output);
        }
    }
}

public sealed record Tenant(PosixIdentity Identity, string Project);

/// <summary>Jobs submitted as their tenant's own account on the real Slurm; hostile jobs are refused by the kernel.</summary>
[Collection("slurm")]
public class TenantIsolationTests(SlurmTenants tenants) : IClassFixture<SlurmTenants>
{
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(60);

    private BackendJob JobOf(Tenant t, long id, string script, IReadOnlyDictionary<string, string>? env = null, string? workingDirectory = null) =>
        Job(id, ["n2"], 1, script, env: env) with { Project = t.Project, User = t.Identity.User, RunAs = t.Identity, WorkingDirectory = workingDirectory };

    [SlurmFact]
    public async Task ContainerJob_RunsInItsImage_AsItsUser_WithItsMount_AndReadsNothingItsUserCannot()
    {
        // Slurm's own --container through rootless runc (ci/slurm/oci.conf.template), in the busybox bundle that
        // ci/install-containers.sh makes: root inside is tenant A outside, and nothing else.
        LocalSlurm.Require();
        const string Image = "/var/lib/gpuc-ci/busybox-bundle";
        File.Exists(Path.Combine(Image, "config.json")).ShouldBeTrue("ci/install-containers.sh makes the test bundle " + Image);
        var options = tenants.Options();
        options.ContainerMode = SlurmContainerMode.Oci;
        await using var backend = Backend(options);
        var a = tenants.A;
        var data = Path.Combine("/var/tmp", "gpucs-data-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(data);
        LocalSlurm.Run("chmod", "700", data);
        LocalSlurm.Run("chown", $"{a.Identity.Uid}:{a.Identity.Gid}", data);
        try
        {
            var id = NextId();
            var job = JobOf(a, id, "") with
            {
                Command = ["/bin/sh", "-c", "cat /etc/gpuc-image; id -u; touch /data/made-inside && echo wrote; echo \"job $GPUC_JOB_ID\""],
                Container = new ContainerSpec(Image, [new ContainerMount(data, "/data", false)]),
            };
            var handle = await backend.StartAsync(job, default);
            var events = await PollUntilAsync(backend, [], e => e.Ended(id), Short);
            events.Has(id, BackendEventKind.Finished).ShouldBeTrue(string.Join("; ", events.Select(Describe)) + " " + Output(handle) + ReadErr(handle));
            Output(handle).Split('\n', StringSplitOptions.RemoveEmptyEntries).ShouldBe(["gpuc-busybox-bundle", "0", "wrote", $"job {id}"]);
            LocalSlurm.Run("stat", "-c", "%u", Path.Combine(data, "made-inside")).Output.Trim().ShouldBe(a.Identity.Uid.ToString(CultureInfo.InvariantCulture));
            var bundle = SlurmSubmission.BundleDirectoryFor(job, options);
            LocalSlurm.Run("stat", "-c", "%u %a", bundle).Output.Trim().ShouldBe($"{a.Identity.Uid} 700"); // no other tenant reads its mounts

            // A root-only file bound in is still root's: the container's root is the user, so it cannot be read.
            var spy = NextId();
            var steal = JobOf(a, spy, "") with
            {
                Command = ["/bin/sh", "-c", "cat /etc/gpuc-image || echo denied"],
                Container = new ContainerSpec(Image, [new ContainerMount(tenants.SecretFile, "/etc/gpuc-image", true)]),
            };
            var h2 = await backend.StartAsync(steal, default);
            await PollUntilAsync(backend, [], e => e.Ended(spy), Short);
            Output(h2).ShouldNotContain("admin-token");
            Output(h2).ShouldContain("denied");
        }
        finally
        {
            Directory.Delete(data, true);
        }
    }

    private static string ReadErr(BackendHandle h) => h.StderrPath is { } p && File.Exists(p) ? File.ReadAllText(p) : "";

    [SlurmFact]
    public async Task JobRunsAsItsUser_SacctShowsTheUserAndTheProjectsAccount()
    {
        LocalSlurm.Require();
        await using var backend = Backend(tenants.Options());
        var a = tenants.A;
        var id = NextId();

        var handle = await backend.StartAsync(JobOf(a, id, "id -u; id -g; echo \"HOME=$HOME USER=$USER SECRET=${GPUC_SERVER_SECRET:-none}\""), default);
        var events = await PollUntilAsync(backend, [], e => e.Ended(id), Short);

        events.Has(id, BackendEventKind.Finished).ShouldBeTrue(string.Join("; ", events.Select(Describe)));
        var lines = Output(handle).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines[0].ShouldBe(a.Identity.Uid.ToString(CultureInfo.InvariantCulture));
        lines[1].ShouldBe(a.Identity.Gid.ToString(CultureInfo.InvariantCulture)); // the project's group is the primary group
        lines[2].ShouldBe($"HOME=/nonexistent USER={a.Identity.User} SECRET=none");
        LocalSlurm.Run("stat", "-c", "%u %a", Path.GetDirectoryName(handle.StdoutPath)!).Output.Trim().ShouldBe($"{a.Identity.Uid} 750");
        var account = SlurmAccountName.FromProject(a.Project);
        var acct = "";
        for (var i = 0; i < 30 && acct.Length == 0; i++)
        {
            acct = LocalSlurm.Run("sacct", "-j", handle.ExternalId, "-X", "-n", "-P", "-o", "User,Account").Output.Trim();
            await Task.Delay(acct.Length == 0 ? 500 : 0);
        }

        acct.ShouldBe($"{a.Identity.User}|{account}");
        LocalSlurm.Run("sacctmgr", "-n", "-P", "list", "assoc", "user=" + a.Identity.User, "format=account,user").Output.Trim()
            .ShouldBe($"{account}|{a.Identity.User}");
    }

    [SlurmFact]
    public async Task HostileJob_CannotReadARootOnlyFile()
    {
        LocalSlurm.Require();
        await using var backend = Backend(tenants.Options());
        var id = NextId();

        var handle = await backend.StartAsync(JobOf(tenants.A, id, $"cat {tenants.SecretFile} 2>&1; echo rc=$?"), default);
        await PollUntilAsync(backend, [], e => e.Ended(id), Short);

        File.Exists(tenants.SecretFile).ShouldBeTrue(); // refused, not missing
        var output = Output(handle);
        output.ShouldContain("Permission denied");
        output.ShouldContain("rc=1");
        output.ShouldNotContain("admin-token");
    }

    [SlurmFact]
    public async Task HostileJob_CannotReadWriteOrListAnotherTenantsOutput_NorSignalItsJob()
    {
        LocalSlurm.Require();
        await using var backend = Backend(tenants.Options());
        var victim = NextId();
        var attacker = NextId();
        var hb = await backend.StartAsync(JobOf(tenants.B, victim, "echo B-PRIVATE; echo pid=$$; sleep 120"), default);
        var events = await PollUntilAsync(backend, [], e => Output(hb).Contains("pid=", StringComparison.Ordinal) || e.Ended(victim), Short);
        var pid = Output(hb).Split('\n').Single(l => l.StartsWith("pid=", StringComparison.Ordinal))["pid=".Length..];
        try
        {
            var env = new Dictionary<string, string> { ["TARGET_FILE"] = hb.StdoutPath!, ["TARGET_PID"] = pid, ["TARGET_DIR"] = Path.GetDirectoryName(hb.StdoutPath)! };
            var ha = await backend.StartAsync(JobOf(tenants.A, attacker, """
                cat "$TARGET_FILE" 2>&1; echo read=$?
                (echo forged >> "$TARGET_FILE") 2>&1; echo write=$?
                ls "$(dirname "$TARGET_DIR")" 2>&1; echo list=$?
                kill -TERM "$TARGET_PID" 2>&1; echo kill=$?
                """, env), default);
            await PollUntilAsync(backend, events, e => e.Ended(attacker), Short);

            var output = Output(ha);
            File.Exists(hb.StdoutPath).ShouldBeTrue();
            output.ShouldContain("read=1");
            output.ShouldContain("write=1");
            output.ShouldContain("list=2");
            output.ShouldContain("kill=1");
            output.Split('\n').Count(l => l.Contains("Permission denied", StringComparison.Ordinal)).ShouldBe(3, output); // EACCES: read, write, list
            output.ShouldContain("Operation not permitted"); // EPERM: the signal
            output.ShouldNotContain("B-PRIVATE");
            Output(hb).ShouldNotContain("forged");
            LocalSlurm.Run("kill", "-0", pid).Code.ShouldBe(0, "B's job survived");
            events.Has(victim, BackendEventKind.Started).ShouldBeTrue();
            events.Ended(victim).ShouldBeFalse();
        }
        finally
        {
            await backend.CancelAsync(victim, TimeSpan.Zero, default);
        }
    }

    [SlurmFact]
    public async Task Cancel_IsDoneByTheJobsOwnAccount()
    {
        LocalSlurm.Require();
        await using var backend = Backend(tenants.Options());
        var id = NextId();
        var a = tenants.A.Identity;
        var handle = await backend.StartAsync(JobOf(tenants.A, id, "echo ready; sleep 300"), default);
        var events = await PollUntilAsync(backend, [], e => e.Has(id, BackendEventKind.Started) && Output(handle).Contains("ready", StringComparison.Ordinal), Short);

        await backend.CancelAsync(id, TimeSpan.Zero, default);
        await PollUntilAsync(backend, events, e => e.Ended(id), Short);

        events.Has(id, BackendEventKind.Cancelled).ShouldBeTrue(string.Join("; ", events.Select(Describe)));
        var state = "";
        for (var i = 0; i < 30 && !state.StartsWith("CANCELLED by", StringComparison.Ordinal); i++)
        {
            state = LocalSlurm.Run("sacct", "-j", handle.ExternalId, "-X", "-n", "-P", "-o", "State").Output.Trim();
            await Task.Delay(300);
        }

        state.ShouldBe($"CANCELLED by {a.Uid}"); // Slurm records who cancelled: the user, not root
    }

    [SlurmFact]
    public async Task Start_UnknownLogin_AndAWorkingDirectoryTheUserCannotEnter_AreRejected()
    {
        LocalSlurm.Require();
        await using var backend = Backend(tenants.Options());

        var ghost = tenants.A.Identity with { User = "gpucs-nobody-" + Guid.NewGuid().ToString("N")[..6], Uid = 59999 };
        (await Should.ThrowAsync<JobStartRejectedException>(() => backend.StartAsync(JobOf(tenants.A, NextId(), "true") with { RunAs = ghost }, default)))
            .Message.ShouldContain("no such account");

        Directory.Exists("/root").ShouldBeTrue();
        (await Should.ThrowAsync<JobStartRejectedException>(() => backend.StartAsync(JobOf(tenants.A, NextId(), "true", workingDirectory: "/root"), default)))
            .Message.ShouldContain("cannot enter its working directory '/root'");

        (await Should.ThrowAsync<JobStartRejectedException>(() => backend.StartAsync(JobOf(tenants.A, NextId(), "true") with
        {
            RunAs = tenants.A.Identity with { Uid = 0 },
        }, default))).Message.ShouldContain("uid 0");
    }
}
