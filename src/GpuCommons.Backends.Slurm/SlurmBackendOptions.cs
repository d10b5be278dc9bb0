using System.ComponentModel.DataAnnotations;

namespace GpuCommons.Backends.Slurm;

/// <summary>How the Slurm backend talks to Slurm. Every default is the one used by CI against the local Slurm.</summary>
public sealed class SlurmBackendOptions
{
    /// <summary>Prefix of Slurm job names; the GpuCommons job id follows. <value>Default <c>gpuc-</c>.</value></summary>
    public string JobNamePrefix { get; set; } = "gpuc-";

    /// <summary>Directory of the Slurm tools (null: PATH). <value>Default null.</value></summary>
    public string? BinDirectory { get; set; }

    /// <summary>Partition for jobs whose nodes are in several (null: the partition of the first node). <value>Default null.</value></summary>
    public string? Partition { get; set; }

    /// <summary>
    /// One Slurm account to charge every job to (<c>--account</c>). Null: each job is charged to the account named after its
    /// project (<see cref="SlurmAccountName.FromProject"/>, with <see cref="AccountPrefix"/>). <value>Default null.</value>
    /// </summary>
    public string? Account { get; set; }

    /// <summary>Put before every project account name (e.g. <c>gpuc_</c>), to keep GpuCommons's accounts apart. <value>Default empty.</value></summary>
    public string AccountPrefix { get; set; } = "";

    /// <summary>
    /// Create the Slurm association (account, user) a job is charged to when it is missing: <c>sacctmgr -i add account</c> and
    /// <c>sacctmgr -i add user LOGIN account=ACCOUNT</c>, once per pair per process. Needs <see cref="UseAccounting"/> and a
    /// server that is a Slurm administrator (root, SlurmUser, or AdminLevel=Administrator); a server run by a normal user
    /// without <see cref="BackendJob.RunAs"/> (single-user mode) never manages associations. <value>Default true.</value>
    /// </summary>
    public bool ManageAssociations { get; set; } = true;

    /// <summary>
    /// How a job that names an account (<see cref="BackendJob.RunAs"/>) is submitted and cancelled as that account.
    /// <value>Default <see cref="SlurmSubmitMode.Auto"/>: <c>runuser</c> when the server is root, else <c>sudo</c>.</value>
    /// </summary>
    public SlurmSubmitMode SubmitAs { get; set; } = SlurmSubmitMode.Auto;

    /// <summary>
    /// Where jobs that run as their user (<see cref="BackendJob.RunAs"/>) write their output: <c>SPOOL/LOGIN/JOBID/</c>,
    /// owned by the user and the project's group, mode 0750, in root-owned 0711 parents (traversable, not listable). Slurm
    /// writes <c>--output</c>/<c>--error</c> there as the user, so on a real cluster it must be on a file system shared by
    /// the submit host and the compute nodes, at the same path. Jobs without an identity keep
    /// <see cref="BackendJob.LogDirectory"/>. <value>Default <c>/var/spool/gpuc/slurm</c>.</value>
    /// </summary>
    public string JobSpoolDirectory { get; set; } = "/var/spool/gpuc/slurm";

    /// <summary>
    /// Before submitting, check as the job's user that its working directory exists and can be entered (Slurm would run
    /// the job in /tmp instead); a job whose directory fails the check is refused. <value>Default true.</value>
    /// </summary>
    public bool CheckWorkingDirectory { get; set; } = true;

    /// <summary><c>runuser</c> (util-linux), for <see cref="SlurmSubmitMode.Runuser"/>. <value>Default <c>runuser</c> from PATH.</value></summary>
    public string RunuserPath { get; set; } = "runuser";

    /// <summary><c>sudo</c>, for <see cref="SlurmSubmitMode.Sudo"/>. <value>Default <c>sudo</c> from PATH.</value></summary>
    public string SudoPath { get; set; } = "sudo";

