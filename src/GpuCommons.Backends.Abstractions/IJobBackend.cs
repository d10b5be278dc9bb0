namespace GpuCommons.Backends;

/// <summary>
/// Where admitted jobs actually run (this machine, a Slurm cluster, …). The server never assumes which one.
/// A backend is told what to start, where, and reports back what happened through <see cref="PollAsync"/>.
/// </summary>
public interface IJobBackend : IAsyncDisposable
{
    /// <summary>Short name: <c>local</c>, <c>slurm</c>.</summary>
    string Name { get; }

    /// <summary>
    /// Where this backend's runs can be seen: two backends with the same scope see the same runs (every server on one
    /// Slurm cluster), while a backend that runs jobs on its own machine sees only the runs it started there. After a
    /// takeover, a job written as started by a backend of another scope, with no handle recorded yet, cannot be looked up
    /// here: its run went with that machine, and starting it again here could run it twice.
    /// </summary>
    string RunScope { get; }

    /// <summary>Reads the fleet this backend runs on (nodes, GPUs, partitions and node states).</summary>
    Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Starts a job on exactly the nodes and GPUs given. Idempotent by <see cref="BackendJob.JobId"/>: starting a job
    /// that the backend already runs returns its existing handle instead of starting it twice.
    /// </summary>
    Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken);

    /// <summary>Stops a job: a signal to all its processes, then a kill after <paramref name="grace"/>.</summary>
    Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken);

    /// <summary>What happened since the last poll: jobs that started, ended (with exit code and times) or were lost.</summary>
    Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken);

    /// <summary>After a restart of the server: takes back a job that was running, or reports it lost.</summary>
    Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken);

    /// <summary>
    /// What the job's GPUs are doing (utilisation, memory, the job's processes on them), as the backend last saw it;
    /// <see langword="null"/> when the backend does not know the job or has no GPU telemetry. Optional: the default
    /// implementation returns <see langword="null"/>.
    /// </summary>
    Task<JobGpuUsage?> GetGpuUsageAsync(long jobId, CancellationToken cancellationToken) => Task.FromResult<JobGpuUsage?>(null);
}

/// <summary>
/// A job as the backend needs it. <see cref="Attempt"/> counts starts of the same job (0 first, 1 after one requeue…):
/// idempotency is per job and attempt, so a requeued job is started again while a retried start is not.
/// </summary>
public sealed record BackendJob(
    long JobId,
    string Name,
    string Project,
    string User,
    IReadOnlyList<string> Command,
    string? WorkingDirectory,
    IReadOnlyDictionary<string, string> Environment,
    IReadOnlyList<AssignedNode> Nodes,
    TimeSpan Walltime,
    string LogDirectory,
    bool Checkpointable,
    int Attempt = 0)
{
    /// <summary>
    /// No run of this job can have been submitted before this time (the server accepted the job then, less a margin for
    /// clock skew). A backend that looks up an earlier submission by name, after a crash, leaves older ones alone: they
    /// belong to an earlier database that numbered its jobs the same way.
    /// </summary>
    public DateTimeOffset? NotBefore { get; init; }

    /// <summary>
    /// The operating-system account the job runs as: its user's uid and its project's group. <see langword="null"/> in
    /// single-user mode, where every job runs as the account the server runs as. A backend never runs a job that names
    /// an identity as any other account, and refuses uid 0.
    /// </summary>
    public PosixIdentity? RunAs { get; init; }

    /// <summary>
    /// The container image the job runs in, with its mounts; <see langword="null"/> for a job that runs directly on the
    /// node. A backend that cannot run containers refuses such a job with <see cref="JobStartRejectedException"/>.
    /// </summary>
    public ContainerSpec? Container { get; init; }

    /// <summary>The job is one task of a job array: the backend sets <see cref="ArrayTask.Variables"/> in its environment.</summary>
    public ArrayTask? ArrayTask { get; init; }
}

