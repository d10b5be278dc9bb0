using System.ComponentModel.DataAnnotations;

namespace GpuCommons.Backends.Local;

/// <summary>Where the local backend's GPUs come from.</summary>
public enum LocalGpuMode
{
    /// <summary>The GPUs <c>nvidia-smi</c> reports; virtual GPUs where there is no nvidia-smi or it finds no GPU.</summary>
    Auto,

    /// <summary>Only real GPUs: discovery fails when nvidia-smi is missing or finds none.</summary>
    Real,

    /// <summary>Always <see cref="LocalBackendOptions.VirtualGpuCount"/> virtual GPUs, even on a machine with real ones.</summary>
    Virtual,
}

/// <summary>Settings of <see cref="LocalBackend"/>. Call <see cref="Validate"/> (the constructor does) before use.</summary>
public sealed class LocalBackendOptions
{
    /// <summary>
    /// Where the backend keeps one folder per job (<c>jobs/ID/job.json</c>, the exit-code file) and the operator drain
    /// file (<c>drain</c>). A new backend over the same folder re-attaches to the jobs of the previous one. Required.
    /// </summary>
    public required string StateDirectory { get; set; }

    /// <summary>The node name reported in the fleet and expected in placements. <value>The default is the host name.</value></summary>
    public string? NodeName { get; set; }

    /// <summary>The partition of the one local node. <value>The default is <c>local</c>.</value></summary>
    public string Partition { get; set; } = "local";

    /// <summary>Real or virtual GPUs. <value>The default is <see cref="LocalGpuMode.Auto"/>.</value></summary>
    public LocalGpuMode GpuMode { get; set; } = LocalGpuMode.Auto;

    /// <summary>How many virtual GPUs a machine without GPUs gets. <value>The default is 8.</value></summary>
    [Range(0, 1024)]
    public int VirtualGpuCount { get; set; } = 8;

    /// <summary>Model name of the virtual GPUs. <value>The default is <c>virtual</c>.</value></summary>
    public string VirtualGpuModel { get; set; } = "virtual";

    /// <summary>Memory reported for each virtual GPU. <value>The default is 81,920 MiB.</value></summary>
    [Range(0, long.MaxValue)]
    public long VirtualGpuMemoryMiB { get; set; } = 81_920;

    /// <summary>
    /// Enforce the cores and memory the engine placed (<see cref="AssignedNode.Cpus"/>, <see cref="AssignedNode.MemoryMiB"/>)
    /// with cgroups (v2 where the machine's unified hierarchy offers cpuset and memory, v1 otherwise) and podman's
    /// <c>--cpuset-cpus</c>/<c>--memory</c>. Cores are handed out as disjoint sets either way; where cgroups cannot be used the
    /// job's log and start event say that its limits are not enforced. Default true.
    /// </summary>
    public bool EnforceCpuAndMemory { get; set; } = true;

    /// <summary>Path of <c>nvidia-smi</c>. <value>The default (null) searches <c>PATH</c> and the usual driver folders.</value></summary>
    public string? NvidiaSmiPath { get; set; }

    /// <summary>Grace between the walltime signal and the kill. <value>The default is 30 seconds.</value></summary>
    public TimeSpan WalltimeGrace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// For checkpointable jobs: time between <c>SIGTERM</c> (sent one grace after <c>SIGUSR1</c>) and <c>SIGKILL</c>.
    /// <value>The default is 10 seconds.</value>
    /// </summary>
    public TimeSpan TerminateGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often <see cref="LocalBackend.PollAsync"/> asks nvidia-smi whether the GPUs are all there. <value>The default is 30 seconds.</value></summary>
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often <see cref="LocalBackend.PollAsync"/> samples running jobs' GPU usage. <value>The default is 15 seconds; zero turns sampling off.</value></summary>
    public TimeSpan GpuUsageSampleInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// The <c>setsid</c> (util-linux or busybox) that puts each job in its own session and process group.
    /// <value>The default (null) is the first of <c>/usr/bin/setsid</c>, <c>/bin/setsid</c>, <c>/usr/local/bin/setsid</c>.</value>
    /// </summary>
    public string? SetsidPath { get; set; }

    internal string ResolvedSetsidPath =>
        SetsidPath ?? new[] { "/usr/bin/setsid", "/bin/setsid", "/usr/local/bin/setsid" }.FirstOrDefault(File.Exists) ?? "/usr/bin/setsid";

    /// <summary>The POSIX shell of the job wrapper. <value>The default is <c>/bin/sh</c>.</value></summary>
    public string ShellPath { get; set; } = "/bin/sh";

