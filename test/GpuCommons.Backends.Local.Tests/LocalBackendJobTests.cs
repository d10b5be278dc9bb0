using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>Real processes on this machine: start, exit codes, logs, environment, walltime, cancel, idempotence.</summary>
[Collection(ProcessCollection.Name)]
public sealed class LocalBackendJobTests
{
    [Fact]
    public async Task StartAsync_JobExitsZero_FinishedWithLogsAndEnvironment()
    {
        await using var t = new TestBackend();
        var job = t.Job(1, "echo out-$GPUC_JOB_ID; echo err-$GPUC_PROJECT >&2; echo cvd=$CUDA_VISIBLE_DEVICES; echo gpus=$GPUC_GPUS; echo extra=$EXTRA",
            gpus: [1, 3], env: new Dictionary<string, string> { ["EXTRA"] = "yes" });

        var handle = await t.StartAsync(job);
        var events = await t.PollUntilEndAsync(1);

        events.Select(e => e.Kind).ShouldBe([BackendEventKind.Started, BackendEventKind.Finished]);
        events[1].ExitCode.ShouldBe(0);
        events[1].Time.ShouldBeGreaterThanOrEqualTo(events[0].Time);
        handle.StdoutPath.ShouldBe(Path.Combine(t.LogDirectory, "job-1.out"));
        var stdout = t.Stdout(1);
        stdout.ShouldContain("out-1");
        stdout.ShouldContain("cvd=1,3");
        stdout.ShouldContain("gpus=2");
        stdout.ShouldContain("extra=yes");
        t.Stderr(1).ShouldContain("err-proj");
    }

    [Fact]
    public async Task StartAsync_JobExitsNonZero_FailedWithExitCode()
    {
        await using var t = new TestBackend();
        await t.StartAsync(t.Job(2, "echo about to fail; exit 3"));

        var end = (await t.PollUntilEndAsync(2)).Single(e => e.Kind != BackendEventKind.Started);

        end.Kind.ShouldBe(BackendEventKind.Failed);
        end.ExitCode.ShouldBe(3);
        end.Node.ShouldBe(TestBackend.Node);
    }

    [Fact]
    public async Task StartAsync_CommandNotFound_Failed127()
    {
        await using var t = new TestBackend();
        var job = t.Job(3, "unused") with { Command = ["/nonexistent/gpuc-no-such-program", "--flag"] };
        await t.StartAsync(job);

        var end = (await t.PollUntilEndAsync(3)).Single(e => e.Kind != BackendEventKind.Started);

        end.Kind.ShouldBe(BackendEventKind.Failed);
        end.ExitCode.ShouldBe(127);
    }

    [Fact]
    public async Task StartAsync_OneCommandLine_RunsThroughTheShell()
    {
        await using var t = new TestBackend();
        var job = t.Job(4, "unused") with { Command = ["echo one && echo two"] };
        await t.StartAsync(job);

        (await t.PollUntilEndAsync(4)).Last().Kind.ShouldBe(BackendEventKind.Finished);
        t.Stdout(4).ShouldBe("one\ntwo\n");
    }

    [Fact]
    public async Task StartAsync_ServerSecrets_NotPassedToTheJob()
    {
        Environment.SetEnvironmentVariable("GPUC_TOKEN", "secret-token");
        try
        {
            await using var t = new TestBackend();
            await t.StartAsync(t.Job(5, "echo token=${GPUC_TOKEN:-none}"));
            await t.PollUntilEndAsync(5);
            t.Stdout(5).ShouldContain("token=none");
        }
        finally
        {
            Environment.SetEnvironmentVariable("GPUC_TOKEN", null);
        }
    }