/// <summary>
/// Which task of which job array a job is. <paramref name="ArrayJobId"/> is the array's id (what <c>gpuc queue</c> shows
/// before the <c>_</c>), <paramref name="TaskId"/> the task's index; count, min and max describe the whole array.
/// </summary>
public sealed record ArrayTask(long ArrayJobId, long TaskId, long Count, long Min, long Max)
{
    /// <summary>
    /// The variables a task runs with, as sbatch sets them for an array task: <c>GPUC_ARRAY_JOB_ID</c>,
    /// <c>GPUC_ARRAY_TASK_ID</c>, <c>GPUC_ARRAY_TASK_COUNT</c>, <c>GPUC_ARRAY_TASK_MIN</c>, <c>GPUC_ARRAY_TASK_MAX</c> and
    /// the same names with <c>SLURM_</c>, so that scripts written for Slurm run unchanged.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> Variables()
    {
        var list = new List<KeyValuePair<string, string>>(10);
        foreach (var prefix in new[] { "GPUC_", "SLURM_" })
        {
            list.Add(new(prefix + "ARRAY_JOB_ID", ArrayJobId.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            list.Add(new(prefix + "ARRAY_TASK_ID", TaskId.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            list.Add(new(prefix + "ARRAY_TASK_COUNT", Count.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            list.Add(new(prefix + "ARRAY_TASK_MIN", Min.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            list.Add(new(prefix + "ARRAY_TASK_MAX", Max.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        return list;
    }
}

/// <summary>
/// A POSIX account: the login name and uid of a user, and the group (gid) of the project the job is charged to, which is
/// the job's primary group. <paramref name="Home"/> is the user's home directory (HOME in the job).
/// </summary>
public sealed record PosixIdentity(string User, int Uid, string Group, int Gid, string Home);

/// <summary>
/// <see cref="IJobBackend.StartAsync"/> could not start the job for a reason in the job itself (its command, its working
/// directory, its account): starting it again would fail the same way. The server ends the job as failed with
/// <see cref="Exception.Message"/> as the reason and gives its GPUs back at once. Any other exception from a start is an
/// infrastructure failure, retried with back-off.
/// </summary>
public sealed class JobStartRejectedException : Exception
{
    /// <summary>Creates the exception with the reason shown to the job's owner.</summary>
    public JobStartRejectedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with the reason shown to the job's owner and the fault behind it.</summary>
    public JobStartRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with no reason.</summary>
    public JobStartRejectedException()
    {
    }
}

/// <summary>GPUs of one node given to a job: indices, and the UUIDs where the backend knows them.</summary>
public sealed record AssignedNode(string Node, IReadOnlyList<int> Gpus, IReadOnlyList<string> GpuUuids, double? Share = null)
{
    /// <summary>CPU cores the engine gave the job on this node; null: not tracked (the backend passes nothing).</summary>
    public int? Cpus { get; init; }

    /// <summary>Memory in MiB the engine gave the job on this node; null: not tracked.</summary>
    public long? MemoryMiB { get; init; }
}

/// <summary>The backend's own identity of a running job (a process group id, a Slurm job id), persisted by the server.</summary>
public sealed record BackendHandle(long JobId, string ExternalId, string? StdoutPath, string? StderrPath);

/// <summary>What a <see cref="BackendEvent"/> reports: a job's start or end, or a node's change of state.</summary>
public enum BackendEventKind
{
    /// <summary>The job began to run in the backend; the event's time is the backend's own start, from which it is charged.</summary>
    Started,

    /// <summary>The job's command ended by itself (the server still ends it as failed when the event carries a nonzero exit code).</summary>
    Finished,

    /// <summary>The job ended in failure (a nonzero exit code, a node failure, out of memory).</summary>
    Failed,

    /// <summary>The job was stopped: cancelled by GpuCommons, or cancelled or preempted in the cluster manager itself.</summary>
    Cancelled,

    /// <summary>The job was killed because it reached its walltime (or, in Slurm, its deadline).</summary>
    WalltimeExceeded,

    /// <summary>The backend no longer knows the job (process gone without an exit code, Slurm lost it).</summary>
    Lost,

    /// <summary>The node named in the event went down: no job may start on it until it is up again.</summary>
    NodeDown,

    /// <summary>The node named in the event is back in service.</summary>
    NodeUp,

    /// <summary>The node named in the event is draining: its running jobs go on, no new job starts on it.</summary>
    NodeDraining,
}

/// <summary>One thing the backend saw happen, as returned by <see cref="IJobBackend.PollAsync"/>.</summary>
/// <param name="Kind">What happened.</param>
/// <param name="JobId">The GpuCommons job it concerns; 0 for the node events.</param>
/// <param name="Time">When it happened, as the backend knows it (for a job, the backend's own start or end time).</param>
/// <param name="ExitCode">The job's exit code, for an end that has one.</param>
/// <param name="Node">The node a node event is about; for a job event, a node the job ran on, where known.</param>
/// <param name="Message">What happened, in words (the reason a node changed state, how a job ended).</param>
public sealed record BackendEvent(BackendEventKind Kind, long JobId, DateTimeOffset Time, int? ExitCode = null, string? Node = null, string? Message = null);

/// <summary>A fleet read from a backend: nodes with GPUs (and their UUIDs where known).</summary>
public sealed record DiscoveredFleet(string Source, IReadOnlyList<DiscoveredNode> Nodes, bool VirtualGpus, string? Note = null);

/// <summary>One node of a <see cref="DiscoveredFleet"/>, as the backend sees it.</summary>
/// <param name="Name">The node's name in the backend (Slurm's NodeName, this machine's name).</param>
/// <param name="Partition">The partition the node belongs to.</param>
/// <param name="GpuModel">The model of the node's GPUs.</param>
/// <param name="Gpus">The node's GPUs, by index.</param>
/// <param name="State"><c>up</c>, <c>draining</c> or <c>down</c>: the state the engine gives the node when it builds its fleet.</param>
/// <param name="Reason">Why the node is not up (Slurm's reason, a failed GPU check, the drain note), where there is one.</param>
public sealed record DiscoveredNode(string Name, string Partition, string GpuModel, IReadOnlyList<DiscoveredGpu> Gpus, string State = "up", string? Reason = null)
{
    /// <summary>CPU cores jobs may use on the node (Slurm's CPUs, the machine's cores); null: unknown.</summary>
    public int? Cpus { get; init; }

    /// <summary>Memory jobs may use in MiB (Slurm's RealMemory, the machine's memory); null: unknown.</summary>
    public long? MemoryMiB { get; init; }

    /// <summary>Node features (Slurm's Features); empty when none.</summary>
    public IReadOnlyList<string> Features { get; init; } = [];
}

/// <summary>One GPU of a <see cref="DiscoveredNode"/>.</summary>
/// <param name="Index">The GPU's index on its node (what <c>CUDA_VISIBLE_DEVICES</c> names).</param>
/// <param name="Uuid">The GPU's UUID from <c>nvidia-smi</c>; an identifier the backend makes up where it cannot see one (virtual GPUs, Slurm).</param>
/// <param name="Model">The GPU's model name.</param>
/// <param name="MemoryMiB">The GPU's memory in MiB; 0 when the backend does not know it.</param>
public sealed record DiscoveredGpu(int Index, string Uuid, string Model, long MemoryMiB);

/// <summary>A job's GPU usage as sampled by the backend (for example from <c>nvidia-smi</c>).</summary>
/// <param name="JobId">The GpuCommons job sampled.</param>
/// <param name="Time">When the sample was taken.</param>
/// <param name="Source">Where the numbers come from: <c>nvidia-smi</c>, <c>virtual</c> (no real GPU, no numbers).</param>
/// <param name="Gpus">One sample per GPU of the job.</param>
/// <param name="Live">True when sampled now; false when this is the last sample taken while the job ran.</param>
/// <param name="Note">Why the numbers are missing or partial (virtual GPUs have no telemetry), where they are.</param>
public sealed record JobGpuUsage(long JobId, DateTimeOffset Time, string Source, IReadOnlyList<GpuUsageSample> Gpus, bool Live = true, string? Note = null);

/// <summary>One GPU of a job: device totals and the job's own processes on it.</summary>
public sealed record GpuUsageSample(
    string Node,
    int Index,
    string Uuid,
    string Model,
    int? UtilizationPercent,
    long? MemoryUsedMiB,
    long? MemoryTotalMiB,
    IReadOnlyList<GpuProcessSample> Processes);

/// <summary>A process using a GPU; <paramref name="InJob"/> when it belongs to the job's process group or session.</summary>
public sealed record GpuProcessSample(int Pid, string ProcessName, long? UsedMemoryMiB, bool InJob);
