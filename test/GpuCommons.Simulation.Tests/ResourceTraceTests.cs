using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Simulation.Benchmarks;
using GpuCommons.Simulation.Traces;
using Shouldly;
using Xunit;

namespace GpuCommons.Simulation.Tests;

/// <summary>Cores, memory and GPU models in the job CSV and the traces, and the FGD benchmark's measures.</summary>
public sealed class ResourceTraceTests
{
    [Fact]
    public void JobCsv_ReadsCpusMemoryAndModels_AndWritesThemBack()
    {
        var csv = "id,submit_s,duration_s,gpus,cpus,memory_mib,gpu_model\n1,0,10,0.5,6,30000,V100M16|V100M32\n2,1,10,2,,,\n";
        var jobs = TraceReader.Read(new StringReader(csv), "jobs.csv");
        (jobs[0].Cpus, jobs[0].MemoryMiB).ShouldBe((6, 30000L));
        jobs[0].GpuModels.ShouldBe(["V100M16", "V100M32"]);
        (jobs[1].Cpus, jobs[1].MemoryMiB, jobs[1].GpuModels).ShouldBe((null, null, null));

        var sw = new StringWriter();
        new JobCsvWriter(sw).WriteAll(jobs);
        var again = TraceReader.Read(new StringReader(sw.ToString()), "again.csv");
        (again[0].Cpus, again[0].MemoryMiB).ShouldBe((6, 30000L));
        again[0].GpuModels.ShouldBe(["V100M16", "V100M32"]);
        var sw2 = new StringWriter();
        new JobCsvWriter(sw2).WriteAll(again);
        sw2.ToString().ShouldBe(sw.ToString());
        sw.ToString().ShouldContain(",6,30000,V100M16|V100M32\n");
    }

    [Theory]
    [InlineData("id,submit_s,duration_s,gpus,cpus\n1,0,10,1,0\n", "jobs.csv, line 2, column 5 (cpus)")]
    [InlineData("id,submit_s,duration_s,gpus,cpus\n1,0,10,1,2.5\n", "jobs.csv, line 2, column 5 (cpus)")]
    [InlineData("id,submit_s,duration_s,gpus,memory_mib\n1,0,10,1,-3\n", "jobs.csv, line 2, column 5 (memory_mib)")]
    [InlineData("id,submit_s,duration_s,gpus,memory_mib\n1,0,10,1,1.5\n", "jobs.csv, line 2, column 5 (memory_mib)")]
    [InlineData("id,submit_s,duration_s,gpus,gpu_model\n1,0,10,1,a b\n", "jobs.csv, line 2, column 5 (gpu_model)")]
    public void JobCsv_BadResourceCell_NamesLineAndColumn(string csv, string field) =>
        Should.Throw<SpecException>(() => TraceReader.Read(new StringReader(csv), "jobs.csv")).Field.ShouldBe(field);

    [Fact]
    public void AlibabaDlrm_GpuInstancesWithCoresAndMemory()
    {
        var csv = TraceReader.AlibabaDlrmHeader + "\n"
            + "i0,HN,app_0,12,12,1,1,25,25,120.0,120.0,640,800,8,,,\n"
            + "i1,CN,app_1,8,8,0,0,0,0,16,16,10,10,-1,5,6,50\n"
            + "i2,HN,app_2,7.5,8,1,1,0,0,40.5,40.5,0,0,-1,100,110,400\n";
        var jobs = TraceReader.Read(new StringReader(csv), "dlrm.csv");
        jobs.Count.ShouldBe(2); // the CPU-node instance asks for no GPU
        (jobs[0].Label, jobs[0].SubmitSeconds, jobs[0].DurationSeconds, jobs[0].Cpus, jobs[0].MemoryMiB).ShouldBe(("i0", 0.0, 400.0, 12, 122880L));
        (jobs[1].Label, jobs[1].SubmitSeconds, jobs[1].DurationSeconds, jobs[1].Cpus, jobs[1].MemoryMiB, jobs[1].Tenant).ShouldBe(("i2", 100.0, 290.0, 8, 41472L, "app_2"));
        Should.Throw<SpecException>(() => TraceReader.Read(new StringReader(TraceReader.AlibabaDlrmHeader + "\ni0,XN,a,1,1,1,1,0,0,1,1,0,0,1,,,\n"), "d.csv")).Field.ShouldBe("d.csv, line 2, column 2 (role)");
    }

    [Fact]
    public void Fragment_IsFreeCapacityTheTaskCannotUse()
    {
        var node = new FleetBuilder("f").AddPartition("p", "G", 0)
            .AddNode("p", "n", 4, null, NodeState.Up, NodeResources.Create(32, 65536, null, "n"), null).Build().Nodes[0];
        int[] used = [1000, 600, 300, 0]; // free: 0, 400, 700, 1000
        var share = new SharingWorkload.TaskShape(4, 1000, 1, 500, 1);
        FgdBenchmark.NodeFragmentMilli(node, used, 32, 65536, share).ShouldBe(400); // the 0.4 GPU cannot hold 0.5
        var one = new SharingWorkload.TaskShape(4, 1000, 1, 1000, 1);
        FgdBenchmark.NodeFragmentMilli(node, used, 32, 65536, one).ShouldBe(1100); // partly used GPUs
        var two = new SharingWorkload.TaskShape(4, 1000, 2, 1000, 1);
        FgdBenchmark.NodeFragmentMilli(node, used, 32, 65536, two).ShouldBe(2100); // one whole GPU free: no fit
        // Cores exhausted: every free GPU is stranded.
        FgdBenchmark.NodeFragmentMilli(node, used, 3, 65536, share).ShouldBe(2100);
        FgdBenchmark.NodeFragmentMilli(node, used, 32, 999, one).ShouldBe(2100);
    }

