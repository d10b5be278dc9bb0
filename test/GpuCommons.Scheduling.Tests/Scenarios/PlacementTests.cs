using GpuCommons.Core.Fleet;
using GpuCommons.Scheduling.Tests.Support;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>Placement: best fit, whole nodes for gangs in the smallest domain, GPU shares packed but never above one GPU.</summary>
public sealed class PlacementTests
{
    private static CheckedEngine On(Fleet fleet) => new(fleet, TenancyBuilder.Simple("a", "b"));

    public static TheoryData<string, int[], double[], string[]> BestFitCases => new()
    {
        // name, node sizes, jobs (GPUs, in submit order, each scheduled alone), where each job lands:
        // a node name, "new" (a node no earlier job uses) or "=k" (the node of job k)
        { "exact fit on a partly used node beats a roomier one", [8, 8, 8], [6, 5, 2, 3], ["new", "new", "=1", "=2"] },
        { "smallest node that holds the job", [8, 2, 4], [2, 4, 8], ["n02", "n03", "n01"] },
        { "partly used node before an empty one", [8, 8], [1, 1, 1], ["new", "=1", "=1"] },
        { "a job that fits nowhere partly used opens a fresh node", [8, 8], [6, 4], ["new", "new"] },
        { "the tighter of two partly used nodes", [8, 8, 8], [4, 6, 2], ["new", "new", "=2"] },
    };

    [Theory]
    [MemberData(nameof(BestFitCases))]
    public void SingleNodeJobs_BestFit_LeavesFewestStrandedGpus(string name, int[] sizes, double[] jobs, string[] expected)
    {
        var e = On(TestFleets.Sizes(sizes));
        for (var i = 0; i < jobs.Length; i++)
        {
            e.Submit(Job(i + 1).Gpus(jobs[i]));
            e.Schedule();
            e.IsRunning(i + 1).ShouldBeTrue(name);
            var node = e.NodesOf(i + 1).Single();
            var earlier = Enumerable.Range(1, i).Select(k => e.NodesOf(k).Single()).ToList();
            if (expected[i] == "new")
            {
                earlier.ShouldNotContain(node, name);
            }
            else if (expected[i].StartsWith('='))
            {
                node.ShouldBe(earlier[int.Parse(expected[i][1..], System.Globalization.CultureInfo.InvariantCulture) - 1], name);
            }
            else
            {
                node.ShouldBe(expected[i], name);
            }
        }
    }

    [Fact]
    public void JobWithNoPartition_TakesTheCheapestGpusThatFit_APartitionedJobGetsItsOwn()
    {
        // The costly pool comes first in the fleet; a job that names no partition still starts on the cheaper one.
        var fleet = new FleetBuilder("test")
            .AddPartition("b200", "B200", 6500).AddNode("b200", "big1", 8)
            .AddPartition("h100", "H100", 3000).AddNode("h100", "small1", 8)
            .Build();
        var e = On(fleet);
        e.Submit(Job(1).Gpus(4));
        e.Submit(Job(2).Gpus(4));
        e.Schedule();
        e.NodesOf(1).ShouldBe(["small1"]);
        e.NodesOf(2).ShouldBe(["small1"]);

        // The cheap pool is full: the next flexible job takes the costly one rather than wait.
        e.Submit(Job(3).Gpus(2));
        e.Submit(Job(4).Gpus(2).Partition("b200"));
        e.Schedule();
        e.NodesOf(3).ShouldBe(["big1"]);
        e.NodesOf(4).ShouldBe(["big1"]);
    }

    [Fact]
    public void BestFit_FillsHoles_SoNoGpuIsStranded()
    {
        var e = On(TestFleets.Flat(3, 8));
        e.Submit(Job(1).Gpus(6));
        e.Submit(Job(2).Gpus(5));
        e.Schedule();
        e.Submit(Job(3).Gpus(2));
        e.Submit(Job(4).Gpus(3));
        e.Schedule();

        var stats = e.Engine.GetStats();
        stats.StrandedGpus.ShouldBe(0);
        stats.FreeGpus.ShouldBe(8);
        e.NodesOf(3).ShouldBe(e.NodesOf(1));
        e.NodesOf(4).ShouldBe(e.NodesOf(2));
    }

    [Fact]
    public void Gang_TakesWholeNodes_InTheSmallestDomainThatFits()
    {
        var e = On(TestFleets.Blocks(4, 2, 3));
        e.Submit(Job(1).Gpus(16));
        e.Schedule();
        e.NodesOf(1).ShouldAllBe(n => n.StartsWith("b2-", StringComparison.Ordinal));

        e.Submit(Job(2).Gpus(24));
        e.Schedule();
        e.NodesOf(2).ShouldAllBe(n => n.StartsWith("b3-", StringComparison.Ordinal));

        e.Submit(Job(3).Gpus(32));
        e.Schedule();
        e.NodesOf(3).ShouldAllBe(n => n.StartsWith("b1-", StringComparison.Ordinal));
    }

