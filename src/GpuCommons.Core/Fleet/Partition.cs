namespace GpuCommons.Core.Fleet;

/// <summary>A pool of nodes of one GPU model with its own fabric. No job spans partitions.</summary>
public sealed class Partition
{
    internal Partition(int index, string name, string gpuModel, decimal ratePerGpuHour)
    {
        Index = index;
        Name = name;
        GpuModel = gpuModel;
        RatePerGpuHour = ratePerGpuHour;
    }

    /// <summary>Position of the partition in <see cref="Fleet.Partitions"/>.</summary>
    public int Index { get; }
    /// <summary>The partition's name, unique in the fleet without regard to case.</summary>
    public string Name { get; }
    /// <summary>The partition's GPU model; a node may name another (<see cref="Node.GpuModel"/>).</summary>
    public string GpuModel { get; }
    /// <summary>Charge per GPU-hour in the center's currency (KRW by default).</summary>
    public decimal RatePerGpuHour { get; }
    /// <summary>The root topology domain (pool/spine), named after the partition; every node of the partition is below it.</summary>
    public TopologyDomain Root { get; internal set; } = null!;
    /// <summary>Indices in <see cref="Fleet.Nodes"/> of the partition's nodes.</summary>
    public IReadOnlyList<int> Nodes { get; internal set; } = [];
    /// <summary>Domains of this partition, indexed by <see cref="TopologyDomain.LocalIndex"/>.</summary>
    public IReadOnlyList<TopologyDomain> Domains { get; internal set; } = [];
    /// <summary>GPUs on all the partition's nodes.</summary>
    public int TotalGpus { get; internal set; }
    /// <summary>The most common GPU count per node: the default GPUs per node of a multi-node job.</summary>
    public int TypicalGpusPerNode { get; internal set; }
    /// <summary>The largest GPU count of one of the partition's nodes.</summary>
    public int MaxGpusPerNode { get; internal set; }

    /// <summary>
    /// Cores given per GPU to a job that asks for none (Slurm's DefCpuPerGPU); a share of a GPU gets that share,
    /// rounded up. The fleet spec's <c>defCpusPerGpu</c>, else the largest whole number that lets every node be
    /// filled with GPU-only jobs: the least, over the partition's nodes that track cores, of cores ÷ GPUs. 0 when no
    /// node tracks cores.
    /// </summary>
    public int DefCpusPerGpu { get; internal set; }

    /// <summary>Memory in MiB given per GPU to a job that asks for none (Slurm's DefMemPerGPU); derived like <see cref="DefCpusPerGpu"/>.</summary>
    public long DefMemoryMiBPerGpu { get; internal set; }

    /// <summary>The partition's name.</summary>
    public override string ToString() => Name;
}
