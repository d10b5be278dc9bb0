namespace GpuCommons.Backends.Slurm;

/// <summary>What GpuCommons believes about one job it handed to Slurm.</summary>
/// <param name="JobId">GpuCommons job id.</param>
/// <param name="Attempt">Start attempt (0 first); the Slurm name is <c>gpuc-&lt;id&gt;[-r&lt;attempt&gt;]</c>.</param>
/// <param name="State">Submitted (not yet seen running) or Running.</param>
/// <param name="SlurmJobId">The Slurm id if it was saved (null: crashed before saving it).</param>
/// <param name="Since">When it was submitted (Submitted) or started (Running).</param>
/// <param name="Nodes">Where the engine placed it.</param>
public sealed record ExpectedJob(long JobId, int Attempt, ExpectedJobState State, long? SlurmJobId, DateTimeOffset Since, IReadOnlyList<string> Nodes);

public enum ExpectedJobState
{
    /// <summary>Handed to Slurm, not yet reported running.</summary>
    Submitted,
    /// <summary>Reported running.</summary>
    Running,
}

/// <summary>Kinds of disagreement between GpuCommons and Slurm, for operators.</summary>
public enum DiscrepancyKind
{
    /// <summary>GpuCommons has the job submitted or running; Slurm has no record of it (neither squeue nor sacct).</summary>
    LostInSlurm,
    /// <summary>A live Slurm job named like ours that GpuCommons does not expect (started by hand, or a stale submission).</summary>
    UnknownInSlurm,
    /// <summary>More than one live Slurm job under the same GpuCommons name.</summary>
    DuplicateInSlurm,
    /// <summary>Pinned job still pending in Slurm after the start timeout (nodes busy with foreign work, node down, reservation).</summary>
    NotStartedInTime,
    /// <summary>Running on other nodes than the engine placed it.</summary>
    WrongNodes,
    /// <summary>Slurm says the job ended a while ago but GpuCommons still has it running.</summary>
    EndedInSlurm,
    /// <summary>slurmctld (or slurmdbd) did not answer; the pass was skipped and will be retried with back-off.</summary>
    ControllerUnreachable,
    /// <summary>A Slurm command took longer than the slow threshold.</summary>
    ControllerSlow,
    /// <summary>Slurm printed a line we could not read; it was skipped, nothing was guessed.</summary>
    MalformedOutput,
}

/// <summary>One discrepancy, as a structured record for logs and the operator view.</summary>
public sealed record SlurmDiscrepancy(
    DiscrepancyKind Kind,
    DateTimeOffset DetectedAt,
    long? JobId,
    long? SlurmJobId,
    string? Node,
    string Detail,
    string SuggestedAction)
{
    /// <summary>The Slurm job name the discrepancy is about, where it is one of ours (strays carry their attempt in it).</summary>
    public string? SlurmName { get; init; }
}

/// <summary>The outcome of one reconciliation pass.</summary>
public sealed record ReconciliationReport(
    DateTimeOffset Time,
    bool SlurmReachable,
    int ExpectedJobs,
    int SlurmJobs,
    IReadOnlyList<SlurmDiscrepancy> Discrepancies,
    TimeSpan Elapsed);
