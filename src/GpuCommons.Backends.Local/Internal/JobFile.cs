using System.Text.Json;
using System.Text.Json.Serialization;

namespace GpuCommons.Backends.Local.Internal;

/// <summary>
/// What the backend knows about one run of a job, persisted as <c>jobs/ID/job.json</c> so that a new backend (after a
/// server restart) can take the job back, keep enforcing its walltime and cancel, and report its end exactly once.
/// </summary>
internal sealed class JobFile
{
    public long JobId { get; set; }
    public string Name { get; set; } = "";
    public int Pid { get; set; }
    public ulong StartTicks { get; set; }
    public string BootId { get; set; } = "";
    public DateTimeOffset StartedAt { get; set; }
    /// <summary>Walltime in seconds; 0 when unknown (a job taken back from a handle alone), which is never enforced.</summary>
    public double WalltimeSeconds { get; set; }
    public bool Checkpointable { get; set; }
    public string Stdout { get; set; } = "";
    public string Stderr { get; set; } = "";
    public string ExitCodePath { get; set; } = "";
    public string Node { get; set; } = "";
    public int[] Gpus { get; set; } = [];
    public string[] GpuUuids { get; set; } = [];
    public string CudaVisibleDevices { get; set; } = "";

    /// <summary>The uid and gid the command runs as (null: the backend's own account); for operators reading the file.</summary>
    public int? Uid { get; set; }
    public int? Gid { get; set; }
    public string? WorkingDirectory { get; set; }

    /// <summary>The podman container's name for a container job (removed with the job), else null.</summary>
    public string? Container { get; set; }

    /// <summary>The cores given to the job (a kernel CPU list such as <c>2-3</c>), disjoint from other running jobs'; null: not limited.</summary>
    public string? Cpus { get; set; }

    /// <summary>The job's memory limit in MiB; null: not limited.</summary>
    public long? MemoryMiB { get; set; }

    /// <summary>The job's cgroup directories (removed when it ends); empty when its limits are not enforced by cgroups.</summary>
    public string[] Cgroups { get; set; } = [];

    /// <summary>The cgroup directory that holds its memory limit (for the OOM count at its end), and its cgroup version.</summary>
    public string? MemoryCgroup { get; set; }
    public int MemoryCgroupVersion { get; set; }

    /// <summary>How the cores and memory are enforced, or why they are not, in words (the start event and the log say it).</summary>
    public string? Limits { get; set; }

    public bool StartReported { get; set; }

    /// <summary><c>cancel</c> or <c>walltime</c> once the backend began stopping the job.</summary>
    public string? StopReason { get; set; }
    public int StopStage { get; set; }
    public double StopGraceSeconds { get; set; }
    public DateTimeOffset? NextSignalAt { get; set; }

    public bool EndReported { get; set; }

    [JsonIgnore]
    public string ExternalId => FormatExternalId(Pid, StartTicks, BootId);

    public static string FormatExternalId(int pid, ulong startTicks, string bootId) =>
        FormattableString.Invariant($"{pid}:{startTicks}:{(bootId.Length > 8 ? bootId[..8] : bootId)}");

    public static bool TryParseExternalId(string externalId, out int pid, out ulong startTicks, out string bootPrefix)
    {
        pid = 0;
        startTicks = 0;
        bootPrefix = "";
        var parts = externalId.Split(':');
        if (parts.Length != 3
            || !int.TryParse(parts[0], System.Globalization.CultureInfo.InvariantCulture, out pid)
            || !ulong.TryParse(parts[1], System.Globalization.CultureInfo.InvariantCulture, out startTicks)
            || pid <= 0)
        {
            return false;
        }

        bootPrefix = parts[2];
        return true;
    }

    public static JobFile? Load(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), JobFileJson.Default.JobFile);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Local backend state file '{path}' is not valid: {e.Message}", e);
        }
    }

    public void Save(string path)
    {
        PrivateFiles.CreateDirectory(Path.GetDirectoryName(path)!);
        PrivateFiles.WriteAllText(path, JsonSerializer.Serialize(this, JobFileJson.Default.JobFile));
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(JobFile))]
[JsonSerializable(typeof(JobGpuUsage))]
[JsonSerializable(typeof(List<DiscoveredGpu>))]
internal sealed partial class JobFileJson : JsonSerializerContext;
