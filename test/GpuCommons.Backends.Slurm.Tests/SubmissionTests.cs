using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

public class SubmissionTests
{
    [Fact]
    public void Create_MultiNodeGang_PinsNodesGpusTimeAndName()
    {
        var job = Jobs.Make(42, ["n1", "n2"], 8, TimeSpan.FromSeconds(90));

        var s = SlurmSubmission.Create(job, new SlurmBackendOptions(), "gpu");

        s.JobName.ShouldBe("gpuc-42");
        s.Arguments.ShouldContain("--job-name=gpuc-42");
        s.Arguments.ShouldContain("--nodelist=n1,n2");
        s.Arguments.ShouldContain("--nodes=2");
        s.Arguments.ShouldContain("--gpus-per-node=8");
        s.Arguments.ShouldContain("--time=2"); // minutes, rounded up
        s.Arguments.ShouldContain("--export=NONE");
        s.Arguments.ShouldContain("--no-requeue");
        s.Arguments.ShouldContain("--partition=gpu");
        s.Arguments.ShouldContain("--parsable");
        s.Arguments.ShouldContain("--output=/tmp/gpuc-test-logs/gpuc-42.out");
        s.StdoutPath.ShouldBe("/tmp/gpuc-test-logs/gpuc-42.out");
        s.Script.ShouldContain("exec srun --export=ALL --ntasks-per-node=1 --kill-on-bad-exit=1 --gpus-per-node=8 -- '/bin/true'");
    }

    [Fact]
    public void Create_SingleNode_ExecsCommandQuotedWithEnvironment()
    {
        var env = new Dictionary<string, string> { ["FOO"] = "it's $HOME", ["CUDA_VISIBLE_DEVICES"] = "7", ["SLURM_X"] = "1" };
        var job = Jobs.Make(7, ["n3"], 2, command: ["python", "-c", "print('hi')"], env: env, attempt: 2);

        var s = SlurmSubmission.Create(job, new SlurmBackendOptions(), null);

        s.JobName.ShouldBe("gpuc-7-r2");
        s.Arguments.ShouldNotContain(a => a.StartsWith("--partition", StringComparison.Ordinal));
        s.Script.ShouldStartWith("#!/bin/bash\n");
        s.Script.ShouldContain("export FOO='it'\\''s $HOME'\n");
        s.Script.ShouldNotContain("CUDA_VISIBLE_DEVICES"); // Slurm sets it for the GPUs it allocated
        s.Script.ShouldNotContain("SLURM_X");
        s.Script.ShouldContain("export PATH=");
        s.Script.ShouldContain("exec 'python' '-c' 'print('\\''hi'\\'')'\n");
        s.Script.ShouldNotContain("srun");
    }

    [Fact]
    public void Create_UnequalGpusPerNode_Throws()
    {
        var job = Jobs.Make(1, ["n1", "n2"], 8) with
        {
            Nodes = [new AssignedNode("n1", [0, 1], []), new AssignedNode("n2", [0], [])],
        };

        Should.Throw<ArgumentException>(() => SlurmSubmission.Create(job, new SlurmBackendOptions(), null)).Message.ShouldContain("same GPU count");
    }

    [Theory]
    [InlineData("n1,n2")]
    [InlineData("n[1-2]")]
    [InlineData("")]
    public void Create_BadNodeName_Throws(string node)
    {
        var job = Jobs.Make(1, [node], 1);
        Should.Throw<ArgumentException>(() => SlurmSubmission.Create(job, new SlurmBackendOptions(), null));
    }

    [Fact]
    public void Create_BadEnvironmentName_Throws()
    {
        var job = Jobs.Make(1, ["n1"], 1, env: new Dictionary<string, string> { ["A B"] = "x" });
        Should.Throw<ArgumentException>(() => SlurmSubmission.Create(job, new SlurmBackendOptions(), null));
    }
}

public class ContainerSubmissionTests
{
    private static BackendJob ContainerJob(string image, params ContainerMount[] mounts) =>
        Jobs.Make(9, ["n1"], 2, command: ["python", "train.py"]) with
        {
            Container = new ContainerSpec(image, mounts),
            WorkingDirectory = "/workspace",
            RunAs = Jobs.Alice,
        };

