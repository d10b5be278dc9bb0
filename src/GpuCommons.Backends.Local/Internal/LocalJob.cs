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

    /// <summary>Keeps the last sample that showed the job on its GPUs (<c>usage.json</c>), for its record after a restart.</summary>
    public void SaveUsage(GpuCommons.Backends.JobGpuUsage usage)
    {
        try
        {
            PrivateFiles.CreateDirectory(Directory);
            PrivateFiles.WriteAllText(Path.Combine(Directory, "usage.json"), System.Text.Json.JsonSerializer.Serialize(usage, JobFileJson.Default.JobGpuUsage));
        }
        catch (IOException)
        {
            // Best effort: telemetry never fails a job.
        }
    }

    public static GpuCommons.Backends.JobGpuUsage? LoadUsage(string directory)
    {
        try
        {
            var text = System.IO.File.ReadAllText(Path.Combine(directory, "usage.json"));
            return System.Text.Json.JsonSerializer.Deserialize(text, JobFileJson.Default.JobGpuUsage);
        }
        catch (Exception e) when (e is IOException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    public BackendHandle Handle => new(File.JobId, File.ExternalId, File.Stdout, File.Stderr);
}
