using System.Text.Json.Serialization;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Contracts;

/// <summary>A job submission (<c>POST /api/jobs</c>). Every field but project, gpus, walltime and command is optional.</summary>
public sealed class SubmitJobRequest
{
    /// <summary>The project the job is charged to.</summary>
    public string? Project { get; set; }

    /// <summary>The job's name (shown in the queue; <c>singleton</c> dependencies match on it).</summary>
    public string? Name { get; set; }

    /// <summary>The partition to run in; absent: any partition that fits.</summary>
    public string? Partition { get; set; }

    /// <summary>GPUs in all (a fraction: a share of one GPU).</summary>
    public double? Gpus { get; set; }

    /// <summary>Whole nodes the job spans.</summary>
    public int? Nodes { get; set; }

    /// <summary>GPUs on each of its nodes.</summary>
    public int? GpusPerNode { get; set; }

    /// <summary>Walltime: seconds, <c>90m</c>, <c>2h</c>, <c>1d</c>, <c>hh:mm[:ss]</c> or <c>d-hh[:mm[:ss]]</c> (minutes and seconds 0–59, hours after days 0–23).</summary>
    public string? Walltime { get; set; }

    /// <summary><c>preemptible</c>, <c>normal</c> (default) or <c>high</c>.</summary>
    public string? Priority { get; set; }

    /// <summary>Whether the job can be signalled and given a grace period before it is preempted.</summary>
    public bool? Checkpointable { get; set; }

    /// <summary>Whether the job goes back to the queue after a node failure or preemption (default true).</summary>
    public bool? Requeueable { get; set; }

    /// <summary>The program and its arguments.</summary>
    public List<string>? Command { get; set; }

    /// <summary>Where the command starts (inside the container when there is an image).</summary>
    public string? WorkingDirectory { get; set; }

    /// <summary>Environment variables for the command.</summary>
    public Dictionary<string, string>? Environment { get; set; }

    /// <summary>CPU cores per GPU (a share of a GPU gets that share); not with <see cref="CpusPerNode"/>. Default: the partition's.</summary>
    public int? CpusPerGpu { get; set; }

    /// <summary>CPU cores on each node of the job.</summary>
    public int? CpusPerNode { get; set; }

    /// <summary>Memory per GPU: <c>16G</c>, <c>500M</c>, <c>2T</c>, a number alone is MiB; not with <see cref="MemPerNode"/>. Default: the partition's.</summary>
    public string? MemPerGpu { get; set; }

    /// <summary>Memory on each node of the job, as <see cref="MemPerGpu"/>.</summary>
    public string? MemPerNode { get; set; }

    /// <summary>GPU models the job may run on (any of them).</summary>
    public List<string>? GpuModels { get; set; }

    /// <summary>Node features every node of the job must have, joined by <c>&amp;</c> (Slurm's <c>--constraint</c>).</summary>
    public string? Constraint { get; set; }

    /// <summary>Container image to run the command in; the working directory is then a path inside it.</summary>
    public string? Image { get; set; }

    /// <summary>Bind mounts into the container: <c>SOURCE:TARGET[:ro|:rw]</c>, sources the job's user can read.</summary>
    public List<string>? Mounts { get; set; }

    /// <summary>Makes this a job array (one record; tasks are expanded as they become eligible).</summary>
    public ArrayRequest? Array { get; set; }

    /// <summary>Conditions that must all hold before the job (or array) is queued.</summary>
    public List<DependencyRequest>? Dependency { get; set; }
}

/// <summary>A job array: Slurm's <c>--array</c>. <c>0-999%50</c> is <c>{"indices": "0-999", "maxRunning": 50}</c>.</summary>
public sealed class ArrayRequest
{
    /// <summary>Comma-separated <c>N</c>, <c>A-B</c> or <c>A-B:STEP</c> in increasing order, each 0 … 4,000,000.</summary>
    public string? Indices { get; set; }

    /// <summary>How many tasks may be pending or running at once (Slurm's <c>%N</c>); absent: no limit.</summary>
    public int? MaxRunning { get; set; }
}

/// <summary>One dependency condition: <c>afterok</c>, <c>afterany</c>, <c>afternotok</c> (with <c>jobs</c>) or <c>singleton</c>.</summary>
public sealed class DependencyRequest
{
    /// <summary><c>afterok</c>, <c>afterany</c>, <c>afternotok</c> or <c>singleton</c>.</summary>
    public string? Type { get; set; }

    /// <summary>The jobs (or arrays) the condition names; none for <c>singleton</c>.</summary>
    public List<long>? Jobs { get; set; }
}

