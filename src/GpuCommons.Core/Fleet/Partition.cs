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

    public int Index { get; }
    public string Name { get; }
    public string GpuModel { get; }
    /// <summary>Charge per GPU-hour in the center's currency (KRW by default).</summary>
    public decimal RatePerGpuHour { get; }
    public TopologyDomain Root { get; internal set; } = null!;
    public IReadOnlyList<int> Nodes { get; internal set; } = [];
    /// <summary>Domains of this partition, indexed by <see cref="TopologyDomain.LocalIndex"/>.</summary>
    public IReadOnlyList<TopologyDomain> Domains { get; internal set; } = [];
    public int TotalGpus { get; internal set; }
    /// <summary>The most common GPU count per node: the default GPUs per node of a multi-node job.</summary>
    public int TypicalGpusPerNode { get; internal set; }
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

    public override string ToString() => Name;
}
