namespace GpuCommons.Core.Jobs;

/// <summary>Priority class (Slurm QOS): preemptible jobs use idle GPUs and give them back on demand.</summary>
public enum PriorityClass
{
    /// <summary>The lowest class: any job of a higher class may preempt it.</summary>
    Preemptible = 0,
    /// <summary>The default class, ordered between preemptible and high.</summary>
    Normal = 1,
    /// <summary>The highest class: the largest class term in the priority, and never preempted by a job of a lower class.</summary>
    High = 2,
}
