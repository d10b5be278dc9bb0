using System.Text.Json.Nodes;
using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

/// <summary>The per-job OCI bundle for Slurm's <c>--container</c>: the container's only id is the job's user.</summary>
public sealed class OciBundleTests
{
    private static BackendJob Job(PosixIdentity? who, params ContainerMount[] mounts) =>
        Jobs.Make(7, ["n1"], 1) with { RunAs = who, Container = new ContainerSpec("/shared/images/torch", mounts) };

    [Fact]
    public void SiteConfig_IsKept_ButItsIdsRootAndLimitsAreTheJobs()
    {
        const string Site = """
            { "ociVersion": "1.0.2", "root": { "path": "rootfs", "readonly": false },
              "process": { "user": { "uid": 1000, "gid": 1000 }, "env": ["PATH=/opt/conda/bin:/bin"], "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ] },
              "mounts": [ { "destination": "/proc", "type": "proc", "source": "proc" } ],
              "linux": { "uidMappings": [ { "containerID": 0, "hostID": 0, "size": 65536 } ], "namespaces": [ { "type": "mount" } ] } }
            """;
        var c = JsonNode.Parse(SlurmOciBundle.BuildConfig(Job(Jobs.Alice, new ContainerMount("/data/set", "/data", true)), "/shared/images/torch", Site))!;

        c["root"]!["path"]!.GetValue<string>().ShouldBe("rootfs");
        SlurmOciBundle.RootFileSystem("/shared/images/torch", Site).ShouldBe("/shared/images/torch/rootfs");
        SlurmOciBundle.RootFileSystem("/shared/images/torch", """{ "root": { "path": "/images/torch-root" } }""").ShouldBe("/images/torch-root");
        c["root"]!["readonly"]!.GetValue<bool>().ShouldBeTrue();
        c["process"]!["user"]!["uid"]!.GetValue<int>().ShouldBe(0);
        c["process"]!["env"]![0]!.GetValue<string>().ShouldBe("PATH=/opt/conda/bin:/bin");
        c["process"]!.AsObject().ContainsKey("rlimits").ShouldBeFalse();
        c["process"]!["noNewPrivileges"]!.GetValue<bool>().ShouldBeTrue();
        // Root inside is Alice outside, and no other host id is mapped (the site's 65536-wide root mapping is gone).
        c["linux"]!["uidMappings"]!.ToJsonString().ShouldBe("""[{"containerID":0,"hostID":1500,"size":1}]""");
        c["linux"]!["gidMappings"]!.ToJsonString().ShouldBe("""[{"containerID":0,"hostID":2500,"size":1}]""");
        c["linux"]!["namespaces"]!.AsArray().Select(n => n!["type"]!.GetValue<string>()).ShouldBe(["mount", "user"]);
        var mounts = c["mounts"]!.AsArray().Select(m => m!["destination"]!.GetValue<string>()).ToList();
        mounts.ShouldBe(["/proc", "/tmp", "/data"]);
    }

    [Fact]
    public void BareRootFileSystem_GetsTheRootlessDefaults()
    {
        var c = JsonNode.Parse(SlurmOciBundle.BuildConfig(Job(Jobs.Alice), "/shared/images/busybox", null))!;
        SlurmOciBundle.RootFileSystem("/shared/images/busybox", null).ShouldBe("/shared/images/busybox/rootfs");
        c["process"]!["capabilities"]!["bounding"]!.AsArray().Count.ShouldBe(0);
        c["linux"]!["namespaces"]!.AsArray().Select(n => n!["type"]!.GetValue<string>()).ShouldContain("user");
    }

    [Fact]
    public void TheImagesDirectoriesAndFiles_AreBoundReadOnly_ItsLinksAreNot_AndProcSysDevTmpNeverComeFromIt()
    {
        var root = Directory.CreateTempSubdirectory("gpuc-rootfs-").FullName;
        try
        {
            foreach (var d in new[] { "usr", "etc", "proc", "tmp", "dev", "sys" })
            {
                Directory.CreateDirectory(Path.Combine(root, d));
            }

            File.WriteAllText(Path.Combine(root, "marker"), "x");
            File.CreateSymbolicLink(Path.Combine(root, "bin"), "usr/bin");
            var entries = SlurmOciBundle.ImageEntries(root);
            entries.Select(e => e.Name).ShouldBe(["bin", "etc", "marker", "usr"]);
            entries.Single(e => e.Name == "bin").LinkTarget.ShouldBe("usr/bin");

            var c = JsonNode.Parse(SlurmOciBundle.BuildConfig(Job(Jobs.Alice), "/i", null, entries))!;
            var binds = c["mounts"]!.AsArray().Where(m => m!["source"]!.GetValue<string>().StartsWith(root, StringComparison.Ordinal)).ToList();
            binds.Select(m => m!["destination"]!.GetValue<string>()).ShouldBe(["/etc", "/marker", "/usr"]);
            binds.ShouldAllBe(m => m!["options"]!.AsArray().Any(o => o!.GetValue<string>() == "ro"));
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Theory]
    [InlineData("relative/data", "/data")]
    [InlineData("/data", "data")]
    [InlineData("/data\n", "/data")]
    public void AMountThatIsNotAbsolute_IsRefusedWithTheReason(string source, string target) =>
        Should.Throw<ArgumentException>(() => SlurmOciBundle.BuildConfig(Job(Jobs.Alice, new ContainerMount(source, target, false)), "/i", null))
            .Message.ShouldContain("absolute paths");

    [Fact]
    public void ASiteConfigThatIsNotJson_IsRefusedWithTheReason() =>
        Should.Throw<ArgumentException>(() => SlurmOciBundle.BuildConfig(Job(Jobs.Alice), "/i", "{ not json"))
            .Message.ShouldContain("/i/config.json is not valid JSON");
}
