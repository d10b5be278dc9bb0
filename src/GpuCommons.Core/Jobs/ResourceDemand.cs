using GpuCommons.Core.Fleet;

namespace GpuCommons.Core.Jobs;

/// <summary>
/// What a job takes on one node: thousandths of a GPU, CPU cores and memory in MiB. Pure functions compute it from
/// the job's request and its partition's defaults; the engine, the Slurm backend (which passes exactly these cores and
/// this memory) and the local backend (which enforces them) all use the same figures.
/// </summary>
/// <remarks>
/// Rules, per node of the job, where <c>g</c> is the job's GPUs on that node in thousandths:
/// cores = <see cref="JobSpec.CpusPerNode"/>, else ⌈<see cref="JobSpec.CpusPerGpu"/> × g / 1000⌉, else
/// ⌈<see cref="Partition.DefCpusPerGpu"/> × g / 1000⌉; memory the same with the MiB fields. A partition whose
/// default is 0 (its nodes do not track the resource) gives 0. So a GPU-only request gets its proportional share of
/// the node, and a share of a GPU gets that share of the per-GPU amount.
/// </remarks>
public readonly record struct ResourceDemand(int GpuMilli, int Cpus, long MemoryMiB)
{
    /// <summary>The demand on one node that holds <paramref name="gpuMilliOnNode"/> thousandths of the job's GPUs.</summary>
    public static ResourceDemand PerNode(JobSpec job, Partition partition, int gpuMilliOnNode)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(partition);
        ArgumentOutOfRangeException.ThrowIfNegative(gpuMilliOnNode);
        var cpus = job.CpusPerNode ?? Scale(job.CpusPerGpu ?? partition.DefCpusPerGpu, gpuMilliOnNode);
        var mem = job.MemoryMiBPerNode ?? Scale(job.MemoryMiBPerGpu ?? partition.DefMemoryMiBPerGpu, gpuMilliOnNode);
        return new ResourceDemand(gpuMilliOnNode, (int)Math.Min(cpus, int.MaxValue), mem);
    }

    /// <summary>
    /// GPUs (in thousandths) the job takes on each of its nodes: its whole request on one node, or
    /// <see cref="JobSpec.GpusPerNode"/> (default: the partition's typical node size) on each node of a multi-node job.
    /// </summary>
    public static int GpuMilliPerNode(JobSpec job, Partition partition)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(partition);
        if (job.IsFractional)
        {
            return job.GpuMilli;
        }

        var multiNode = job.Nodes is > 1 || job.GpusPerNode is not null || job.Gpus > partition.MaxGpusPerNode;
        return multiNode ? (job.GpusPerNode ?? partition.TypicalGpusPerNode) * JobSpec.MilliPerGpu : job.GpuMilli;
    }

    /// <summary>The demand on each node of the job in <paramref name="partition"/> (every node of a gang takes the same).</summary>
    public static ResourceDemand For(JobSpec job, Partition partition) => PerNode(job, partition, GpuMilliPerNode(job, partition));

    /// <summary>True when the node's GPU model is one the job allows and it has every feature the job asks for.</summary>
    public static bool Eligible(JobSpec job, Node node)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(node);
        if (job.GpuModels is { } models && !models.Any(m => string.Equals(m, node.GpuModel, StringComparison.OrdinalIgnoreCase)))
        {
            return false;
        }

        return node.HasFeatures(job.Features);
    }

    /// <summary>True when this demand fits in a node's free GPUs, cores and memory (untracked resources always fit).</summary>
    public bool FitsIn(int freeGpuMilli, int freeCpus, long freeMemoryMiB) =>
        GpuMilli <= freeGpuMilli && Cpus <= freeCpus && MemoryMiB <= freeMemoryMiB;

    /// <summary>True when this demand fits on an empty <paramref name="node"/>.</summary>
    public bool FitsOnEmpty(Node node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return FitsIn(node.Gpus * JobSpec.MilliPerGpu, node.CpuCapacity, node.MemoryCapacityMiB);
    }

    /// <summary>
    /// Why the job could never run on <paramref name="fleet"/>, naming the field at fault; null when some partition it
    /// may use has enough empty eligible nodes. Checks GPU model, features, cores and memory per node; the GPU count
    /// itself is the engine's check.
    /// </summary>
    public static SpecException? CheckFleet(JobSpec job, Fleet.Fleet fleet)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(fleet);
        IEnumerable<Partition> parts = job.Partition is { } name && fleet.FindPartition(name) is { } p ? [p] : fleet.Partitions;
        string? why = null, field = null;
        foreach (var part in parts)
        {
            var demand = For(job, part);
            var nodesNeeded = job.IsFractional ? 1 : Math.Max(1, (int)Math.Ceiling(job.GpuMilli / (double)Math.Max(1, demand.GpuMilli)));
            var eligible = part.Nodes.Select(i => fleet.Nodes[i]).Where(n => Eligible(job, n)).ToList();
            if (eligible.Count == 0)
            {
                Note(ref field, ref why, job.GpuModels is { } m && !part.Nodes.Any(i => m.Contains(fleet.Nodes[i].GpuModel, StringComparer.OrdinalIgnoreCase))
                    ? ("gpuModels", $"no node has GPU model {string.Join(" or ", m)} (partition '{part.Name}' has {string.Join(", ", part.Nodes.Select(i => fleet.Nodes[i].GpuModel).Distinct())})")
                    : ("features", $"no node in partition '{part.Name}' has all of {string.Join(", ", job.Features ?? [])}"));
                continue;
            }

            var fit = eligible.Count(n => demand.GpuMilli <= n.Gpus * JobSpec.MilliPerGpu && demand.FitsOnEmpty(n));
            if (fit >= nodesNeeded)
            {
                return null;
            }

            var most = eligible.Where(n => demand.GpuMilli <= n.Gpus * JobSpec.MilliPerGpu).ToList();
            if (most.Count > 0 && most.All(n => demand.Cpus > n.CpuCapacity))
            {
                Note(ref field, ref why, (job.CpusPerNode is not null ? "cpusPerNode" : "cpusPerGpu", $"{demand.Cpus} cores per node is more than any node of partition '{part.Name}' has ({most.Max(n => n.Cpus)})"));
            }
            else if (most.Count > 0 && most.All(n => demand.MemoryMiB > n.MemoryCapacityMiB))
            {
                Note(ref field, ref why, (job.MemoryMiBPerNode is not null ? "memoryMiBPerNode" : "memoryMiBPerGpu", $"{demand.MemoryMiB} MiB per node is more than any node of partition '{part.Name}' has ({most.Max(n => n.MemoryMiB)} MiB)"));
            }
        }

        return field is null ? null : new SpecException(field, why!);
    }

    private static void Note(ref string? field, ref string? why, (string Field, string Why) reason)
    {
        if (field is null)
        {
            (field, why) = reason;
        }
    }

    private static long Scale(long perGpu, int gpuMilli) => checked((perGpu * gpuMilli + JobSpec.MilliPerGpu - 1) / JobSpec.MilliPerGpu);

    /// <summary>The demand in words: GPUs, cores and MiB (for messages and logs).</summary>
    public override string ToString() => $"{GpuMilli / 1000.0:0.###} GPU, {Cpus} cores, {MemoryMiB} MiB";
}
