using System.Diagnostics;

namespace GpuCommons.Backends.Local.Internal;

/// <summary>A job the backend tracks: its persisted state plus what only this process knows.</summary>
internal sealed class LocalJob(JobFile file, string directory)
{
    public JobFile File { get; } = file;

    public string Directory { get; } = directory;

    public string StatePath => Path.Combine(Directory, "job.json");

    /// <summary>The wrapper, when this backend started it (null after a re-attach).</summary>
    public Process? Process { get; set; }

    /// <summary>This backend saw the job running (so its end time is when this backend noticed, not a file time).</summary>
    public bool SeenAlive { get; set; }

    public GpuCommons.Backends.JobGpuUsage? LastUsage { get; set; }

    public GpuCommons.Backends.JobGpuUsage? LastActiveUsage { get; set; }

    public void Save() => File.Save(StatePath);

    public BackendHandle Handle => new(File.JobId, File.ExternalId, File.Stdout, File.Stderr);
}