    /// <summary>Limit for one command; a controller slower than this is treated as unreachable for the pass. <value>Default 30 s.</value></summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A command slower than this is reported as a slow controller. <value>Default 5 s.</value></summary>
    public TimeSpan SlowCommandThreshold { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>First wait after Slurm failed to answer; doubled per failure up to <see cref="MaxBackoff"/>. <value>Default 1 s.</value></summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait between tries while Slurm does not answer. <value>Default 30 s.</value></summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How far back <c>sacct</c> looks for our jobs when rebuilding the name index after a restart. <value>Default 7 days.</value></summary>
    public TimeSpan AccountingLookback { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Whether slurmdbd accounting (<c>sacct</c>) is available; without it exit codes come from <c>scontrol show job</c>. <value>Default true.</value></summary>
    public bool UseAccounting { get; set; } = true;

    /// <summary>Signal sent to checkpointable jobs before the kill (Slurm signal name). <value>Default <c>TERM</c>.</value></summary>
    public string CheckpointSignal { get; set; } = "TERM";

    /// <summary>A job missing from <c>squeue</c> and <c>sacct</c> this many successful passes in a row is reported lost. <value>Default 2.</value></summary>
    [Range(1, 100)]
    public int LostAfterMissedPolls { get; set; } = 2;

    /// <summary>Shell for the batch script. <value>Default <c>/bin/bash</c>.</value></summary>
    public string Shell { get; set; } = "/bin/bash";

    /// <summary>PATH for the job when its environment has none (<c>--export=NONE</c> keeps the server's environment out). <value>Default the Debian system PATH.</value></summary>
    public string DefaultPath { get; set; } = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>
    /// How container jobs (<see cref="BackendJob.Container"/>) run: <see cref="SlurmContainerMode.None"/> refuses them,
    /// <see cref="SlurmContainerMode.Oci"/> uses Slurm's own <c>--container</c> (an OCI bundle directory; the site's
    /// <c>oci.conf</c> names runc or crun), <see cref="SlurmContainerMode.Pyxis"/> NVIDIA pyxis/enroot's
    /// <c>srun --container-image</c>. See README.md. <value>Default <see cref="SlurmContainerMode.None"/>.</value>
    /// </summary>
    public SlurmContainerMode ContainerMode { get; set; } = SlurmContainerMode.None;

    /// <summary>Extra <c>sbatch</c> arguments for every job (e.g. <c>--qos=…</c>, or <c>--hold</c> in benchmarks). <value>Default none.</value></summary>
    public IList<string> ExtraSbatchArguments { get; } = [];

    /// <summary>
    /// Set by a server that is one of several on one Slurm (a leader and standbys): says whether this server may still start
    /// jobs (it holds the lease). Each start is then submitted held, the fence asked, and the job released only when it
    /// says yes; a held job named like ours that a start finds is a submission whose server lost the lease (or died)
    /// between the two, and is cancelled before this server submits its own. So a leader paused between its check of the
    /// lease and its sbatch cannot run a job that the next leader has started meanwhile. <value>Default null: no fence.</value>
    /// </summary>
    public Func<CancellationToken, ValueTask<bool>>? StartFence { get; set; }

    /// <summary>Also read the nodes of partitions hidden from the submitting user. <value>Default false.</value></summary>
    public bool IncludeHiddenPartitions { get; set; }

    /// <summary>
    /// The niceness (0–19) the Slurm commands run at. They are throughput work (a wave of starts is hundreds of
    /// <c>sbatch</c> processes), while the server's API and scheduler loop answer people: on a control plane with few cores,
    /// the commands yield the CPU to them. 0 runs them at the server's own priority. <value>Default 10.</value>
    /// </summary>
    [Range(0, 19)]
    public int CommandNiceness { get; set; } = 10;

    /// <summary>Throws <see cref="ArgumentException"/> for an option out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(JobNamePrefix) || JobNamePrefix.Any(c => char.IsWhiteSpace(c) || c is '|' or ','))
        {
            throw new ArgumentException("must be non-empty without spaces, '|' or ','", nameof(JobNamePrefix));
        }

        if (CommandTimeout <= TimeSpan.Zero || InitialBackoff <= TimeSpan.Zero || MaxBackoff < InitialBackoff)
        {
            throw new ArgumentException("timeouts and backoff must be positive, MaxBackoff >= InitialBackoff");
        }

        if (string.IsNullOrWhiteSpace(JobSpoolDirectory) || !Path.IsPathFullyQualified(JobSpoolDirectory))
        {
            throw new ArgumentException("must be an absolute path", nameof(JobSpoolDirectory));
        }

        if (AccountPrefix.Any(c => !(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-')))
        {
            throw new ArgumentException("may only hold a-z, 0-9, '_' and '-'", nameof(AccountPrefix));
        }

        if (LostAfterMissedPolls < 1)
        {
            throw new ArgumentException("must be at least 1", nameof(LostAfterMissedPolls));
        }

        if (CommandNiceness is < 0 or > 19)
        {
            throw new ArgumentException("must be 0 to 19", nameof(CommandNiceness));
        }
    }
}

/// <summary>How the backend runs <c>sbatch</c>/<c>scancel</c> as a job's own account.</summary>
public enum SlurmSubmitMode
{
    /// <summary><see cref="Runuser"/> when the server runs as root, else <see cref="Sudo"/>.</summary>
    Auto,

    /// <summary><c>runuser -u LOGIN -- sbatch …</c>: the server is root.</summary>
    Runuser,

    /// <summary><c>sudo -n -u LOGIN -- sbatch …</c>: the server is a service account with a sudoers rule (see README).</summary>
    Sudo,

    /// <summary>No switch: the server submits as itself; a job that names any other account is refused (single-user installs).</summary>
    Self,
}

/// <summary>How the Slurm backend runs container jobs.</summary>
public enum SlurmContainerMode
{
    /// <summary>This cluster runs no container jobs: they are refused with the reason.</summary>
    None,

    /// <summary>Slurm's own OCI support: <c>sbatch --container=BUNDLE</c>, with the runtime the site's <c>oci.conf</c> names.</summary>
    Oci,

    /// <summary>The pyxis SPANK plugin (enroot): <c>srun --container-image=… --container-mounts=… --container-workdir=…</c>.</summary>
    Pyxis,
}