    [Fact]
    public void Create_PyxisContainer_SrunWithImageMountsAndWorkdir_HostChdirIsTheSpool()
    {
        var job = ContainerJob("registry.example.org/team/pytorch:24.05", new ContainerMount("/home/alice/data", "/data", true), new ContainerMount("/scratch/alice", "/workspace", false));

        var s = SlurmSubmission.Create(job, new SlurmBackendOptions { ContainerMode = SlurmContainerMode.Pyxis }, null);

        s.Script.ShouldContain("exec srun --export=ALL --ntasks-per-node=1 --kill-on-bad-exit=1 --gpus-per-node=2"
            + " --container-image='registry.example.org#team/pytorch:24.05'"
            + " --container-mounts='/home/alice/data:/data:ro,/scratch/alice:/workspace'"
            + " --container-workdir='/workspace' -- 'python' 'train.py'\n");
        s.Script.ShouldNotContain("cd -- '/workspace'"); // a path inside the container, not on the node
        s.Arguments.ShouldContain("--chdir=" + SlurmSubmission.LogDirectoryFor(job, new SlurmBackendOptions()));
        s.Arguments.ShouldNotContain(a => a.StartsWith("--container=", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_OciContainer_SbatchContainerBundle()
    {
        var job = ContainerJob("/shared/bundles/pytorch");

        var options = new SlurmBackendOptions { ContainerMode = SlurmContainerMode.Oci };
        var s = SlurmSubmission.Create(job, options, null);

        // The job's own bundle (made from the image by the backend), and a script any image can run.
        s.Arguments.ShouldContain("--container=" + SlurmSubmission.BundleDirectoryFor(job, options));
        s.Script.ShouldStartWith("#!/bin/sh\n");
        s.Script.ShouldContain("exec 'python' 'train.py'\n");
        s.Script.ShouldNotContain("--container-image");
    }

    [Theory]
    [InlineData(SlurmContainerMode.None, "/shared/bundle", "runs no container jobs")]
    [InlineData(SlurmContainerMode.Oci, "registry.example.org/team/img:1", "unpacked OCI bundle")]
    public void Create_ContainerTheClusterCannotRun_RejectedWithTheReason(SlurmContainerMode mode, string image, string reason)
    {
        Should.Throw<JobStartRejectedException>(() => SlurmSubmission.Create(ContainerJob(image), new SlurmBackendOptions { ContainerMode = mode }, null))
            .Message.ShouldContain(reason);
    }

    [Fact]
    public void Create_OciMountNotAbsolute_Rejected_PyxisMountWithColon_Rejected()
    {
        SlurmSubmission.Create(ContainerJob("/b", new ContainerMount("/a", "/b", true)), new SlurmBackendOptions { ContainerMode = SlurmContainerMode.Oci }, null);
        Should.Throw<JobStartRejectedException>(() => SlurmSubmission.Create(ContainerJob("/b", new ContainerMount("a", "/b", true)), new SlurmBackendOptions { ContainerMode = SlurmContainerMode.Oci }, null))
            .Message.ShouldContain("absolute paths");
        Should.Throw<JobStartRejectedException>(() => SlurmSubmission.Create(ContainerJob("img", new ContainerMount("/a:b", "/b", true)), new SlurmBackendOptions { ContainerMode = SlurmContainerMode.Pyxis }, null))
            .Message.ShouldContain("without ',' or ':'");
    }

    [Theory]
    [InlineData("registry.example.org/team/img:1", "registry.example.org#team/img:1")]
    [InlineData("registry.example.org:5000/img", "registry.example.org:5000#img")]
    [InlineData("ubuntu:24.04", "ubuntu:24.04")]
    [InlineData("nvidia/cuda:12.4", "nvidia/cuda:12.4")]
    [InlineData("/shared/images/pytorch.sqsh", "/shared/images/pytorch.sqsh")]
    public void PyxisImage_RegistryHostBecomesEnrootsHash(string image, string expected) =>
        SlurmSubmission.PyxisImage(image).ShouldBe(expected);
}
