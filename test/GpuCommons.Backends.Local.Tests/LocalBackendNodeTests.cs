using GpuCommons.Backends.Local.Gpus;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>GPU discovery (real from captured nvidia-smi output, virtual without), node health and GPU usage.</summary>
[Collection(ProcessCollection.Name)]
public sealed class LocalBackendNodeTests
{
    [Fact]
    public async Task DiscoverAsync_NoNvidiaSmi_EightStableVirtualGpusByDefault()
    {
        await using var t = new TestBackend(FakeNvidiaSmi.NotInstalled(), o => o.VirtualGpuCount = 8);

        var fleet = await t.Backend.DiscoverAsync(CancellationToken.None);
        var again = await (await t.NewBackendAsync()).DiscoverAsync(CancellationToken.None);

        fleet.VirtualGpus.ShouldBeTrue();
        fleet.Note!.ShouldContain("nvidia-smi is not installed");
        fleet.Note!.ShouldContain("8 virtual GPUs");
        var node = fleet.Nodes.ShouldHaveSingleItem();
        node.Name.ShouldBe(TestBackend.Node);
        node.Partition.ShouldBe("local");
        node.State.ShouldBe("up");
        node.Gpus.Select(g => g.Index).ShouldBe([0, 1, 2, 3, 4, 5, 6, 7]);
        node.Gpus.Select(g => g.Uuid).Distinct().Count().ShouldBe(8);
        node.Gpus.Select(g => g.Uuid).ShouldBe(again.Nodes[0].Gpus.Select(g => g.Uuid));
        node.Gpus[0].Uuid.ShouldStartWith("VGPU-");
    }

    [Fact]
    public async Task Constructor_StateFolderInUse_Refused()
    {
        await using var t = new TestBackend();
        var e = Should.Throw<InvalidOperationException>(() => new LocalBackend(t.Options(), TimeProvider.System, FakeNvidiaSmi.NotInstalled()));
        e.Message.ShouldContain("in use by another backend");
        await (await t.NewBackendAsync()).DiscoverAsync(CancellationToken.None); // free again once the first is disposed
    }

    [Fact]
    public void Options_DefaultVirtualGpuCount_IsEight() =>
        new LocalBackendOptions { StateDirectory = "x" }.VirtualGpuCount.ShouldBe(8);

    [Fact]
    public async Task DiscoverAsync_NoDevicesFound_VirtualWithTheReason()
    {
        var smi = new FakeNvidiaSmi(_ => new NvidiaSmiResult(6, "No devices were found\n", ""));
        await using var t = new TestBackend(smi);
        var fleet = await t.Backend.DiscoverAsync(CancellationToken.None);
        fleet.VirtualGpus.ShouldBeTrue();
        fleet.Note!.ShouldContain("No devices were found");
    }

    [Fact]
    public async Task DiscoverAsync_RealOnlyWithoutGpu_Throws()
    {
        await using var t = new TestBackend(FakeNvidiaSmi.NotInstalled(), o => o.GpuMode = LocalGpuMode.Real);
        (await Should.ThrowAsync<InvalidOperationException>(() => t.Backend.DiscoverAsync(CancellationToken.None))).Message.ShouldContain("not installed");
    }

    [Fact]
    public async Task DiscoverAsync_H100_RealGpu()
    {
        await using var t = new TestBackend(FakeNvidiaSmi.H100());
        var fleet = await t.Backend.DiscoverAsync(CancellationToken.None);

        fleet.VirtualGpus.ShouldBeFalse();
        fleet.Source.ShouldBe("local:nvidia-smi");
        var node = fleet.Nodes.ShouldHaveSingleItem();
        node.GpuModel.ShouldBe(Fixture.H100Name);
        var gpu = node.Gpus.ShouldHaveSingleItem();
        gpu.ShouldBe(new DiscoveredGpu(0, Fixture.H100Uuid, Fixture.H100Name, 81559));
    }