    [Fact]
    public async Task StartAsync_ServerEnvironment_NoneOfItReachesTheJob()
    {
        var canary = "GPUCT_CANARY_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        Environment.SetEnvironmentVariable(canary, "server-secret");
        try
        {
            await using var t = new TestBackend();
            await t.StartAsync(t.Job(13, "env"));
            await t.PollUntilEndAsync(13);
            var keys = t.Stdout(13).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=')[0]).ToList();
            keys.ShouldNotContain(canary);
            keys.Where(k => !k.StartsWith("GPUC_", StringComparison.Ordinal)).Order(StringComparer.Ordinal)
                .ShouldBe(["CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "HOME", "LANG", "LOGNAME", "PATH", "PWD", "USER"]);
        }
        finally
        {
            Environment.SetEnvironmentVariable(canary, null);
        }
    }

    [Fact]
    public async Task StartAsync_JobEnvironment_ReachesTheJobOnlyNotTheWrapper()
    {
        await using var t = new TestBackend();
        // Were LD_PRELOAD given to the wrapper too, its mv (after the command) would complain a second time.
        var env = new Dictionary<string, string> { ["LD_PRELOAD"] = "/nonexistent/gpuct-preload.so", ["ODD"] = "a b\n'c' \"$HOME\" `x` \\" };
        await t.StartAsync(t.Job(14, "printf '%s|' \"$ODD\"", env: env));
        await t.PollUntilEndAsync(14);

        t.Stdout(14).ShouldBe(env["ODD"] + "|");
        t.Stderr(14).Split('\n').Count(l => l.Contains("gpuct-preload.so", StringComparison.Ordinal)).ShouldBe(1, t.Stderr(14));
    }

    [Fact]
    public async Task StartAsync_NoWorkingDirectory_StartsInTheServerUsersHome()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (!Directory.Exists(home))
        {
            return;
        }

        await using var t = new TestBackend();
        await t.StartAsync(t.Job(15, "pwd"));
        await t.PollUntilEndAsync(15);
        t.Stdout(15).ShouldBe(home + "\n");
    }

    [Theory]
    [InlineData("empty command", "the command is empty")]
    [InlineData("blank program", "the command is empty")]
    [InlineData("missing working directory", "does not exist")]
    [InlineData("relative working directory", "must be an absolute path")]
    [InlineData("bad variable name", "not a valid environment variable name")]
    [InlineData("reserved variable name", "reserved for the backend")]
    [InlineData("argument over the kernel's limit", "the kernel takes at most")]
    [InlineData("zero walltime", "walltime must be positive")]
    public async Task StartAsync_JobThatCanNeverStart_RejectedWithTheReason(string fault, string reason)
    {
        await using var t = new TestBackend();
        var job = t.Job(16, "true");
        job = fault switch
        {
            "empty command" => job with { Command = [] },
            "blank program" => job with { Command = [" ", "x"] },
            "missing working directory" => job with { WorkingDirectory = Path.Combine(t.Root, "no-such-dir") },
            "relative working directory" => job with { WorkingDirectory = "work" },
            "bad variable name" => job with { Environment = new Dictionary<string, string> { ["A-B"] = "1" } },
            "reserved variable name" => job with { Environment = new Dictionary<string, string> { ["__GPUC_ENV_0"] = "PATH=/x" } },
            "argument over the kernel's limit" => job with { Command = ["echo", new string('x', 200_000)] },
            "zero walltime" => job with { Walltime = TimeSpan.Zero },
            _ => throw new ArgumentOutOfRangeException(nameof(fault)),
        };

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => t.Backend.StartAsync(job, CancellationToken.None));

        e.Message.ShouldContain(reason);
        e.Message.ShouldStartWith("Job 16: ");
        Directory.Exists(Path.Combine(t.StateDirectory, "jobs", "16")).ShouldBeFalse();
    }

