using Microsoft.Extensions.Logging;

namespace GpuCommons.Backends.Slurm;

/// <summary>Event ids 5100–5199 belong to the Slurm backend.</summary>
internal static partial class Log
{
    [LoggerMessage(5101, LogLevel.Warning, "Slurm unreachable: {Tool}: {Error} ({Failures} failures in a row; next try at {NextAttempt:o})")]
    public static partial void ControllerUnreachable(ILogger logger, string tool, string error, int failures, DateTimeOffset nextAttempt);

    [LoggerMessage(5102, LogLevel.Warning, "Slurm slow: {Tool} took {Milliseconds:0} ms")]
    public static partial void SlowCommand(ILogger logger, string tool, double milliseconds);

    [LoggerMessage(5103, LogLevel.Error, "Unexpected Slurm output from {Command}, line {Line}: {Problem}: '{Text}' (line skipped; no job state guessed)")]
    public static partial void MalformedOutput(ILogger logger, string command, int line, string problem, string text);

    [LoggerMessage(5110, LogLevel.Information, "Submitted job {JobId} to Slurm as {SlurmJobId} ({Name}) on {Nodes}")]
    public static partial void Submitted(ILogger logger, long jobId, long slurmJobId, string name, string nodes);

    [LoggerMessage(5111, LogLevel.Warning, "Job {JobId} already exists in Slurm as {SlurmJobId} ({Name}, {State}); adopted instead of submitting again")]
    public static partial void Adopted(ILogger logger, long jobId, long slurmJobId, string name, string state);

    [LoggerMessage(5112, LogLevel.Warning, "Submission of job {JobId} has an unknown outcome ({Error}); its name is looked up before any retry")]
    public static partial void SubmitUncertain(ILogger logger, long jobId, string error);

    [LoggerMessage(5113, LogLevel.Error, "Slurm refused job {JobId}: {Error}")]
    public static partial void SubmitRefused(ILogger logger, long jobId, string error);

    [LoggerMessage(5120, LogLevel.Information, "Job {JobId} (Slurm {SlurmJobId}) {Kind}: {Message}")]
    public static partial void JobEvent(ILogger logger, long jobId, long slurmJobId, BackendEventKind kind, string? message);

    [LoggerMessage(5121, LogLevel.Warning, "Job {JobId} (Slurm {SlurmJobId}) is known neither to squeue nor to sacct: reported lost")]
    public static partial void JobLost(ILogger logger, long jobId, long slurmJobId);

    [LoggerMessage(5130, LogLevel.Warning, "Node {Node} is {State} in Slurm: {Reason}")]
    public static partial void NodeChanged(ILogger logger, string node, string state, string? reason);

    [LoggerMessage(5131, LogLevel.Information, "Node {Node}: scontrol update state={State} reason={Reason}")]
    public static partial void NodeUpdated(ILogger logger, string node, string state, string? reason);

    [LoggerMessage(5140, LogLevel.Information, "Cancelling job {JobId} (Slurm {SlurmJobId}): signal {Signal}, kill after {GraceSeconds} s")]
    public static partial void Cancelling(ILogger logger, long jobId, long? slurmJobId, string? signal, double graceSeconds);

    [LoggerMessage(5150, LogLevel.Warning, "Reconciliation: {Kind} job={JobId} slurm={SlurmJobId} node={Node}: {Detail}")]
    public static partial void Discrepancy(ILogger logger, string kind, long? jobId, long? slurmJobId, string? node, string detail);

    [LoggerMessage(5151, LogLevel.Debug, "Reconciliation pass: {Expected} expected jobs, {SlurmJobs} Slurm rows, {Discrepancies} discrepancies in {Milliseconds:0} ms")]
    public static partial void ReconcilePass(ILogger logger, int expected, int slurmJobs, int discrepancies, double milliseconds);

    [LoggerMessage(5114, LogLevel.Warning, "Slurm refused job {JobId} for a reason in the job: {Reason}")]
    public static partial void StartRejected(ILogger logger, long jobId, string reason);

    [LoggerMessage(5115, LogLevel.Information, "Slurm association created: user {Login} may charge account {Account}")]
    public static partial void AssociationReady(ILogger logger, string login, string account);

    [LoggerMessage(5141, LogLevel.Warning, "Cancelling job {JobId} as {Login} failed ({Error}); cancelling as the server")]
    public static partial void CancelAsUserFailed(ILogger logger, long jobId, string login, string error);

    [LoggerMessage(5160, LogLevel.Warning, "Start of job {JobId} withdrawn: this server no longer leads; its held Slurm job {SlurmJobId} ({Name}) cancelled")]
    public static partial void StartFenced(ILogger logger, long jobId, long slurmJobId, string name);

    [LoggerMessage(5161, LogLevel.Warning, "Slurm job {SlurmJobId} ({Name}) is held: a start whose server lost the lease before releasing it; cancelled, submitting our own")]
    public static partial void HeldCancelled(ILogger logger, long slurmJobId, string name);
}
