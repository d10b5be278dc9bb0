namespace GpuCommons.Scheduling;

/// <summary>Capacity and queue figures of the engine at one instant.</summary>
public sealed record EngineStats(
    int TotalGpus,
    int UpGpus,
    double AllocatedGpus,
    int FreeGpus,
    int StrandedGpus,
    int PendingJobs,
    int RunningJobs,
    int PreemptingJobs,
    double[] AllocatedGpusByPartition);
