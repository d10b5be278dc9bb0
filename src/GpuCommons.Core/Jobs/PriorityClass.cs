namespace GpuCommons.Core.Jobs;

/// <summary>Priority class (Slurm QOS): preemptible jobs use idle GPUs and give them back on demand.</summary>
public enum PriorityClass
{
    Preemptible = 0,
    Normal = 1,
    High = 2,
}