    [Fact]
    public async Task StartAsync_StateAndLogs_PrivateToTheServer()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(17, "echo hi") with { LogDirectory = Path.Combine(t.LogDirectory, "17") });
        await t.PollUntilEndAsync(17);

        File.GetUnixFileMode(t.StateDirectory).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.GetUnixFileMode(Path.Combine(t.StateDirectory, "jobs", "17", "job.json")).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.GetUnixFileMode(Path.Combine(t.StateDirectory, "jobs", "17", "exitcode")).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.GetUnixFileMode(Path.Combine(t.LogDirectory, "17")).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.GetUnixFileMode(handle.StdoutPath!).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    [Fact]
    public async Task StartAsync_Job_GetsDefaultSignalDispositions()
    {
        if (!File.Exists("/usr/bin/env"))
        {
            return;
        }

        await using var t = new TestBackend();
        await t.StartAsync(t.Job(12, "grep SigIgn /proc/self/status; yes | head -n 2"));
        (await t.PollUntilEndAsync(12)).Last().Kind.ShouldBe(BackendEventKind.Finished);
        t.Stdout(12).ShouldBe("SigIgn:\t0000000000000000\ny\ny\n");
        t.Stderr(12).ShouldBeEmpty(); // yes died of SIGPIPE quietly instead of reporting a write error
    }

    [Fact]
    public async Task StartAsync_RealGpus_CudaVisibleDevicesHoldsUuids()
    {
        await using var t = new TestBackend(FakeNvidiaSmi.H100());
        await t.StartAsync(t.Job(6, "echo cvd=$CUDA_VISIBLE_DEVICES uuids=$GPUC_GPU_UUIDS", gpus: [0]));

        (await t.PollUntilEndAsync(6)).Last().Kind.ShouldBe(BackendEventKind.Finished);
        t.Stdout(6).ShouldContain($"cvd={Fixture.H100Uuid} uuids={Fixture.H100Uuid}");
    }

    [Fact]
    public async Task StartAsync_NoGpus_CudaVisibleDevicesEmpty()
    {
        await using var t = new TestBackend();
        await t.StartAsync(t.Job(7, "echo \"cvd=[${CUDA_VISIBLE_DEVICES-unset}]\""));
        await t.PollUntilEndAsync(7);
        t.Stdout(7).ShouldContain("cvd=[]");
    }

    [Fact]
    public async Task StartAsync_GpuTheNodeLacks_Throws()
    {
        await using var t = new TestBackend();
        var e = await Should.ThrowAsync<ArgumentException>(() => t.Backend.StartAsync(t.Job(8, "true", gpus: [9]), CancellationToken.None));
        e.Message.ShouldContain("no GPU 9");
    }

    [Fact]
    public async Task StartAsync_OtherNode_Throws()
    {
        await using var t = new TestBackend();
        var job = t.Job(9, "true") with { Nodes = [new AssignedNode("elsewhere", [0], [])] };
        var e = await Should.ThrowAsync<ArgumentException>(() => t.Backend.StartAsync(job, CancellationToken.None));
        e.Message.ShouldContain("elsewhere");
    }

    [Fact]
    public async Task StartAsync_Twice_StartsOnce()
    {
        await using var t = new TestBackend();
        var go = Path.Combine(t.Root, "go");
        var job = t.Job(10, $"echo started; while [ ! -e '{go}' ]; do sleep 0.05; done");

        var first = await t.StartAsync(job);
        var second = await t.StartAsync(job);
        second.ShouldBe(first);

        // A restarted server that starts it again (it never saved the handle) gets the same run too.
        var restarted = await t.NewBackendAsync();
        (await restarted.StartAsync(job, CancellationToken.None)).ExternalId.ShouldBe(first.ExternalId);

        await File.WriteAllTextAsync(go, "");
        var events = await t.PollUntilEndAsync(10, restarted);
        events.Count(e => e.Kind == BackendEventKind.Started).ShouldBe(1);
        events.Last().Kind.ShouldBe(BackendEventKind.Finished);
        t.Stdout(10).ShouldBe("started\n");
    }

    [Fact]
    public async Task StartAsync_AfterEndReported_StartsANewRun()
    {
        await using var t = new TestBackend();
        var job = t.Job(11, "echo run");
        var first = await t.StartAsync(job);
        await t.PollUntilEndAsync(11);

        var second = await t.StartAsync(job);
        second.ExternalId.ShouldNotBe(first.ExternalId);
        (await t.PollUntilEndAsync(11)).Last().Kind.ShouldBe(BackendEventKind.Finished);
        t.Stdout(11).ShouldBe("run\nrun\n");
    }

    [Fact]
    public async Task PollAsync_WalltimeReached_TermThenKillEvenIfTermIgnored()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(20, "trap '' TERM; echo waiting; while true; do sleep 0.1; done", walltime: TimeSpan.FromSeconds(1)));
        var pid = TestBackend.LeaderPid(handle);

        var end = (await t.PollUntilEndAsync(20)).Last();

        end.Kind.ShouldBe(BackendEventKind.WalltimeExceeded);
        end.Message!.ShouldContain("walltime");
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(pid).Count == 0, "the job's processes to be gone");
    }

    [Fact]
    public async Task PollAsync_WalltimeReached_JobThatExitsOnTerm_ReportedWithItsExitCode()
    {
        await using var t = new TestBackend();
        await t.StartAsync(t.Job(21, "trap 'echo got-term; exit 42' TERM; while true; do sleep 0.1; done", walltime: TimeSpan.FromSeconds(1)));

        var end = (await t.PollUntilEndAsync(21)).Last();

        end.Kind.ShouldBe(BackendEventKind.WalltimeExceeded);
        end.ExitCode.ShouldBe(42);
        t.Stdout(21).ShouldContain("got-term");
    }

    [Fact]
    public async Task CancelAsync_KillsTheWholeProcessGroupAndSessionIncludingGrandchildren()
    {
        await using var t = new TestBackend();
        var script = "sleep 300 & (sleep 301 &) ; sh -c 'sleep 302 & wait' & ";
        var python = File.Exists("/usr/bin/python3");
        if (python)
        {
            // A grandchild that moved to a process group of its own (still in the job's session).
            script += "python3 -c 'import os, time; os.setpgid(0, 0); time.sleep(303)' & ";
        }

        script += "wait";
        var handle = await t.StartAsync(t.Job(30, script));
        var pid = TestBackend.LeaderPid(handle);
        var expected = python ? 5 : 4;
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(pid).Count(p => p.Pid != pid && IsSleeper(p.Pid)) >= expected, "the job's grandchildren to start");
        Posix.ProcessesOf(pid).ShouldAllBe(p => p.Session == pid);

        await t.Backend.CancelAsync(30, TimeSpan.FromSeconds(1), CancellationToken.None);
        var end = (await t.PollUntilEndAsync(30)).Last();

        end.Kind.ShouldBe(BackendEventKind.Cancelled);
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(pid).Count == 0, "every process of the job's session to be gone");
    }

    private static bool IsSleeper(int pid)
    {
        try
        {
            var cmd = File.ReadAllText($"/proc/{pid}/cmdline");
            return cmd.Contains("sleep", StringComparison.Ordinal) || cmd.Contains("time.sleep", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    [Fact]
    public async Task PollAsync_JobAndWrapperKilledFromOutside_FailedWithTheSignalStatus()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(33, "echo ready; sleep 300"));
        await TestBackend.WaitForAsync(() => File.Exists(Path.Combine(t.LogDirectory, "job-33.out")) && t.Stdout(33).Contains("ready", StringComparison.Ordinal), "the job to start");

        Posix.SignalJob(TestBackend.LeaderPid(handle), Posix.SigKill); // the OOM killer, an operator's kill -9
        var end = (await t.PollUntilEndAsync(33)).Last();

        end.Kind.ShouldBe(BackendEventKind.Failed);
        end.ExitCode.ShouldBe(137);
        end.Message!.ShouldContain("before it could record");
    }

    [Fact]
    public async Task CancelAsync_Checkpointable_GetsUsr1ThenTerm()
    {
        await using var t = new TestBackend();
        var script = "trap 'echo usr1' USR1; trap 'echo term; exit 0' TERM; echo ready; while true; do sleep 0.05; done";
        await t.StartAsync(t.Job(31, script, checkpointable: true));
        await TestBackend.WaitForAsync(() => File.Exists(Path.Combine(t.LogDirectory, "job-31.out")) && t.Stdout(31).Contains("ready", StringComparison.Ordinal), "the job to be ready");

        await t.Backend.CancelAsync(31, TimeSpan.FromSeconds(1), CancellationToken.None);
        var end = (await t.PollUntilEndAsync(31)).Last();

        end.Kind.ShouldBe(BackendEventKind.Cancelled);
        end.ExitCode.ShouldBe(0);
        t.Stdout(31).ShouldBe("ready\nusr1\nterm\n");
    }

    [Fact]
    public async Task CancelAsync_UnknownOrEndedJob_DoesNothing()
    {
        await using var t = new TestBackend();
        await t.Backend.CancelAsync(404, TimeSpan.Zero, CancellationToken.None);
        await t.StartAsync(t.Job(32, "true"));
        await t.PollUntilEndAsync(32);
        await t.Backend.CancelAsync(32, TimeSpan.Zero, CancellationToken.None);
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty();
    }
}

