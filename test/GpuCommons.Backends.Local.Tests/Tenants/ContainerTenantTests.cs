using System.Globalization;

namespace GpuCommons.Backends.Local.Tests.Tenants;

/// <summary>
/// A test that runs podman as root with the test image <c>localhost/gpuc-busybox:test</c> (built from Debian's busybox-static
/// by <c>ci/install-containers.sh</c>; nothing is pulled from a registry). Skipped with the reason where either is missing,
/// except on CI (<c>CI=true</c>), where <see cref="Require"/> fails it.
/// </summary>
public sealed class ContainerFactAttribute : FactAttribute
{
    public const string Image = "localhost/gpuc-busybox:test";

    public ContainerFactAttribute()
    {
        if (RootFactAttribute.OnCi)
        {
            return;
        }

        if (!RootFactAttribute.IsRoot)
        {
            Skip = "needs root: it creates local accounts and runs containers as them (CI=true makes this a failure)";
        }
        else if (Missing() is { } why)
        {
            Skip = why + " (bash ci/install-containers.sh installs it; CI=true makes this a failure)";
        }
    }

    public static string? Missing()
    {
        if (!File.Exists("/usr/bin/podman"))
        {
            return "podman is not installed";
        }

        var (code, _, _) = TenantAccounts.TryRun("/usr/bin/podman", "--runtime", "runc", "image", "exists", Image);
        return code == 0 ? null : $"the test image {Image} is missing";
    }

    public static void Require()
    {
        RootFactAttribute.Require();
        if (Missing() is { } why)
        {
            Assert.Fail($"Container tests must run on CI: {why}; .ci/run runs ci/install-containers.sh.");
        }
    }
}

