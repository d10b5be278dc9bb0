namespace GpuCommons.Backends.Slurm;

/// <summary>Thresholds of the reconciliation pass.</summary>
public sealed class SlurmReconcilerOptions
{
    /// <summary>A pinned job still pending after this long is reported. <value>Default 5 minutes.</value></summary>
    public TimeSpan StartTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A job that ended in Slurm this long ago but is still running in GpuCommons is reported. <value>Default 2 minutes.</value></summary>
    public TimeSpan EndReportGrace { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>A job submitted less than this long ago is not yet reported lost (sbatch and squeue race). <value>Default 30 s.</value></summary>
    public TimeSpan LostGrace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most discrepancies kept for the operator view. <value>Default 1,000.</value></summary>
    public int RecentCapacity { get; set; } = 1000;

    /// <summary>Most unreadable lines reported per pass. <value>Default 20.</value></summary>
    public int MaxMalformedPerPass { get; set; } = 20;
}
