using GpuCommons.Backends.Local.Gpus;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>The captured H100 output in Fixtures/ (see its README), and output that must be refused.</summary>
public sealed class NvidiaSmiParserTests
{
    // The field list of the fixtures' --query-gpu (README.md); nvidia-smi prints clocks.sm as clocks.current.sm.
    private static readonly string[] FixtureFields =
    [
        "index", "uuid", "name", "pci.bus_id", "memory.total", "memory.used", "memory.free", "utilization.gpu", "utilization.memory",
        "temperature.gpu", "power.draw", "power.limit", "clocks.sm", "ecc.errors.uncorrected.volatile.total", "mig.mode.current", "compute_mode",
    ];

    [Fact]
    public void ParseQueryGpu_IdleCsvWithHeaderAndUnits_OneIdleH100()
    {
        var gpu = NvidiaSmiParser.ParseQueryGpu(Fixture.Read("query-gpu-idle.csv")).ShouldHaveSingleItem();

        gpu.Index.ShouldBe(0);
        gpu.Uuid.ShouldBe(Fixture.H100Uuid);
        gpu.Name.ShouldBe(Fixture.H100Name);
        gpu.MemoryTotalMiB.ShouldBe(81559);
        gpu.MemoryUsedMiB.ShouldBe(0);
        gpu.MemoryFreeMiB.ShouldBe(81079);
        gpu.UtilizationGpuPercent.ShouldBe(0);
        gpu.UtilizationMemoryPercent.ShouldBe(0);
        gpu.TemperatureC.ShouldBe(41);
        gpu.PowerDrawW.ShouldBe(73.11);
        gpu.PciBusId.ShouldBe("00000000:00:06.0");
        gpu.MigMode.ShouldBe("Disabled");
    }

    [Fact]
    public void ParseQueryGpu_BusyCsv_BothFormsAgree()
    {
        var lines = Fixture.Read("query-gpu-busy.csv").Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Length.ShouldBe(3);

        var withUnits = NvidiaSmiParser.ParseQueryGpu(lines[0] + "\n" + lines[1]).ShouldHaveSingleItem();
        var bare = NvidiaSmiParser.ParseQueryGpu(lines[2], FixtureFields).ShouldHaveSingleItem();

        foreach (var gpu in new[] { withUnits, bare })
        {
            gpu.Uuid.ShouldBe(Fixture.H100Uuid);
            gpu.Name.ShouldBe(Fixture.H100Name);
            gpu.MemoryTotalMiB.ShouldBe(81559);
            gpu.MemoryUsedMiB.ShouldBe(883);
            gpu.UtilizationGpuPercent.ShouldBe(100);
            gpu.UtilizationMemoryPercent.ShouldBe(31);
        }

        withUnits.PowerDrawW.ShouldBe(700.88);
        bare.PowerDrawW.ShouldBe(701.99);
    }

    [Fact]
    public void ParseQueryGpu_WholeBusyFile_RefusesTheRepeatedGpu()
    {
        // The fixture appends a second form of the same sample: one GPU listed twice is an error, not two GPUs.
        var e = Should.Throw<NvidiaSmiFormatException>(() => NvidiaSmiParser.ParseQueryGpu(Fixture.Read("query-gpu-busy.csv")));
        e.Message.ShouldContain("appears twice");
    }

    [Fact]
    public void ParseComputeApps_Busy_OnePython()
    {
        var app = NvidiaSmiParser.ParseComputeApps(Fixture.Read("query-compute-apps.csv")).ShouldHaveSingleItem();

        app.Pid.ShouldBe(437);
        app.GpuUuid.ShouldBe(Fixture.H100Uuid);
        app.ProcessName.ShouldBe("python3");
        app.UsedMemoryMiB.ShouldBe(1130);
    }

    [Fact]
    public void ParseComputeApps_NoProcesses_Empty()
    {
        NvidiaSmiParser.ParseComputeApps("pid, gpu_uuid, process_name, used_gpu_memory [MiB]\n").ShouldBeEmpty();
        NvidiaSmiParser.ParseComputeApps("", NvidiaSmiParser.ComputeAppFields).ShouldBeEmpty();
    }