    /// <summary>
    /// <c>PATH</c> of every job (a job may set its own in its environment). Jobs never inherit the server's environment:
    /// see the README for the variables they get. <value>The default is <c>/usr/local/bin:/usr/bin:/bin</c>.</value>
    /// </summary>
    public string JobPath { get; set; } = "/usr/local/bin:/usr/bin:/bin";

    /// <summary>
    /// Where the <c>nvidiaN</c> device files of the node's GPUs are (GPU index N is the file <c>nvidiaN</c>). A job run by a
    /// root backend gets an empty, root-owned, mode-0000 file mounted over the device file of every GPU it was not given,
    /// in a mount namespace of its own, so opening another job's GPU fails with <c>EACCES</c>.
    /// <value>The default is <c>/dev</c>; tests point it at a folder of fake device nodes.</value>
    /// </summary>
    public string GpuDeviceDirectory { get; set; } = "/dev";

    /// <summary>
    /// Whether a root backend hides the device files of GPUs a job was not given (see <see cref="GpuDeviceDirectory"/>).
    /// A backend that is not root cannot, and runs jobs without it. <value>The default is true.</value>
    /// </summary>
    public bool IsolateGpuDevices { get; set; } = true;

    /// <summary>
    /// Where a job that names no working directory, and whose user has no home directory it can enter, gets a fresh
    /// directory of its own (<c>gpuc-job-ID-XXXXXX</c>, mode 0700, owned by the job's user). Not cleaned up by the backend.
    /// <value>The default is <c>/tmp</c>.</value>
    /// </summary>
    public string ScratchDirectory { get; set; } = "/tmp";

    /// <summary>
    /// util-linux <c>setpriv</c>, with which a root backend runs a job as its user (uid, the project's gid as the only
    /// group, no capabilities, <c>no_new_privs</c>). <value>The default (null) is the first of <c>/usr/bin/setpriv</c>,
    /// <c>/bin/setpriv</c>, <c>/usr/local/bin/setpriv</c>.</value>
    /// </summary>
    public string? SetprivPath { get; set; }

    /// <summary>
    /// util-linux <c>unshare</c>, which gives a job of a root backend a private mount namespace for GPU device masking.
    /// <value>The default (null) is the first of <c>/usr/bin/unshare</c>, <c>/bin/unshare</c>, <c>/usr/local/bin/unshare</c>.</value>
    /// </summary>
    public string? UnsharePath { get; set; }

    /// <summary>
    /// util-linux <c>mount</c>, which bind-mounts the mask over device files inside a job's mount namespace.
    /// <value>The default (null) is the first of <c>/usr/bin/mount</c>, <c>/bin/mount</c>, <c>/usr/local/bin/mount</c>.</value>
    /// </summary>
    public string? MountPath { get; set; }

    /// <summary>
    /// Debian's <c>podman</c>, which runs container jobs (<see cref="BackendJob.Container"/>). A root backend runs it as
    /// root with <c>--user UID:GID</c> of the job's account, no capabilities and <c>no-new-privileges</c>; see README.md.
    /// <value>The default (null) is the first of <c>/usr/bin/podman</c>, <c>/bin/podman</c>, <c>/usr/local/bin/podman</c>.</value>
    /// </summary>
    public string? PodmanPath { get; set; }

    /// <summary>
    /// The OCI runtime podman uses (<c>--runtime</c>). crun 1.8 refuses cgroup v1 hybrid hosts; runc runs on both.
    /// <value>The default is <c>runc</c>.</value>
    /// </summary>
    public string ContainerRuntime { get; set; } = "runc";

    /// <summary>
    /// The container's network (<c>--network</c>): <c>host</c> shares the machine's, as a job that runs without a container
    /// does (a notebook in a container is then reachable like one outside); <c>none</c> cuts it off. <value>The default is <c>host</c>.</value>
    /// </summary>
    public string ContainerNetwork { get; set; } = "host";

    /// <summary>
    /// When podman pulls a registry image (<c>--pull</c>): <c>missing</c>, <c>never</c> (only images already in the machine's
    /// store, or loaded from an archive) or <c>always</c>. The server checks registry images against the center's
    /// allow-list before a job is accepted. <value>The default is <c>missing</c>.</value>
    /// </summary>
    public string ContainerPull { get; set; } = "missing";

    /// <summary>
    /// Open files (soft = hard) of a container job. Podman's default raises it past what a restricted host allows
    /// ("setrlimit: Operation not permitted"), so the backend always sets it: the lower of this and its own hard limit.
    /// <value>The default is 65,536.</value>
    /// </summary>
    [Range(64, int.MaxValue)]
    public long ContainerOpenFiles { get; set; } = 65_536;