    [Fact]
    public void Gang_LargerThanAnyBlock_SpansTheFewestBlocks()
    {
        var e = On(TestFleets.Blocks(3, 3, 1));
        e.Submit(Job(1).Gpus(32));
        e.Schedule();

        var blocks = e.NodesOf(1).Select(n => n.Split('-')[0]).ToList();
        blocks.Count.ShouldBe(4);
        blocks.Distinct().Count().ShouldBe(2);
        blocks.ShouldNotContain("b3");
    }

    [Theory]
    [InlineData(12, null, null, 2, 16)]
    [InlineData(16, 2, 8, 2, 16)]
    [InlineData(8, 2, 4, 2, 16)]
    [InlineData(24, 3, null, 3, 24)]
    public void Gang_HoldsWholeNodes(double gpus, int? nodes, int? perNode, int expectedNodes, int expectedHeldGpus)
    {
        var e = On(TestFleets.Flat(4, 8));
        var job = Job(1).Gpus(gpus);
        if (nodes is { } n)
        {
            job.Nodes(n);
        }

        if (perNode is { } g)
        {
            job.GpusPerNode(g);
        }

        e.Submit(job);
        e.Schedule();

        var placement = e.View(1).Placement!;
        placement.Nodes.Count.ShouldBe(expectedNodes);
        placement.HeldGpuMilli.ShouldBe(expectedHeldGpus * 1000);
        e.Engine.GetStats().FreeGpus.ShouldBe(32 - expectedHeldGpus);
    }

    [Fact]
    public void Shares_PackOntoOneGpu_AndNeverExceedIt()
    {
        var e = On(TestFleets.Flat(1, 2));
        for (var i = 1; i <= 4; i++)
        {
            e.Submit(Job(i).Gpus(0.25));
        }

        e.Schedule();
        var gpus = Enumerable.Range(1, 4).Select(i => e.View(i).Placement!.Slots[0].Gpu).Distinct().ToList();
        gpus.Count.ShouldBe(1, "four quarter shares pack onto one GPU");

        e.Submit(Job(5).Gpus(0.5));
        e.Schedule();
        e.IsRunning(5).ShouldBeTrue();
        e.View(5).Placement!.Slots[0].Gpu.ShouldNotBe(gpus[0]);

        e.Submit(Job(6).Gpus(0.75));
        e.Schedule();
        e.IsRunning(6).ShouldBeFalse("0.5 + 0.75 would put a GPU above 1.0");
        e.Reason(6).ShouldBe(PendingReason.Reserved);

        e.Submit(Job(7).Gpus(0.5));
        e.Schedule();
        e.IsRunning(7).ShouldBeTrue();
        e.View(7).Placement!.Slots[0].Gpu.ShouldBe(e.View(5).Placement!.Slots[0].Gpu);
        e.Engine.GetStats().AllocatedGpus.ShouldBe(2.0);
    }

    [Fact]
    public void Share_PrefersTheFullestSharedGpu_OverAFreshOne()
    {
        var e = On(TestFleets.Flat(2, 1));
        e.Submit(Job(1).Gpus(0.5));
        e.Schedule();
        e.Submit(Job(2).Gpus(0.25));
        e.Schedule();
        e.Submit(Job(3).Gpus(0.25));
        e.Schedule();

        e.NodesOf(2).ShouldBe(e.NodesOf(1));
        e.NodesOf(3).ShouldBe(e.NodesOf(1));
        e.Engine.GetStats().FreeGpus.ShouldBe(1);
    }

    [Fact]
    public void Job_PinnedToAPartition_RunsOnlyThere()
    {
        var e = On(BuiltInFleets.Get("small"));
        e.Submit(Job(1).Gpus(2).Partition("l40s"));
        e.Submit(Job(2).Gpus(4).Partition("h100"));
        e.Schedule();
        e.Fleet.Partitions[e.View(1).Placement!.Partition].Name.ShouldBe("l40s");
        e.Fleet.Partitions[e.View(2).Placement!.Partition].Name.ShouldBe("h100");
        e.NodesOf(1).ShouldBe(["l40s-03"], "the 2-GPU node is the exact fit");
    }

    [Fact]
    public void Gang_NeverSpansPartitions()
    {
        // 40 GPUs of 8-GPU nodes: h100 has 64 in one partition; l40s could never add to it.
        var e = On(BuiltInFleets.Get("small"));
        e.Submit(Job(1).Gpus(8).Partition("h100"));
        e.Schedule();
        e.Submit(Job(2).Gpus(64));
        e.Schedule();
        e.IsRunning(2).ShouldBeFalse();
        e.Reason(2).ShouldBe(PendingReason.Reserved);
    }
}