    [Fact]
    public void ParseList_H100()
    {
        var (index, name, uuid) = NvidiaSmiParser.ParseList(Fixture.Read("nvidia-smi-L.txt")).ShouldHaveSingleItem();
        index.ShouldBe(0);
        name.ShouldBe(Fixture.H100Name);
        uuid.ShouldBe(Fixture.H100Uuid);
    }

    [Fact]
    public void ParseList_MigDevicesUnderAGpu_Skipped()
    {
        var text = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)\n  MIG 1g.10gb      Device  0: (UUID: MIG-bbbb)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-cccc)\n";
        NvidiaSmiParser.ParseList(text).Select(g => g.Uuid).ShouldBe(["GPU-aaaa", "GPU-cccc"]);
    }

    [Fact]
    public void ParseXml_Idle_NoProcesses()
    {
        var gpu = NvidiaSmiParser.ParseXml(Fixture.Read("nvidia-smi-q.xml")).ShouldHaveSingleItem();

        gpu.Index.ShouldBe(0);
        gpu.Uuid.ShouldBe(Fixture.H100Uuid);
        gpu.Name.ShouldBe(Fixture.H100Name);
        gpu.MemoryTotalMiB.ShouldBe(81559);
        gpu.MemoryUsedMiB.ShouldBe(0);
        gpu.UtilizationGpuPercent.ShouldBe(0);
        gpu.PciBusId.ShouldBe("00000000:00:06.0");
        gpu.MigMode.ShouldBe("Disabled");
        gpu.TemperatureC.ShouldBe(37);
        gpu.Processes.ShouldNotBeNull().ShouldBeEmpty();
    }

    [Fact]
    public void ParseXml_Busy_UtilisationAndTheProcess()
    {
        var gpu = NvidiaSmiParser.ParseXml(Fixture.Read("nvidia-smi-q-busy.xml")).ShouldHaveSingleItem();

        gpu.UtilizationGpuPercent.ShouldBe(100);
        gpu.UtilizationMemoryPercent.ShouldBe(34);
        gpu.MemoryUsedMiB.ShouldBe(1139);
        var p = gpu.Processes.ShouldNotBeNull().ShouldHaveSingleItem();
        p.Pid.ShouldBe(437);
        p.ProcessName.ShouldBe("python3");
        p.UsedMemoryMiB.ShouldBe(1130);
        p.GpuUuid.ShouldBe(Fixture.H100Uuid);
    }

    [Fact]
    public void Fixtures_AllFormsAgreeOnTheGpu()
    {
        var fromCsv = NvidiaSmiParser.ParseQueryGpu(Fixture.Read("query-gpu-idle.csv")).Single();
        var fromXml = NvidiaSmiParser.ParseXml(Fixture.Read("nvidia-smi-q.xml")).Single();
        var fromList = NvidiaSmiParser.ParseList(Fixture.Read("nvidia-smi-L.txt")).Single();

        fromXml.Uuid.ShouldBe(fromCsv.Uuid);
        fromList.Uuid.ShouldBe(fromCsv.Uuid);
        fromXml.MemoryTotalMiB.ShouldBe(fromCsv.MemoryTotalMiB);
        fromList.Name.ShouldBe(fromCsv.Name);
    }

    [Fact]
    public void ParseTopology_OneGpuWithEscapeCodes_CpuAffinity()
    {
        var gpu = NvidiaSmiParser.ParseTopology(Fixture.Read("nvidia-smi-topo-m.txt")).ShouldHaveSingleItem();
        gpu.Gpu.ShouldBe("GPU0");
        gpu.CpuAffinity.ShouldBe("0-15");
        gpu.NumaAffinity.ShouldBe("0");
        gpu.Links.ShouldBeEmpty();
    }

    [Fact]
    public void ParseMigProfiles_H100_SevenProfiles()
    {
        var profiles = NvidiaSmiParser.ParseMigProfiles(Fixture.Read("mig-lgip.txt"));
        profiles.Select(p => p.Name).ShouldBe(["MIG 1g.10gb", "MIG 1g.10gb+me", "MIG 1g.20gb", "MIG 2g.20gb", "MIG 3g.40gb", "MIG 4g.40gb", "MIG 7g.80gb"]);
        var small = profiles[0];
        (small.Gpu, small.ProfileId, small.FreeInstances, small.TotalInstances, small.MemoryGiB).ShouldBe((0, 19, 7, 7, 9.75));
        profiles[^1].MemoryGiB.ShouldBe(79.25);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("index, uuid, name, memory.total [MiB]\n0, GPU-x, H100, 81559 MiB, 12\n", "line 2: 5 fields but 4 columns")]
    [InlineData("index, uuid, name, memory.total [MiB]\n0, GPU-x, H100, lots MiB\n", "column 'memory.total': 'lots MiB'")]
    [InlineData("index, uuid, name, memory.total [MiB]\n0, GPU-x, H100, [N/A]\n", "column 'memory.total'")]
    [InlineData("index, uuid, name, memory.total [MiB]\nzero, GPU-x, H100, 1\n", "column 'index': 'zero'")]
    [InlineData("index, uuid, name, memory.total [MiB]\n0, 1234, H100, 1\n", "starts with 'GPU-'")]
    [InlineData("index, name, memory.total [MiB]\n0, H100, 1\n", "no 'uuid' column")]
    [InlineData("Failed to initialize NVML: Driver/library version mismatch\n", "expected a header line")]
    [InlineData("index, uuid, name, memory.total [MiB]\n0, GPU-x, H100, 1\n0, GPU-y, H100, 1\n", "GPU index 0 appears twice")]
    public void ParseQueryGpu_Malformed_ErrorNamesTheProblem(string output, string expected)
    {
        var e = Should.Throw<NvidiaSmiFormatException>(() => NvidiaSmiParser.ParseQueryGpu(output));
        e.Message.ShouldContain(expected);
        e.Message.ShouldContain("nvidia-smi --query-gpu");
    }

    [Fact]
    public void ParseQueryGpu_NoHeaderWithoutFieldList_Refused()
    {
        var e = Should.Throw<NvidiaSmiFormatException>(() => NvidiaSmiParser.ParseQueryGpu("0, GPU-x, H100, 1\n"));
        e.Message.ShouldContain("line 1");
    }

    [Fact]
    public void ParseComputeApps_Malformed_ErrorNamesTheColumn()
    {
        var e = Should.Throw<NvidiaSmiFormatException>(() =>
            NvidiaSmiParser.ParseComputeApps("pid, gpu_uuid, process_name, used_gpu_memory [MiB]\nabc, GPU-x, python3, 10 MiB\n"));
        e.Message.ShouldContain("column 'pid': 'abc'");
    }

    [Theory]
    [InlineData("<nvidia_smi_log><gpu>", "not well-formed XML")]
    [InlineData("<other/>", "root element is 'other'")]
    [InlineData("<nvidia_smi_log><gpu><product_name>H100</product_name></gpu></nvidia_smi_log>", "no <uuid>")]
    [InlineData("<nvidia_smi_log><gpu><uuid>GPU-a</uuid><product_name>H100</product_name><fb_memory_usage><total>much</total></fb_memory_usage></gpu></nvidia_smi_log>", "<fb_memory_usage><total> is 'much'")]
    [InlineData("<nvidia_smi_log><attached_gpus>2</attached_gpus><gpu><uuid>GPU-a</uuid><product_name>H100</product_name><fb_memory_usage><total>1 MiB</total></fb_memory_usage></gpu></nvidia_smi_log>", "says 2 but")]
    public void ParseXml_Malformed_ErrorNamesTheProblem(string xml, string expected)
    {
        Should.Throw<NvidiaSmiFormatException>(() => NvidiaSmiParser.ParseXml(xml)).Message.ShouldContain(expected);
    }

    [Fact]
    public void ParseList_GarbageLine_ErrorNamesTheLine()
    {
        var e = Should.Throw<NvidiaSmiFormatException>(() => NvidiaSmiParser.ParseList("GPU 0: H100 (UUID: GPU-a)\nsomething else\n"));
        e.Message.ShouldContain("line 2");
        e.Message.ShouldContain("something else");
    }
}
