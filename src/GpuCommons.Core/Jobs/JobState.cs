namespace GpuCommons.Core.Jobs;

/// <summary>Every submitted job is, at any moment, exactly one of these.</summary>
public enum JobState
{
    /// <summary>Waiting in the queue (a preempted or requeued job is pending again).</summary>
    Pending,
    /// <summary>Holding its GPUs: the engine placed it and the backend was told to start it.</summary>
    Running,
    /// <summary>Ended with success.</summary>
    Finished,
    /// <summary>Ended in failure: a nonzero exit code, its walltime reached, or a node failure that did not requeue it.</summary>
    Failed,
    /// <summary>Cancelled, while pending or while running.</summary>
    Cancelled,
}
