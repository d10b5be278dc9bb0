namespace GpuCommons.Core.Jobs;

/// <summary>Every submitted job is, at any moment, exactly one of these.</summary>
public enum JobState
{
    Pending,
    Running,
    Finished,
    Failed,
    Cancelled,
}