    /// <summary>Processes of the job's user (soft = hard) in a container job: the lower of this and the backend's own hard limit. <value>The default is 16,384.</value></summary>
    [Range(64, int.MaxValue)]
    public long ContainerProcesses { get; set; } = 16_384;

    /// <summary>
    /// How a container gets its GPUs: null (auto) uses CDI (<c>--device nvidia.com/gpu=UUID</c>, which also brings the
    /// driver's libraries) when an NVIDIA CDI spec is in <c>/etc/cdi</c> or <c>/var/run/cdi</c>, else the job's device
    /// files (<c>nvidiaN</c> of its GPUs and the shared control files). <value>The default is null (auto).</value>
    /// </summary>
    public bool? ContainerUseCdi { get; set; }

    internal string ResolvedPodmanPath => PodmanPath ?? FirstOf("podman");

    internal string ResolvedSetprivPath => SetprivPath ?? FirstOf("setpriv");

    internal string ResolvedUnsharePath => UnsharePath ?? FirstOf("unshare");

    internal string ResolvedMountPath => MountPath ?? FirstOf("mount");

    private static string FirstOf(string tool) =>
        new[] { "/usr/bin/", "/bin/", "/usr/local/bin/" }.Select(d => d + tool).FirstOrDefault(File.Exists) ?? "/usr/bin/" + tool;

    /// <summary>Checks every setting and throws <see cref="ArgumentException"/> naming the first bad one.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(StateDirectory))
        {
            throw new ArgumentException("LocalBackendOptions.StateDirectory is required.", nameof(StateDirectory));
        }

        if (VirtualGpuCount is < 0 or > 1024)
        {
            throw new ArgumentException($"LocalBackendOptions.VirtualGpuCount must be 0..1024, not {VirtualGpuCount}.", nameof(VirtualGpuCount));
        }

        if (VirtualGpuMemoryMiB < 0)
        {
            throw new ArgumentException("LocalBackendOptions.VirtualGpuMemoryMiB must not be negative.", nameof(VirtualGpuMemoryMiB));
        }

        if (string.IsNullOrWhiteSpace(Partition))
        {
            throw new ArgumentException("LocalBackendOptions.Partition must not be empty.", nameof(Partition));
        }

        foreach (var (name, value) in new[] { (nameof(WalltimeGrace), WalltimeGrace), (nameof(TerminateGrace), TerminateGrace), (nameof(HealthCheckInterval), HealthCheckInterval), (nameof(GpuUsageSampleInterval), GpuUsageSampleInterval) })
        {
            if (value < TimeSpan.Zero)
            {
                throw new ArgumentException($"LocalBackendOptions.{name} must not be negative.", name);
            }
        }

        if (!File.Exists(ResolvedSetsidPath))
        {
            throw new ArgumentException($"LocalBackendOptions.SetsidPath: '{ResolvedSetsidPath}' does not exist (util-linux setsid is needed to give each job its own process group).", nameof(SetsidPath));
        }

        if (string.IsNullOrWhiteSpace(JobPath))
        {
            throw new ArgumentException("LocalBackendOptions.JobPath must not be empty.", nameof(JobPath));
        }

        foreach (var (name, value) in new[] { (nameof(GpuDeviceDirectory), GpuDeviceDirectory), (nameof(ScratchDirectory), ScratchDirectory) })
        {
            if (string.IsNullOrWhiteSpace(value) || !Path.IsPathFullyQualified(value))
            {
                throw new ArgumentException($"LocalBackendOptions.{name} must be an absolute path, not '{value}'.", name);
            }
        }

        if (!File.Exists(ShellPath))
        {
            throw new ArgumentException($"LocalBackendOptions.ShellPath: '{ShellPath}' does not exist.", nameof(ShellPath));
        }
    }

    /// <summary>
    /// The tools a root backend needs to run jobs as their users (checked by the backend when it runs as root): throws
    /// <see cref="ArgumentException"/> naming the first one missing.
    /// </summary>
    internal void ValidateIsolationTools()
    {
        var tools = new List<(string Name, string Path, string Use)> { (nameof(SetprivPath), ResolvedSetprivPath, "run jobs as their users") };
        if (IsolateGpuDevices)
        {
            tools.Add((nameof(UnsharePath), ResolvedUnsharePath, "give each job a private mount namespace"));
            tools.Add((nameof(MountPath), ResolvedMountPath, "hide the GPUs a job was not given"));
        }

        foreach (var (name, path, use) in tools)
        {
            if (!File.Exists(path))
            {
                throw new ArgumentException($"LocalBackendOptions.{name}: '{path}' does not exist (util-linux is needed to {use} when the server runs as root).", name);
            }
        }
    }
}