/// <summary>One condition of a job's dependency (Slurm's <c>--dependency</c>; all conditions must hold).</summary>
/// <param name="Type"><c>afterok</c>, <c>afterany</c>, <c>afternotok</c> or <c>singleton</c>.</param>
/// <param name="Jobs">The jobs it names (null for <c>singleton</c>).</param>
public sealed record DependencyCondition(
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("jobs"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<long>? Jobs);

/// <summary>An array as the API shows it: its indices, limit, the tasks not yet expanded (squeue's <c>[8-999%50]</c>) and counts.</summary>
/// <param name="Indices">The indices as submitted.</param>
/// <param name="MaxRunning">Most tasks pending or running at once; null: no limit.</param>
/// <param name="Tasks">Tasks in all.</param>
/// <param name="PendingTasks">Indices not yet expanded into tasks (empty: all are).</param>
/// <param name="LiveTasks">Tasks expanded and not ended.</param>
/// <param name="FinishedTasks">Tasks that ended with exit code 0.</param>
/// <param name="NotOkTasks">Tasks that ended otherwise.</param>
public sealed record ArrayDto(string Indices, int? MaxRunning, long Tasks, string? PendingTasks, int? LiveTasks, long? FinishedTasks, long? NotOkTasks);

/// <summary>A job as the API shows it (<c>GET /api/jobs/{id}</c>, the items of <c>GET /api/jobs</c>).</summary>
/// <param name="Id">The job's id.</param>
/// <param name="Name">Its name.</param>
/// <param name="Project">The project it is charged to.</param>
/// <param name="User">Who submitted it.</param>
/// <param name="Partition">The partition it asked for or runs in; null: any that fits.</param>
/// <param name="Gpus">GPUs in all.</param>
/// <param name="Nodes">Whole nodes, when it asked for nodes.</param>
/// <param name="GpusPerNode">GPUs on each node, when it asked for nodes.</param>
/// <param name="WalltimeSeconds">Its time limit.</param>
/// <param name="Priority"><c>preemptible</c>, <c>normal</c> or <c>high</c>.</param>
/// <param name="State">Where it stands, as its wire name (<see cref="JobStateNames"/>).</param>
/// <param name="SubmitTime">When it was submitted.</param>
/// <param name="StartTime">When its current (or last) attempt started.</param>
/// <param name="EndTime">When it ended.</param>
/// <param name="Placement">Where it runs (<c>node:gpu;…</c>).</param>
/// <param name="Allocation">The allocation it is charged to.</param>
/// <param name="ExitCode">Its command's exit code, once ended.</param>
/// <param name="Outcome">How it ended, in words.</param>
/// <param name="Attempt">How many times it was requeued.</param>
/// <param name="Command">The program and its arguments.</param>
/// <param name="Reason">While pending: why it waits (a code, as squeue's REASON).</param>
/// <param name="ReasonText">While pending: why it waits, in words.</param>
/// <param name="EstimatedStart">While pending: when it should start.</param>
/// <param name="CancelRequested">True once a cancel was asked for and not yet done.</param>
public sealed record JobDto(
    long Id, string Name, string Project, string User, string? Partition, double Gpus, int? Nodes, int? GpusPerNode,
    long WalltimeSeconds, string Priority, [property: JsonConverter(typeof(JobStateJsonConverter))] JobState State, DateTimeOffset SubmitTime,
    DateTimeOffset? StartTime, DateTimeOffset? EndTime, string? Placement, string? Allocation, int? ExitCode, string? Outcome, int Attempt,
    IReadOnlyList<string> Command, string? Reason = null, string? ReasonText = null, DateTimeOffset? EstimatedStart = null, bool? CancelRequested = null)
{
    /// <summary>Cores per GPU the job asked for; null: per node or the partition's default.</summary>
    public int? CpusPerGpu { get; init; }

    /// <summary>Cores per node the job asked for.</summary>
    public int? CpusPerNode { get; init; }

    /// <summary>Memory per GPU the job asked for, in MiB.</summary>
    public long? MemoryMiBPerGpu { get; init; }

    /// <summary>Memory per node the job asked for, in MiB.</summary>
    public long? MemoryMiBPerNode { get; init; }

    /// <summary>GPU models it may run on.</summary>
    public IReadOnlyList<string>? GpuModels { get; init; }

    /// <summary>Node features it needs.</summary>
    public IReadOnlyList<string>? Features { get; init; }

    /// <summary>The container image the job runs in, if any.</summary>
    public string? Image { get; init; }

    /// <summary>Its bind mounts (<c>SOURCE:TARGET[:ro]</c>).</summary>
    public IReadOnlyList<string>? Mounts { get; init; }

    /// <summary>On an array's own record: its indices and what is left of it.</summary>
    public ArrayDto? Array { get; init; }

    /// <summary>On an array task: the array's id (<c>ARRAYID_TASK</c> in the CLI).</summary>
    public long? ArrayJobId { get; init; }

    /// <summary>On an array task: its index.</summary>
    public long? ArrayTaskId { get; init; }

    /// <summary>The job's dependency conditions, if any.</summary>
    public IReadOnlyList<DependencyCondition>? Dependency { get; init; }
}

/// <summary>
/// The answer (202) to a submission a standby took while no leader could number it: it is stored, and the same request
/// with the same <c>Idempotency-Key</c> later answers the job.
/// </summary>
/// <param name="State">Always <see cref="AcceptedState"/>.</param>
/// <param name="IdempotencyKey">The key to send again.</param>
/// <param name="Detail">What to do, in words.</param>
public sealed record SubmitAccepted(string State, string IdempotencyKey, string Detail)
{
    /// <summary>The <c>state</c> of this answer, never a job state.</summary>
    public const string AcceptedState = "accepted";
}

/// <summary>What a submission answers, read before knowing which: a job (with its id) or <see cref="SubmitAccepted"/> (without).</summary>
/// <param name="Id">The job's id; null when only accepted.</param>
/// <param name="State">A job state's wire name, or <see cref="SubmitAccepted.AcceptedState"/>.</param>
public sealed record SubmitReply(long? Id, string? State)
{
    /// <summary>Whether a standby stored it without a job id yet.</summary>
    public bool IsAcceptedOnly => Id is null && State == SubmitAccepted.AcceptedState;
}

/// <summary>One page of a list, and the cursor of the next (null: the last page).</summary>
/// <typeparam name="T">What the list holds.</typeparam>
/// <param name="Items">This page's items.</param>
/// <param name="Next">Give as <c>after</c> for the next page; null on the last.</param>
public sealed record Page<T>(IReadOnlyList<T> Items, string? Next);
