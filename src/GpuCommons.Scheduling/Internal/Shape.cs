using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

internal enum ShapeKind
{
    Share,
    SingleNode,
    Gang,
}

/// <summary>A job's request resolved against one partition: a share of a GPU, GPUs on one node, or whole nodes.</summary>
internal readonly struct Shape
{
    public ShapeKind Kind { get; init; }
    /// <summary>Share: thousandths of one GPU; SingleNode: GPUs; Gang: GPUs per node.</summary>
    public int Amount { get; init; }
    public int Nodes { get; init; }
    /// <summary>Capacity the job will hold, in thousandths of a GPU (gangs hold whole nodes of the typical size).</summary>
    public long HeldMilli { get; init; }

    public static bool TryResolve(JobSpec spec, Partition p, int[] nodesAtLeast, out Shape shape, out string? never)
    {
        never = null;
        shape = default;
        if (spec.Gpus < 1)
        {
            shape = new Shape { Kind = ShapeKind.Share, Amount = spec.GpuMilli, Nodes = 1, HeldMilli = spec.GpuMilli };
            return true;
        }

        var g = (int)spec.Gpus;
        var singleNode = (spec.Nodes is null or 1) && (spec.GpusPerNode is null || spec.GpusPerNode == g);
        if (singleNode && g <= p.MaxGpusPerNode)
        {
            shape = new Shape { Kind = ShapeKind.SingleNode, Amount = g, Nodes = 1, HeldMilli = (long)g * JobSpec.MilliPerGpu };
            return true;
        }

        if (spec.Nodes == 1)
        {
            never = $"gpus: {g} GPUs on one node, but the largest node of partition '{p.Name}' has {p.MaxGpusPerNode}";
            return false;
        }

        var perNode = spec.GpusPerNode ?? (spec.Nodes is { } n0 ? (g + n0 - 1) / n0 : p.TypicalGpusPerNode);
        if (perNode > p.MaxGpusPerNode)
        {
            never = $"gpusPerNode: {perNode} GPUs per node, but the largest node of partition '{p.Name}' has {p.MaxGpusPerNode}";
            return false;
        }

        var nodes = spec.Nodes ?? ((g + perNode - 1) / perNode);
        var available = nodesAtLeast[perNode];
        if (nodes > available)
        {
            never = $"gpus: {g} GPUs need {nodes} nodes with at least {perNode} GPUs each, but partition '{p.Name}' has {available} such nodes ({p.TotalGpus} GPUs in all)";
            return false;
        }

        var nodeSize = Math.Max(perNode, p.TypicalGpusPerNode);
        shape = new Shape { Kind = ShapeKind.Gang, Amount = perNode, Nodes = nodes, HeldMilli = (long)nodes * nodeSize * JobSpec.MilliPerGpu };
        return true;
    }
}