    [Fact]
    public async Task DiscoverAsync_OlderDriverRefusesAField_RetriesWithTheMinimalFields()
    {
        var smi = new FakeNvidiaSmi(args => args[0].Contains("mig.mode.current", StringComparison.Ordinal)
            ? new NvidiaSmiResult(2, "", "Field \"mig.mode.current\" is not a valid field to query.")
            : new NvidiaSmiResult(0, $"index, uuid, name, memory.total [MiB], memory.used [MiB], utilization.gpu [%]\n0, {Fixture.H100Uuid}, {Fixture.H100Name}, 81559, 0, 0\n", ""));
        await using var t = new TestBackend(smi);
        var fleet = await t.Backend.DiscoverAsync(CancellationToken.None);
        fleet.VirtualGpus.ShouldBeFalse();
        fleet.Nodes[0].Gpus.ShouldHaveSingleItem().MemoryMiB.ShouldBe(81559);
    }

    [Fact]
    public async Task DiscoverAsync_MalformedOutput_ThrowsNotGuesses()
    {
        var smi = new FakeNvidiaSmi(_ => new NvidiaSmiResult(0, "index, uuid, name, memory.total [MiB]\n0, GPU-x, H100\n", ""));
        await using var t = new TestBackend(smi);
        var e = await Should.ThrowAsync<NvidiaSmiFormatException>(() => t.Backend.DiscoverAsync(CancellationToken.None));
        e.Message.ShouldContain("3 fields but 4 columns");
    }

