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

    /// <summary>Whether jobs inherit the server's environment (minus <see cref="EnvironmentDenyList"/>). <value>The default is true.</value></summary>
    public bool InheritEnvironment { get; set; } = true;

    /// <summary>
    /// Variables never passed on from the server's environment; an entry ending in <c>*</c> is a prefix.
    /// <value>The default removes GpuCommons tokens and connection strings.</value>
    /// </summary>
    public IList<string> EnvironmentDenyList { get; } = ["GPUC_TOKEN", "GPUC_ADMIN_TOKEN", "GPUC_*TOKEN*", "ConnectionStrings__*", "CUDA_VISIBLE_DEVICES"];

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

        if (!File.Exists(ShellPath))
        {
            throw new ArgumentException($"LocalBackendOptions.ShellPath: '{ShellPath}' does not exist.", nameof(ShellPath));
        }
    }
}
