using System.Globalization;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests.Tenants;

/// <summary>
/// The cores and memory the engine placed, enforced in the job's sandbox (cgroups for processes, podman's limits for
/// containers): a tenant's job sees what it got, cannot leave it or raise it, and is killed when it takes more memory.
/// </summary>
[Collection(ProcessCollection.Name)]
public sealed class ResourceLimitTests(TenantAccounts tenants) : IClassFixture<TenantAccounts>
{
    // The job's memory cgroup directory and its limit, on v1 or v2, as the job itself finds them.
    private const string ShowLimits =
        """
        grep Cpus_allowed_list /proc/self/status | tr -d '\t '
        echo "nproc=$(nproc) GPUC_CPUS=$GPUC_CPUS GPUC_CPU_LIST=$GPUC_CPU_LIST GPUC_MEMORY_MIB=$GPUC_MEMORY_MIB"
        p=$(grep -E '^[0-9]+:memory:' /proc/self/cgroup | cut -d: -f3)
        if [ -n "$p" ]; then mcg=/sys/fs/cgroup/memory$p; echo "mem=$(cat $mcg/memory.limit_in_bytes)"; else mcg=/sys/fs/cgroup$(grep '^0::' /proc/self/cgroup | cut -d: -f3); echo "mem=$(cat $mcg/memory.max)"; fi
        c=$(grep -E '^[0-9]+:cpuset:' /proc/self/cgroup | cut -d: -f3)
        if [ -n "$c" ]; then ccg=/sys/fs/cgroup/cpuset$c; else ccg=$mcg; fi
        """;

    private TestBackend NewBackend(Action<LocalBackendOptions>? more = null) => new(configure: o =>
    {
        o.GpuDeviceDirectory = tenants.DeviceDirectory;
        o.ScratchDirectory = tenants.Root;
        o.ContainerPull = "never";
        more?.Invoke(o);
    });

    private static BackendJob Placed(BackendJob job, int? cpus, long? memoryMiB) =>
        job with { Nodes = [new AssignedNode(TestBackend.Node, [], []) { Cpus = cpus, MemoryMiB = memoryMiB }] };

