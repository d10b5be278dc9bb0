using System.Globalization;
using System.Text;
using System.Text.Json;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;

namespace GpuCommons.Server.Engine;

/// <summary>Conversions between database rows and the engine's types.</summary>
internal static class JobMapping
{
    public static JobSpec ToSpec(JobRow r) => new()
    {
        Id = r.Id,
        Project = r.Project,
        User = r.User,
        Name = r.Name,
        Partition = r.Partition,
        Gpus = r.Gpus,
        Nodes = r.Nodes,
        GpusPerNode = r.GpusPerNode,
        Walltime = TimeSpan.FromSeconds(r.WalltimeSeconds),
        Priority = ParsePriority(r.Priority),
        Checkpointable = r.Checkpointable,
        Requeueable = r.Requeueable,
        SubmitTime = r.SubmitTime,
        CpusPerGpu = r.CpusPerGpu,
        CpusPerNode = r.CpusPerNode,
        MemoryMiBPerGpu = r.MemoryMiBPerGpu,
        MemoryMiBPerNode = r.MemoryMiBPerNode,
        GpuModels = r.GpuModels is null ? null : r.GpuModels.Split(','),
        Features = r.Features is null ? null : r.Features.Split('&'),
    };

    public static PriorityClass ParsePriority(string p) => p switch
    {
        "preemptible" => PriorityClass.Preemptible,
        "high" => PriorityClass.High,
        _ => PriorityClass.Normal,
    };

    public static string StateName(JobState s) => s switch
    {
        JobState.Pending => "pending",
        JobState.Running => "running",
        JobState.Finished => "finished",
        JobState.Failed => "failed",
        _ => "cancelled",
    };

    /// <summary><c>node:gpu:milli;…</c> with node names.</summary>
    public static string FormatSlots(Placement p, Fleet fleet)
    {
        var sb = new StringBuilder();
        foreach (var s in p.Slots)
        {
            if (sb.Length > 0)
            {
                sb.Append(';');
            }

            sb.Append(fleet.Nodes[s.Node].Name).Append(':').Append(s.Gpu.ToString(CultureInfo.InvariantCulture)).Append(':').Append(s.Milli.ToString(CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    public static List<GpuSlot>? ParseSlots(string? text, Fleet fleet)
    {
        if (string.IsNullOrEmpty(text))
        {
            return null;
        }

        var list = new List<GpuSlot>();
        foreach (var item in text.Split(';'))
        {
            var parts = item.Split(':');
            if (parts.Length != 3 || fleet.FindNode(parts[0]) is not { } node)
            {
                return null;
            }

            list.Add(new GpuSlot(node.Index, int.Parse(parts[1], CultureInfo.InvariantCulture), int.Parse(parts[2], CultureInfo.InvariantCulture)));
        }

        return list;
    }

    public static IReadOnlyList<string> Command(JobRow r) => JsonSerializer.Deserialize<List<string>>(r.Command) ?? [];

    public static IReadOnlyDictionary<string, string> Environment(JobRow r) =>
        string.IsNullOrEmpty(r.Environment) ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(r.Environment) ?? [];
}