/// <summary>
/// Container jobs attack the server and another tenant from inside their container. The container runs as the tenant's
/// uid (root podman with <c>--user</c>), so every attempt meets the same refusal as a job without a container, and mounts
/// are checked as the tenant before podman (root) binds them.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ContainerTenantTests(TenantAccounts tenants) : IClassFixture<TenantAccounts>
{
    private const string Image = ContainerFactAttribute.Image;

    private TestBackend NewBackend() => new(configure: o =>
    {
        o.GpuDeviceDirectory = tenants.DeviceDirectory;
        o.ScratchDirectory = tenants.Root;
        o.ContainerPull = "never";
    });

    private static BackendJob InContainer(BackendJob job, string image = Image, params ContainerMount[] mounts) =>
        job with { Container = new ContainerSpec(image, mounts) };

    private static async Task<BackendHandle> RunToEndAsync(TestBackend t, BackendJob job, BackendEventKind expected = BackendEventKind.Finished)
    {
        var handle = await t.StartAsync(job);
        var end = (await t.PollUntilEndAsync(job.JobId)).Last(e => e.JobId == job.JobId);
        end.Kind.ShouldBe(expected, $"{end.Message}\nstdout: {TestBackend.Out(handle)}\nstderr: {TestBackend.Err(handle)}");
        return handle;
    }

    private static string Id(int n) => n.ToString(CultureInfo.InvariantCulture);

    [ContainerFact]
    public async Task Container_RunsAsTheTenantsUidAndProjectGroup_NoCapabilitiesNoNewPrivs_TheImagesFiles()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();
        var a = tenants.A;

        var handle = await RunToEndAsync(t, InContainer(t.JobAs(1, a,
            "id -u; id -g; id -G; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status; readlink /bin/sh; echo \"env=$GPUC_JOB_ID:$MY_VAR:$HOME:$GPUC_CONTAINER_IMAGE\"; pwd",
            env: new Dictionary<string, string> { ["MY_VAR"] = "it's mine" }) with { WorkingDirectory = "/tmp" }));

        var lines = TestBackend.Out(handle).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines[0].ShouldBe(Id(a.Uid), TestBackend.Err(handle));
        lines[1].ShouldBe(Id(a.Gid));
        lines[2].ShouldBe(Id(a.Gid)); // the project's group only: no supplementary group from the image or the host
        lines.Where(l => l.StartsWith("Cap", StringComparison.Ordinal)).ShouldAllBe(l => l.EndsWith("0000000000000000", StringComparison.Ordinal));
        lines.Count(l => l.StartsWith("Cap", StringComparison.Ordinal)).ShouldBe(5);
        lines.ShouldContain("NoNewPrivs:\t1");
        lines.ShouldContain("busybox"); // the image's /bin/sh, not the host's dash
        lines.ShouldContain($"env=1:it's mine:/tmp:{Image}");
        lines[^1].ShouldBe("/tmp");

        // Files the container makes on a mount are the tenant's: see the mount test. The host's process is the tenant's too.
        TenantAccounts.Owner(handle.StdoutPath!).ShouldBe($"{a.Uid}:{a.Gid}:640");
    }

    [ContainerFact]
    public async Task Container_Environment_HasNothingOfTheServers_NotEvenOnPodmansCommandLine()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();
        Environment.SetEnvironmentVariable("GPUC_TEST_SERVER_SECRET", "server-secret-value");
        try
        {
            var handle = await RunToEndAsync(t, InContainer(t.JobAs(2, tenants.A, "env; cat /proc/1/cmdline; echo; ls /proc",
                env: new Dictionary<string, string> { ["API_KEY"] = "tenant-secret-value" })));

            var output = TestBackend.Out(handle);
            output.ShouldNotContain("server-secret-value");
            output.ShouldContain("API_KEY=tenant-secret-value");
            // The job's own variables travel in a private file, not as podman arguments that every user can read in /proc.
            var envFile = Path.Combine(t.StateDirectory, "jobs", "2", "container.env");
            TenantAccounts.Owner(envFile).ShouldBe("0:0:600");
        }
        finally
        {
            Environment.SetEnvironmentVariable("GPUC_TEST_SERVER_SECRET", null);
        }
    }

    [ContainerFact]
    public async Task Container_ReadsTheAdminTokenAndAnotherTenantsHome_ThroughAMount_Rejected()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();
        var a = tenants.A;

        // Podman runs as root and could bind anything: the backend checks each source as the tenant first.
        var secret = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(3, a, "cat /s"), Image, new ContainerMount(tenants.Secret, "/s", true))));
        secret.Message.ShouldContain($"'{tenants.Secret}' cannot be read by the job's user");

        var home = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(4, a, "ls /b"), Image, new ContainerMount(tenants.B.Home, "/b", true))));
        home.Message.ShouldContain($"'{tenants.B.Home}' cannot be read by the job's user");

        var dataDir = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(5, a, "ls /state"), Image, new ContainerMount(t.StateDirectory, "/state", true))));
        dataDir.Message.ShouldContain("job's user");

        // A symlink in the tenant's own home that points at the secret: resolved as the tenant, refused the same way.
        var link = Path.Combine(a.Home, "link-to-secret");
        File.Delete(link);
        File.CreateSymbolicLink(link, tenants.Secret);
        var viaLink = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(6, a, "cat /s"), Image, new ContainerMount(link, "/s", true))));
        viaLink.Message.ShouldContain("cannot be read by the job's user");

        // Writing needs write access: B's files cannot be mounted read-write by A even where A may read them.
        var shared = Path.Combine(tenants.Root, "b-readable");
        Directory.CreateDirectory(shared);
        TenantAccounts.Run("chown", $"{tenants.B.Uid}:{tenants.B.Gid}", shared);
        TenantAccounts.Run("chmod", "0755", shared);
        var rw = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(7, a, "touch /x/y"), Image, new ContainerMount(shared, "/x", false))));
        rw.Message.ShouldContain("cannot be written by the job's user");
        File.Exists(tenants.Secret).ShouldBeTrue();
    }

    [ContainerFact]
    public async Task Container_OwnMount_WritesFilesAsTheTenant_AndCannotReadRootFilesInIt()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();
        var a = tenants.A;
        var work = Path.Combine(a.Home, "work");
        Directory.CreateDirectory(work);
        TenantAccounts.Run("chown", $"{a.Uid}:{a.Gid}", work);
        var rootOnly = Path.Combine(work, "root-only");
        File.WriteAllText(rootOnly, "root-secret\n");
        TenantAccounts.Run("chmod", "0600", rootOnly);

        var handle = await RunToEndAsync(t, InContainer(t.JobAs(8, a, "echo made > /work/out.txt; cat /work/root-only; cat /data/admin-token; true") with { WorkingDirectory = "/work" },
            Image, new ContainerMount(work, "/work", false)));

        TenantAccounts.Owner(Path.Combine(work, "out.txt")).ShouldStartWith($"{a.Uid}:{a.Gid}:");
        File.ReadAllText(Path.Combine(work, "out.txt")).ShouldBe("made\n");
        var err = TestBackend.Err(handle);
        err.ShouldContain("can't open '/work/root-only': Permission denied", Case.Sensitive, err); // busybox cat
        TestBackend.Out(handle).ShouldNotContain("root-secret");
        err.ShouldContain("can't open '/data/admin-token': No such file"); // nothing of the host but what it asked for
    }

    [ContainerFact]
    public async Task Container_SeesOnlyItsOwnGpuDevices()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();

        var handle = await RunToEndAsync(t, InContainer(t.JobAs(9, tenants.A, "ls /dev | grep nvidia; echo cuda=$CUDA_VISIBLE_DEVICES", gpus: [1, 2])));

        TestBackend.Out(handle).ShouldBe("nvidia1\nnvidia2\ncuda=1,2\n", TestBackend.Err(handle));
    }

    [ContainerFact]
    public async Task Container_Cancel_StopsTheContainer_AndLeavesNoneBehind()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();
        var job = InContainer(t.JobAs(10, tenants.A, "echo up; exec sleep 300"));
        var handle = await t.StartAsync(job);
        await TestBackend.WaitForAsync(() => TestBackend.Out(handle).Contains("up", StringComparison.Ordinal), "the container to start");
        var name = t.Backend.ContainerName(10);
        TenantAccounts.Run("/usr/bin/podman", "--runtime", "runc", "ps", "--format", "{{.Names}}").ShouldContain(name);

        await t.Backend.CancelAsync(10, TimeSpan.FromSeconds(1), CancellationToken.None);
        (await t.PollUntilEndAsync(10)).Last(e => e.JobId == 10).Kind.ShouldBe(BackendEventKind.Cancelled);

        await TestBackend.WaitForAsync(
            () => !TenantAccounts.Run("/usr/bin/podman", "--runtime", "runc", "ps", "--all", "--format", "{{.Names}}").Contains(name, StringComparison.Ordinal),
            "the container to be removed");
    }

    [ContainerFact]
    public async Task Container_FromALocalOciArchive_TheTenantMustBeAbleToReadIt()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();
        var archive = Path.Combine(tenants.Root, "busybox-oci.tar");
        if (!File.Exists(archive))
        {
            TenantAccounts.Run("/usr/bin/podman", "--runtime", "runc", "save", "--format", "oci-archive", "-o", archive, Image);
        }

        TenantAccounts.Run("chmod", "0644", archive);
        var handle = await RunToEndAsync(t, InContainer(t.JobAs(11, tenants.A, "id -u"), "oci-archive:" + archive));
        TestBackend.Out(handle).Trim().ShouldBe(Id(tenants.A.Uid));

        TenantAccounts.Run("chmod", "0600", archive);
        var refused = await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(12, tenants.A, "id -u"), "oci-archive:" + archive)));
        refused.Message.ShouldContain("cannot be read by the job's user");
    }

    [ContainerFact]
    public async Task Container_BadImageOrMount_RejectedWithTheReason()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();

        (await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(13, tenants.A, "true"), "--privileged"))))
            .Message.ShouldContain("not a container image reference");
        (await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(14, tenants.A, "true"), Image, new ContainerMount("relative", "/x", true)))))
            .Message.ShouldContain("must be an absolute path");
        (await Should.ThrowAsync<JobStartRejectedException>(() => t.StartAsync(InContainer(t.JobAs(15, tenants.A, "true"), Image, new ContainerMount(tenants.A.Home, "/x,ro=false", true)))))
            .Message.ShouldContain("without commas");
    }
}