    private static string Line(BackendHandle h, string prefix) =>
        TestBackend.Out(h).Split('\n').FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal)) ?? $"(no line {prefix} in: {TestBackend.Out(h)} / {TestBackend.Err(h)})";

    private static JobFile State(TestBackend t, long id) => JobFile.Load(Path.Combine(t.StateDirectory, "jobs", id.ToString(CultureInfo.InvariantCulture), "job.json"))!;

    [RootFact]
    public async Task Jobs_SeeTheirOwnMemoryLimit_WhenTheServerMadeTheCgroupsUnderUmask077()
    {
        RootFactAttribute.Require();

        // `gpuc serve` runs with umask 077: the backend's own cgroup folder it made is 0700 (and so is a job's), and a job
        // running as its researcher could not reach its own limits. The backend sets their modes whatever the umask.
        var cgroups = JobCgroups.Detect("test");
        foreach (var c in new[] { cgroups.Cpuset, cgroups.Memory })
        {
            if (c is not null)
            {
                var own = Path.Combine(c.Base, "gpucommons");
                Directory.CreateDirectory(own);
                File.SetUnixFileMode(own, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        await using var t = NewBackend();
        var a = await t.StartAsync(Placed(t.JobAs(1, tenants.A, ShowLimits + "\necho ready; exec sleep 300"), 1, 192));
        await TestBackend.WaitForAsync(() => TestBackend.Out(a).Contains("ready", StringComparison.Ordinal), "the job to start");
        Line(a, "mem=").ShouldBe("mem=" + (192L << 20).ToString(CultureInfo.InvariantCulture));
        File.GetUnixFileMode(Path.Combine(cgroups.Memory!.Base, "gpucommons")).HasFlag(UnixFileMode.OtherRead).ShouldBeFalse("other accounts may pass through the backend's cgroup, not list the jobs in it");
    }

    [RootFact]
    public async Task Jobs_SeeTheirOwnCoresAndMemory_CoresAreDisjoint_AndCgroupsGoWithTheJob()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var a = await t.StartAsync(Placed(t.JobAs(1, tenants.A, ShowLimits + "\necho ready; exec sleep 300"), 1, 256));
        var b = await t.StartAsync(Placed(t.JobAs(2, tenants.B, ShowLimits + "\necho ready; exec sleep 300"), 1, 128));
        await TestBackend.WaitForAsync(() => TestBackend.Out(a).Contains("ready", StringComparison.Ordinal) && TestBackend.Out(b).Contains("ready", StringComparison.Ordinal), "both jobs to start");

        var aCpus = Line(a, "Cpus_allowed_list:")["Cpus_allowed_list:".Length..];
        var bCpus = Line(b, "Cpus_allowed_list:")["Cpus_allowed_list:".Length..];
        JobCgroups.ParseList(aCpus).Length.ShouldBe(1, TestBackend.Out(a));
        JobCgroups.ParseList(bCpus).Length.ShouldBe(1, TestBackend.Out(b));
        aCpus.ShouldNotBe(bCpus); // disjoint between concurrent jobs
        Line(a, "nproc=").ShouldBe($"nproc=1 GPUC_CPUS=1 GPUC_CPU_LIST={aCpus} GPUC_MEMORY_MIB=256");
        Line(a, "mem=").ShouldBe("mem=" + (256L << 20).ToString(CultureInfo.InvariantCulture));
        Line(b, "mem=").ShouldBe("mem=" + (128L << 20).ToString(CultureInfo.InvariantCulture));
        var events = await t.PollUntilAsync(e => e.Count(x => x.Kind == BackendEventKind.Started) == 2);
        events.Single(e => e.JobId == 1 && e.Kind == BackendEventKind.Started).Message.ShouldNotBeNull().ShouldContain($"enforced: cores {aCpus}");

        // Every core the machine gives jobs is held when it has two: a third job cannot get one (the start is retried later).
        if (JobCgroups.AllowedCpus().Length == 2)
        {
            var third = await Should.ThrowAsync<InvalidOperationException>(() => t.StartAsync(Placed(t.JobAs(3, tenants.A, "true"), 1, 64)));
            third.Message.ShouldContain("not held by other running jobs");
        }

        var dirs = State(t, 1).Cgroups;
        dirs.ShouldNotBeEmpty();
        dirs.ShouldAllBe(d => Directory.Exists(d));
        await t.Backend.CancelAsync(1, TimeSpan.Zero, CancellationToken.None);
        await t.PollUntilEndAsync(1);
        await TestBackend.WaitForAsync(() =>
        {
            t.Backend.PollAsync(CancellationToken.None).GetAwaiter().GetResult();
            return dirs.All(d => !Directory.Exists(d));
        }, "the ended job's cgroups to be removed");
        var dirs2 = State(t, 2).Cgroups;
        await t.Backend.CancelAsync(2, TimeSpan.Zero, CancellationToken.None);
        await t.PollUntilEndAsync(2);
        await t.Backend.DisposeAsync();
        dirs2.ShouldNotBeEmpty();
        dirs2.Where(Directory.Exists).ShouldBeEmpty("gone by the time the backend is disposed");
    }

    [RootFact]
    public async Task HostileJob_CannotWidenItsCpuset_RaiseItsLimits_NorLeaveItsCgroup()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        var all = JobCgroups.FormatList(JobCgroups.AllowedCpus());
        var h = await t.StartAsync(Placed(t.JobAs(10, tenants.A, ShowLimits + "\n" + $$"""
            taskset -pc {{all}} $$ >/dev/null 2>&1; grep Cpus_allowed_list /proc/self/status | tr -d '\t ' | sed 's/^/after-taskset-/'
            sh -c 'grep Cpus_allowed_list /proc/self/status' | tr -d '\t ' | sed 's/^/child-/'
            (echo 999999999999 > "$mcg/memory.limit_in_bytes") 2>&1; (echo max > "$mcg/memory.max") 2>&1
            (echo {{all}} > "$ccg/cpuset.cpus") 2>&1
            (echo $$ > /sys/fs/cgroup/memory/cgroup.procs) 2>&1; (echo $$ > /sys/fs/cgroup/cpuset/cgroup.procs) 2>&1
            (echo $$ > "$(dirname "$mcg")/cgroup.procs") 2>&1
            grep -E '^[0-9]+:(memory|cpuset):' /proc/self/cgroup | sed 's/^/still-/'
            if [ -e "$mcg/memory.limit_in_bytes" ]; then echo "mem-after=$(cat $mcg/memory.limit_in_bytes)"; else echo "mem-after=$(cat $mcg/memory.max)"; fi
            """), 1, 96));
        var end = (await t.PollUntilEndAsync(10)).Last(e => e.JobId == 10);
        var output = TestBackend.Out(h);

        var cpus = Line(h, "Cpus_allowed_list:");
        JobCgroups.ParseList(cpus["Cpus_allowed_list:".Length..]).Length.ShouldBe(1, output);
        Line(h, "after-taskset-").ShouldBe("after-taskset-" + cpus, output);
        Line(h, "child-").ShouldBe("child-" + cpus, output);
        output.Split('\n').Count(l => l.Contains("Permission denied", StringComparison.Ordinal)).ShouldBeGreaterThanOrEqualTo(5, output);
        output.Split('\n').Where(l => l.StartsWith("still-", StringComparison.Ordinal)).ShouldAllBe(l => l.Contains("gpucommons/job-10-", StringComparison.Ordinal), output);
        Line(h, "mem-after=").ShouldBe("mem-after=" + (96L << 20).ToString(CultureInfo.InvariantCulture), output);
        end.Kind.ShouldBe(BackendEventKind.Finished, end.Message);
    }

    [RootFact]
    public async Task Job_ExceedingItsMemory_IsKilledByTheKernel_AndItsOutcomeSaysSo()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        // tail keeps a line without a newline in memory: 400 MB of zeros is one such line, against a 64 MiB limit.
        var h = await t.StartAsync(Placed(t.JobAs(20, tenants.A, "echo start; head -c 400000000 /dev/zero | tail > /dev/null"), 1, 64));

        var end = (await t.PollUntilEndAsync(20)).Last(e => e.JobId == 20);

        end.Kind.ShouldBe(BackendEventKind.Failed, $"{end.Message}; {TestBackend.Out(h)} {TestBackend.Err(h)}");
        end.ExitCode.ShouldBe(137); // SIGKILL
        end.Message.ShouldNotBeNull().ShouldContain("out of memory: the job exceeded its memory limit of 64 MiB");
    }

    [RootFact]
    public async Task LimitsThatCannotBeEnforced_AreSaidInTheLogAndTheStartEvent_NeverSilently()
    {
        RootFactAttribute.Require();
        await using var t = NewBackend();
        t.Backend.Cgroups = JobCgroups.Detect("proc /proc proc rw 0 0\n", "0::/\n", _ => null, "test");

        var h = await t.StartAsync(Placed(t.JobAs(30, tenants.A, "echo GPUC_CPUS=$GPUC_CPUS"), 1, 64));
        var events = await t.PollUntilEndAsync(30);

        var started = events.Single(e => e.JobId == 30 && e.Kind == BackendEventKind.Started);
        started.Message.ShouldNotBeNull().ShouldContain("NOT enforced");
        started.Message.ShouldContain("no cgroup hierarchy offers the cpuset controller");
        TestBackend.Err(h).ShouldStartWith("gpuc: cores ");
        TestBackend.Err(h).ShouldContain("64 MiB memory NOT enforced");
        TestBackend.Out(h).Trim().ShouldBe("GPUC_CPUS=1"); // its share is still its own, and it is told
    }

    [ContainerFact]
    public async Task Container_GetsTheSameCoresAndMemory_ThroughPodman()
    {
        ContainerFactAttribute.Require();
        await using var t = NewBackend();
        var h = await t.StartAsync(Placed(t.JobAs(40, tenants.A, "grep Cpus_allowed_list /proc/self/status | tr -d '\\t '; echo nproc=$(nproc); echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)") with
        {
            Container = new ContainerSpec(ContainerFactAttribute.Image, []),
        }, 1, 128));
        var events = await t.PollUntilEndAsync(40);

        var end = events.Last(e => e.JobId == 40);
        end.Kind.ShouldBe(BackendEventKind.Finished, $"{end.Message}; {TestBackend.Err(h)}");
        var cpus = State(t, 40).Cpus.ShouldNotBeNull();
        Line(h, "Cpus_allowed_list:").ShouldBe("Cpus_allowed_list:" + cpus);
        Line(h, "nproc=").ShouldBe("nproc=1");
        Line(h, "mem=").ShouldBe("mem=" + (128L << 20).ToString(CultureInfo.InvariantCulture));
        events.Single(e => e.JobId == 40 && e.Kind == BackendEventKind.Started).Message.ShouldNotBeNull().ShouldContain("enforced by podman: --cpuset-cpus " + cpus + ", --memory 128m");
    }
}