    [Fact]
    public void FgdBenchmark_StopsAt130PercentAndReportsWhatItPlaced()
    {
        var fleet = SharingWorkload.Fleet();
        fleet.TotalGpus.ShouldBe(6214);
        fleet.Nodes.Count.ShouldBe(1213);
        SharingWorkload.Tasks.Sum(t => t.Weight).ShouldBe(1000);
        // Cores in hundredths: a G2 node's 96 cores are 9,600 units, the trace's 3.152-core share asks 316.
        fleet.Nodes.First(n => n.GpuModel == "G2").Cpus.ShouldBe(96 * SharingWorkload.CpuUnitsPerCore);
        SharingWorkload.Tasks.ShouldContain(t => t.Cpus == 316 && t.GpuMilli == 810);
        var small = new FleetBuilder("s").AddPartition("g2", "G2", 0)
            .AddNode("g2", "a", 8, null, NodeState.Up, NodeResources.Create(96, 393216, null, "a"), null)
            .AddNode("g2", "b", 8, null, NodeState.Up, NodeResources.Create(96, 393216, null, "b"), null).Build();
        var tasks = Enumerable.Repeat(new SharingWorkload.TaskShape(12, 47104, 1, 650, 1), 100);
        var r = FgdBenchmark.Run(small, tasks);
        // 0.65 GPU each: one per GPU fits, so 16 are placed; arrivals stop once 1.3 × 16 GPUs were asked for (32 tasks).
        r.Placed.ShouldBe(16);
        (r.Placed + r.Dropped).ShouldBe(32);
        r.AllocatedGpuShare.ShouldBe(0.65, 1e-9);
        r.GpusInUseShare.ShouldBe(1.0);
        r.RequestedShare.ShouldBe(32 * 0.65 / 16, 1e-9);
        // 8 tasks of 12 cores = 96 cores per node: no node is over its cores; 8 × 46 GiB = 368 GiB < 384 GiB.
        (r.NodesOverCpus, r.NodesOverMemory).ShouldBe((0, 0));
        // By partition: the one partition, all its cores given out (16 × 12 of 192), 16 × 46 GiB of 768 GiB.
        var part = r.Partitions.ShouldHaveSingleItem();
        (part.Partition, part.Gpus).ShouldBe(("g2", 16));
        part.AllocatedGpuShare.ShouldBe(0.65, 1e-9);
        part.GpusInUseShare.ShouldBe(1.0);
        part.CpusUsedShare.ShouldBe(1.0, 1e-9);
        part.MemoryUsedShare.ShouldBe(16 * 47104 / (2 * 393216.0), 1e-9);
    }

    [Fact]
    public void FgdBenchmark_NeverOverCommitsCores_WhereTheGpuOnlyEngineDid()
    {
        // Two nodes of 8 GPUs and 64 cores; shares of half a GPU that need 32 cores each: by GPU alone 32 would fit,
        // by cores only 2 per node.
        var fleet = new FleetBuilder("s").AddPartition("p", "G", 0)
            .AddNode("p", "a", 8, null, NodeState.Up, NodeResources.Create(64, 393216, null, "a"), null)
            .AddNode("p", "b", 8, null, NodeState.Up, NodeResources.Create(64, 393216, null, "b"), null).Build();
        var tasks = Enumerable.Repeat(new SharingWorkload.TaskShape(32, 1024, 1, 500, 1), 100);
        foreach (var fgd in new[] { true, false })
        {
            var r = FgdBenchmark.Run(fleet, tasks, new FgdOptions { FragmentationAware = fgd });
            r.Placed.ShouldBe(4);
            (r.NodesOverCpus, r.NodesOverMemory).ShouldBe((0, 0));
            r.PlacementsPerSecond.ShouldBeGreaterThan(0);
        }
    }

    [Fact]
    public void Simulate_HonoursCoresOfJobsAndNodes()
    {
        // One node of 4 GPUs and 16 cores: two 1-GPU jobs of 12 cores cannot run together, two of 8 can.
        var fleet = new FleetBuilder("s").AddPartition("default", "G", 0)
            .AddNode("default", "n1", 4, null, NodeState.Up, NodeResources.Create(16, 65536, null, "n1"), null).Build();
        List<TraceJob> jobs =
        [
            TestData.Job(1, 0, 1, 100) with { Cpus = 12 },
            TestData.Job(2, 0, 1, 100) with { Cpus = 12 },
            TestData.Job(3, 300, 1, 100) with { Cpus = 8 },
            TestData.Job(4, 300, 1, 100) with { Cpus = 8 },
        ];
        var (csv, _) = TestData.Run(fleet, TestData.Trace(jobs), "fifo-easy");
        var rows = ScheduleChecker.Parse(csv).OrderBy(r => r.Job).ToList();
        rows.Select(r => $"{r.Job}:{r.Start}-{r.End}").ShouldBe(["1:0-100", "2:100-200", "3:300-400", "4:300-400"]);
    }
}
