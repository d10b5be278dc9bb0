using GpuCommons.Core.Fleet;

namespace GpuCommons.Scheduling.Tests.Support;

/// <summary>Small fleets for scenario tests.</summary>
internal static class TestFleets
{
    /// <summary>One partition "p" of <paramref name="nodes"/> nodes n01.. with <paramref name="gpus"/> GPUs each, under the root.</summary>
    public static Fleet Flat(int nodes, int gpus = 8, string partition = "p", decimal rate = 1000)
    {
        var b = new FleetBuilder("test").AddPartition(partition, "H100", rate);
        for (var i = 1; i <= nodes; i++)
        {
            b.AddNode(partition, $"n{i:D2}", gpus);
        }

        return b.Build();
    }

    /// <summary>One partition "p" with nodes of the given sizes n01, n02, ... under the root.</summary>
    public static Fleet Sizes(params int[] gpus)
    {
        var b = new FleetBuilder("test").AddPartition("p", "H100", 1000);
        for (var i = 0; i < gpus.Length; i++)
        {
            b.AddNode("p", $"n{i + 1:D2}", gpus[i]);
        }

        return b.Build();
    }

    /// <summary>One partition "p" with leaf blocks (b1, b2, ...) of the given node counts, 8-GPU nodes named b1-n1...</summary>
    public static Fleet Blocks(params int[] nodesPerBlock)
    {
        var b = new FleetBuilder("test").AddPartition("p", "H100", 1000);
        for (var k = 0; k < nodesPerBlock.Length; k++)
        {
            b.AddDomain("p", $"b{k + 1}", null);
            for (var i = 1; i <= nodesPerBlock[k]; i++)
            {
                b.AddNode("p", $"b{k + 1}-n{i}", 8, $"b{k + 1}");
            }
        }

        return b.Build();
    }
}
