using System.Globalization;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>Which cgroup hierarchy enforces a job's cores and memory, and what is written where.</summary>
public sealed class JobCgroupsTests
{
    // This machine's kind: v1 controllers, and a unified (v2) hierarchy that hands out no cpuset or memory.
    private const string HybridMounts =
        """
        cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
        cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
        """;

    private const string HybridSelf = "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n";

    [Fact]
    public void Detect_Hybrid_UsesV1_UnderTheBackendsOwnCgroups()
    {
        var cg = JobCgroups.Detect(HybridMounts, HybridSelf, p => p.EndsWith("cgroup.controllers", StringComparison.Ordinal) ? "hugetlb\n" : null, "s");

        cg.Cpuset.ShouldBe(new CgroupController(1, "/sys/fs/cgroup/cpuset"));
        cg.Memory.ShouldBe(new CgroupController(1, "/sys/fs/cgroup/memory/process_api/abc"));
        cg.Problem.ShouldBeNull();
    }

    [Fact]
    public void Detect_UnifiedWithControllers_UsesV2_BesideTheBackendsCgroup()
    {
        var cg = JobCgroups.Detect("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n", "0::/system.slice/gpuc.service\n",
            p => p == "/sys/fs/cgroup/system.slice/gpuc.service/cgroup.controllers" ? "cpuset cpu io memory pids\n" : null, "s");

        cg.Cpuset.ShouldBe(new CgroupController(2, "/sys/fs/cgroup/system.slice"));
        cg.Memory.ShouldBe(new CgroupController(2, "/sys/fs/cgroup/system.slice"));
    }

    [Fact]
    public void Detect_NoHierarchy_SaysWhichControllerIsMissing()
    {
        var cg = JobCgroups.Detect("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n", "0::/\n", _ => "pids\n", "s");

        cg.Cpuset.ShouldBeNull();
        cg.Memory.ShouldBeNull();
        cg.Problem.ShouldNotBeNull().ShouldContain("does not hand it to this process");
        cg.Problem.ShouldContain("cpuset");
        cg.Problem.ShouldContain("memory");
    }

    [Fact]
    public void Create_V2_OneCgroupWithCpusetCpusAndMemoryMax_ControllersEnabledOnTheWay()
    {
        var root = Path.Combine(Path.GetTempPath(), "gpuc-cg-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        try
        {
            var cg = JobCgroups.Detect($"cgroup2 {root} cgroup2 rw 0 0\n", "0::/\n", p => p == Path.Combine(root, "cgroup.controllers") ? "cpuset memory" : null, "s1");

            var made = cg.Create(7, "1,3", 512);

            var dir = Path.Combine(root, "gpucommons", "job-7-s1");
            made.Directories.ShouldBe([dir]);
            made.MemoryDirectory.ShouldBe(dir);
            made.MemoryVersion.ShouldBe(2);
            File.ReadAllText(Path.Combine(dir, "cpuset.cpus")).ShouldBe("1,3");
            File.ReadAllText(Path.Combine(dir, "memory.max")).ShouldBe((512L << 20).ToString(CultureInfo.InvariantCulture));
            File.ReadAllText(Path.Combine(root, "gpucommons", "cgroup.subtree_control")).ShouldBe("+memory"); // the last one written
            made.Description.ShouldBe("cores 1,3 (cgroup v2 cpuset.cpus), 512 MiB memory (cgroup v2 memory.max)");
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public void OomKills_ReadsV1AndV2Counters()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-oom-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
            File.WriteAllText(Path.Combine(dir, "memory.events"), "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n");
            JobCgroups.OomKills(dir, 1).ShouldBe(2);
            JobCgroups.OomKills(dir, 2).ShouldBe(1);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("0-3,8,10-11", new[] { 0, 1, 2, 3, 8, 10, 11 }, "0-3,8,10-11")]
    [InlineData("5", new[] { 5 }, "5")]
    [InlineData("1,0", new[] { 0, 1 }, "0-1")]
    public void CpuLists_ParseAndFormat(string text, int[] cpus, string formatted)
    {
        JobCgroups.ParseList(text).ShouldBe(cpus);
        JobCgroups.FormatList(cpus).ShouldBe(formatted);
    }
}
