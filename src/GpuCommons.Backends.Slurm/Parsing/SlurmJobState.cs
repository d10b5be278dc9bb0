namespace GpuCommons.Backends.Slurm.Parsing;

/// <summary>Job states as Slurm prints them (<c>squeue %T</c>, <c>sacct State</c>).</summary>
public enum SlurmJobState
{
    Pending,
    Configuring,
    Running,
    Completing,
    Suspended,
    Requeued,
    RequeueHold,
    RequeueFed,
    Resizing,
    Stopped,
    SignalingStage,
    StageOut,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    SpecialExit,
    Revoked,
}

/// <summary>Mapping of Slurm's state words; an unknown word is a parse error, never a guess.</summary>
public static class SlurmJobStates
{
    private static readonly Dictionary<string, SlurmJobState> Words = new(StringComparer.OrdinalIgnoreCase)
    {
        ["PENDING"] = SlurmJobState.Pending,
        ["CONFIGURING"] = SlurmJobState.Configuring,
        ["RUNNING"] = SlurmJobState.Running,
        ["COMPLETING"] = SlurmJobState.Completing,
        ["SUSPENDED"] = SlurmJobState.Suspended,
        ["REQUEUED"] = SlurmJobState.Requeued,
        ["REQUEUE_HOLD"] = SlurmJobState.RequeueHold,
        ["REQUEUE_FED"] = SlurmJobState.RequeueFed,
        ["RESIZING"] = SlurmJobState.Resizing,
        ["STOPPED"] = SlurmJobState.Stopped,
        ["SIGNALING"] = SlurmJobState.SignalingStage,
        ["STAGE_OUT"] = SlurmJobState.StageOut,
        ["COMPLETED"] = SlurmJobState.Completed,
        ["FAILED"] = SlurmJobState.Failed,
        ["CANCELLED"] = SlurmJobState.Cancelled,
        ["TIMEOUT"] = SlurmJobState.Timeout,
        ["NODE_FAIL"] = SlurmJobState.NodeFail,
        ["PREEMPTED"] = SlurmJobState.Preempted,
        ["BOOT_FAIL"] = SlurmJobState.BootFail,
        ["DEADLINE"] = SlurmJobState.Deadline,
        ["OUT_OF_MEMORY"] = SlurmJobState.OutOfMemory,
        ["SPECIAL_EXIT"] = SlurmJobState.SpecialExit,
        ["REVOKED"] = SlurmJobState.Revoked,
    };

    /// <summary>Parses <c>RUNNING</c>, <c>CANCELLED by 0</c>, <c>CANCELLED+</c>.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out SlurmJobState state)
    {
        text = text.Trim();
        var space = text.IndexOf(' ');
        if (space >= 0)
        {
            text = text[..space];
        }

        text = text.TrimEnd('+');
        var lookup = Words.GetAlternateLookup<ReadOnlySpan<char>>();
        return lookup.TryGetValue(text, out state);
    }

    /// <summary>True when the job will not run again in Slurm (it holds no GPUs any more).</summary>
    public static bool IsTerminal(this SlurmJobState state) => state >= SlurmJobState.Completed;

    /// <summary>True when the job holds its GPUs (running, or finishing on its nodes).</summary>
    public static bool IsActive(this SlurmJobState state) =>
        state is SlurmJobState.Running or SlurmJobState.Completing or SlurmJobState.Configuring
            or SlurmJobState.Suspended or SlurmJobState.Stopped or SlurmJobState.SignalingStage
            or SlurmJobState.StageOut or SlurmJobState.Resizing;
}
