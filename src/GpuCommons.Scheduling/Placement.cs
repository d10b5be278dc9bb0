using System.Globalization;
using System.Text;
using GpuCommons.Core.Fleet;

namespace GpuCommons.Scheduling;

/// <summary>One GPU (or a share of one) given to a job.</summary>
public readonly record struct GpuSlot(int Node, int Gpu, int Milli)
{
    /// <summary>True when the job has only a share of this GPU (<see cref="Milli"/> under a whole GPU), not all of it.</summary>
    public bool IsShare => Milli < Core.Jobs.JobSpec.MilliPerGpu;
}

/// <summary>Exactly where a job runs: a partition and a set of GPUs (all start and stop together).</summary>
public sealed class Placement
{
    /// <summary>Creates a placement; <paramref name="nodes"/> are the distinct nodes of <paramref name="slots"/>, in order.</summary>
    /// <param name="partition">Index of the partition in the fleet.</param>
    /// <param name="slots">The GPUs (or shares) the job runs on.</param>
    /// <param name="nodes">The distinct nodes of the slots, in order.</param>
    /// <param name="heldGpus">Capacity held in thousandths of a GPU (<see cref="HeldGpuMilli"/>).</param>
    public Placement(int partition, GpuSlot[] slots, int[] nodes, int heldGpus)
    {
        Partition = partition;
        Slots = slots;
        Nodes = nodes;
        HeldGpuMilli = heldGpus;
    }

    /// <summary>Index of the partition in the fleet (a job never spans partitions).</summary>
    public int Partition { get; }
    /// <summary>The GPUs, or shares of GPUs, the job runs on.</summary>
    public IReadOnlyList<GpuSlot> Slots { get; }
    /// <summary>Distinct nodes, in order.</summary>
    public IReadOnlyList<int> Nodes { get; }
    /// <summary>Capacity held in thousandths of a GPU (whole nodes for multi-node jobs), which is what quotas count and grants are charged.</summary>
    public int HeldGpuMilli { get; }

    /// <summary><c>NODE:GPU</c> items, or <c>NODE:GPU:FRACTION</c> for a share, separated by <c>;</c>.</summary>
    public string Format(Fleet fleet)
    {
        var sb = new StringBuilder();
        foreach (var s in Slots)
        {
            if (sb.Length > 0)
            {
                sb.Append(';');
            }

            sb.Append(fleet.Nodes[s.Node].Name).Append(':').Append(s.Gpu.ToString(CultureInfo.InvariantCulture));
            if (s.IsShare)
            {
                sb.Append(':').Append((s.Milli / 1000.0).ToString("0.###", CultureInfo.InvariantCulture));
            }
        }

        return sb.ToString();
    }

    /// <summary>GPU indices per node, as a backend needs them (<c>CUDA_VISIBLE_DEVICES</c>).</summary>
    public IEnumerable<(int Node, int[] Gpus)> ByNode() =>
        Slots.GroupBy(s => s.Node).Select(g => (g.Key, g.Select(s => s.Gpu).ToArray()));
}