    [Fact]
    public async Task PollAsync_GpusDisappearAndReturn_NodeDownThenUp()
    {
        var smi = FakeNvidiaSmi.H100();
        await using var t = new TestBackend(smi);
        await t.Backend.DiscoverAsync(CancellationToken.None);
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty();

        var healthy = smi.Answer;
        smi.Answer = _ => new NvidiaSmiResult(9, "", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.");
        var down = (await t.Backend.PollAsync(CancellationToken.None)).ShouldHaveSingleItem();
        down.Kind.ShouldBe(BackendEventKind.NodeDown);
        down.Node.ShouldBe(TestBackend.Node);
        down.Message!.ShouldContain("couldn't communicate");
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty(); // reported once
        var seen = await t.Backend.DiscoverAsync(CancellationToken.None);
        seen.Nodes[0].State.ShouldBe("down");
        seen.VirtualGpus.ShouldBeFalse(); // still the node's real GPU, not virtual ones
        seen.Nodes[0].Gpus.ShouldHaveSingleItem().Uuid.ShouldBe(Fixture.H100Uuid);

        smi.Answer = _ => new NvidiaSmiResult(0, "index, uuid, name, memory.total [MiB]\n", ""); // GPU missing
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty(); // still down, other reason
        t.Backend.NodeState.Reason!.ShouldContain(Fixture.H100Uuid);

        smi.Answer = healthy;
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.NodeUp);

        // Found by a discovery first: the next poll still reports the transition.
        smi.Answer = _ => null;
        (await t.Backend.DiscoverAsync(CancellationToken.None)).Nodes[0].State.ShouldBe("down");
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.NodeDown);
    }

    [Fact]
    public async Task DiscoverAsync_GpusGoneWhileServerWasDown_RealGpusAndNodeDown()
    {
        var smi = FakeNvidiaSmi.H100();
        await using var t = new TestBackend(smi);
        (await t.Backend.DiscoverAsync(CancellationToken.None)).VirtualGpus.ShouldBeFalse();
        File.Exists(Path.Combine(t.StateDirectory, "gpus.json")).ShouldBeTrue();

        smi.Answer = _ => new NvidiaSmiResult(9, "", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.");
        var restarted = await t.NewBackendAsync();
        var fleet = await restarted.DiscoverAsync(CancellationToken.None);

        fleet.VirtualGpus.ShouldBeFalse(); // not silently replaced by virtual GPUs
        fleet.Nodes[0].Gpus.ShouldHaveSingleItem().Uuid.ShouldBe(Fixture.H100Uuid);
        fleet.Nodes[0].State.ShouldBe("down");
        (await restarted.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.NodeDown);

        // After a hardware change the operator deletes the kept inventory: discovered afresh.
        File.Delete(Path.Combine(t.StateDirectory, "gpus.json"));
        (await (await t.NewBackendAsync()).DiscoverAsync(CancellationToken.None)).VirtualGpus.ShouldBeTrue();
    }

    [Fact]
    public async Task DrainAsync_ThenResume_NodeDrainingThenUp()
    {
        await using var t = new TestBackend();
        await t.Backend.DrainAsync("disk replacement", CancellationToken.None);
        var drain = (await t.Backend.PollAsync(CancellationToken.None)).ShouldHaveSingleItem();
        drain.Kind.ShouldBe(BackendEventKind.NodeDraining);
        drain.Message.ShouldBe("disk replacement");
        (await t.Backend.DiscoverAsync(CancellationToken.None)).Nodes[0].State.ShouldBe("drain");

        // A restarted backend still sees the drain (it is a file in the state folder) and reports it once.
        var restarted = await t.NewBackendAsync();
        (await restarted.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.NodeDraining);

        await restarted.ResumeAsync(CancellationToken.None);
        (await restarted.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.NodeUp);
    }

    [Fact]
    public async Task GetGpuUsageAsync_RunningJob_ItsProcessMarkedInJob()
    {
        int jobPid = 0;
        var smi = FakeNvidiaSmi.H100(() =>
            $"pid, gpu_uuid, process_name, used_gpu_memory [MiB]\n{jobPid}, {Fixture.H100Uuid}, python3, 1130 MiB\n99999999, {Fixture.H100Uuid}, other, 5 MiB\n");
        await using var t = new TestBackend(smi);
        var handle = await t.StartAsync(t.Job(50, "sleep 300", gpus: [0]));
        jobPid = TestBackend.LeaderPid(handle);

        var usage = (await ((IJobBackend)t.Backend).GetGpuUsageAsync(50, CancellationToken.None)).ShouldNotBeNull();

        usage.Source.ShouldBe("nvidia-smi");
        usage.Live.ShouldBeTrue();
        var gpu = usage.Gpus.ShouldHaveSingleItem();
        gpu.Uuid.ShouldBe(Fixture.H100Uuid);
        gpu.MemoryTotalMiB.ShouldBe(81559);
        gpu.Processes.Count.ShouldBe(2);
        gpu.Processes.Single(p => p.InJob).UsedMemoryMiB.ShouldBe(1130);

        await t.Backend.CancelAsync(50, TimeSpan.Zero, CancellationToken.None);
        await t.PollUntilEndAsync(50);
        var after = (await t.Backend.GetGpuUsageAsync(50, CancellationToken.None)).ShouldNotBeNull();
        after.Live.ShouldBeFalse();
        after.Gpus[0].Processes.ShouldContain(p => p.InJob);
    }

    [Fact]
    public async Task PollAsync_SamplesUsage_KeptAfterTheJobEnds()
    {
        int jobPid = 0;
        var smi = FakeNvidiaSmi.H100(() =>
            $"pid, gpu_uuid, process_name, used_gpu_memory [MiB]\n{jobPid}, {Fixture.H100Uuid}, python3, 2048 MiB\n");
        await using var t = new TestBackend(smi, o => o.GpuUsageSampleInterval = TimeSpan.FromMilliseconds(1));
        jobPid = TestBackend.LeaderPid(await t.StartAsync(t.Job(51, "sleep 300", gpus: [0])));
        await t.PollUntilAsync(e => e.Any(x => x.Kind == BackendEventKind.Started));
        await t.Backend.PollAsync(CancellationToken.None); // a sample while it runs

        jobPid = 0; // from now on nvidia-smi no longer shows the job
        await t.Backend.CancelAsync(51, TimeSpan.Zero, CancellationToken.None);
        await t.PollUntilEndAsync(51);

        var usage = (await t.Backend.GetGpuUsageAsync(51, CancellationToken.None)).ShouldNotBeNull();
        usage.Live.ShouldBeFalse();
        usage.Gpus.ShouldHaveSingleItem().Processes.ShouldHaveSingleItem().UsedMemoryMiB.ShouldBe(2048);

        // And after a restart of the server, from the job's folder.
        var kept = (await (await t.NewBackendAsync()).GetGpuUsageAsync(51, CancellationToken.None)).ShouldNotBeNull();
        kept.Live.ShouldBeFalse();
        kept.Gpus.ShouldHaveSingleItem().Processes.ShouldHaveSingleItem().InJob.ShouldBeTrue();
    }

    [Fact]
    public async Task GetGpuUsageAsync_MalformedTelemetry_NoteSaysWhy()
    {
        var smi = FakeNvidiaSmi.H100();
        await using var t = new TestBackend(smi);
        await t.StartAsync(t.Job(52, "sleep 300", gpus: [0]));
        smi.Answer = args => args[0].StartsWith("--query-compute-apps", StringComparison.Ordinal)
            ? new NvidiaSmiResult(0, "pid, gpu_uuid\n12, GPU-x, extra\n", "")
            : new NvidiaSmiResult(0, Fixture.Read("query-gpu-idle.csv"), "");

        var usage = (await t.Backend.GetGpuUsageAsync(52, CancellationToken.None)).ShouldNotBeNull();
        usage.Live.ShouldBeFalse();
        usage.Note!.ShouldContain("3 fields but 2 columns");
        await t.Backend.CancelAsync(52, TimeSpan.Zero, CancellationToken.None);
        await t.PollUntilEndAsync(52);
    }

    [Fact]
    public async Task GetGpuUsageAsync_VirtualGpus_SaysThereIsNoTelemetry()
    {
        await using var t = new TestBackend();
        await t.StartAsync(t.Job(53, "sleep 300", gpus: [2]));
        var usage = (await t.Backend.GetGpuUsageAsync(53, CancellationToken.None)).ShouldNotBeNull();
        usage.Source.ShouldBe("virtual");
        usage.Gpus.ShouldHaveSingleItem().Index.ShouldBe(2);
        await t.Backend.CancelAsync(53, TimeSpan.Zero, CancellationToken.None);
        await t.PollUntilEndAsync(53);
    }

    [Fact]
    public async Task GetGpuUsageAsync_UnknownJob_Null()
    {
        await using var t = new TestBackend();
        (await t.Backend.GetGpuUsageAsync(12345, CancellationToken.None)).ShouldBeNull();
    }

    [Fact]
    public void BuildUsage_BusyFixture_GpuTotalsAndProcesses()
    {
        var telemetry = NvidiaSmiParser.ParseQueryGpu(string.Join('\n', Fixture.Read("query-gpu-busy.csv").Split('\n').Take(2)));
        var apps = NvidiaSmiParser.ParseComputeApps(Fixture.Read("query-compute-apps.csv"));
        var job = new JobFile { JobId = 7, Pid = int.MaxValue - 1, Node = "n", GpuUuids = [Fixture.H100Uuid], Gpus = [0] };

        var usage = LocalBackend.BuildUsage(job, telemetry, apps, TimeProvider.System.GetUtcNow());

        var gpu = usage.Gpus.ShouldHaveSingleItem();
        gpu.UtilizationPercent.ShouldBe(100);
        gpu.MemoryUsedMiB.ShouldBe(883);
        gpu.Model.ShouldBe(Fixture.H100Name);
        var p = gpu.Processes.ShouldHaveSingleItem();
        (p.Pid, p.ProcessName, p.UsedMemoryMiB, p.InJob).ShouldBe((437, "python3", 1130L, false));
    }

    [Fact]
    public void ParseStat_CommandWithSpacesAndParentheses()
    {
        var st = Posix.ParseStat("123 (my (odd) cmd) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10").ShouldNotBeNull();
        (st.Pid, st.State, st.ParentPid, st.ProcessGroup, st.Session, st.StartTime).ShouldBe((123, 'S', 1, 123, 123, 987654UL));
    }
}