[CollectionDefinition(Name)]
public sealed class ProcessCollection
{
    public const string Name = "real processes";
}

[Collection(ProcessCollection.Name)]
public sealed class LocalBackendConcurrencyTests
{
    [Fact]
    public async Task StartAsync_ManyCallersSameJob_OneProcess()
    {
        await using var t = new TestBackend();
        var job = t.Job(70, "echo once");
        var handles = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => t.StartAsync(job))));
        handles.Select(h => h.ExternalId).Distinct().Count().ShouldBe(1);
        (await t.PollUntilEndAsync(70)).Last().Kind.ShouldBe(BackendEventKind.Finished);
        t.Stdout(70).ShouldBe("once\n");
    }

    [Fact]
    public async Task StartAsync_ManyJobs_AllFinishWithTheirOwnExitCodes()
    {
        await using var t = new TestBackend();
        for (var i = 0; i < 12; i++)
        {
            await t.StartAsync(t.Job(100 + i, $"exit {i}"));
        }

        var events = await t.PollUntilAsync(e => e.Count(x => x.Kind is BackendEventKind.Finished or BackendEventKind.Failed) == 12);
        for (var i = 0; i < 12; i++)
        {
            events.Single(e => e.JobId == 100 + i && e.Kind != BackendEventKind.Started).ExitCode.ShouldBe(i);
        }
    }

    [Fact]
    public async Task CancelAsync_RightAfterStart_KillsTheJob()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(71, "sleep 300 & sleep 301"));
        await t.Backend.CancelAsync(71, TimeSpan.Zero, CancellationToken.None);
        var events = await t.PollUntilEndAsync(71);
        events.Select(e => e.Kind).ShouldBe([BackendEventKind.Started, BackendEventKind.Cancelled]);
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(TestBackend.LeaderPid(handle)).Count == 0, "the job to be gone");
    }

    [Fact]
    public async Task DisposeAsync_LeavesJobsRunning()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(72, "sleep 300"));
        await t.Backend.DisposeAsync();
        var stat = Posix.ReadStat(TestBackend.LeaderPid(handle)).ShouldNotBeNull();
        stat.IsZombie.ShouldBeFalse();
        await Should.ThrowAsync<ObjectDisposedException>(() => t.Backend.PollAsync(CancellationToken.None));
    }
}
