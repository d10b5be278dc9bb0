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

    /// <summary>The backend's description of a placed job: its nodes with GPU indexes and UUIDs, command, environment and log folder.</summary>
    public static GpuCommons.Backends.BackendJob ToBackendJob(JobRow row, Placement placement, LoopState state, string logDirectory)
    {
        var nodes = new List<GpuCommons.Backends.AssignedNode>();
        var spec = ToSpec(row);
        var partition = state.Fleet.Partitions[placement.Partition];
        foreach (var (n, gpus) in placement.ByNode())
        {
            // Exactly the cores and memory this node gives the job (docs/scheduling.md): the backend passes or enforces them.
            var demand = GpuCommons.Core.Jobs.ResourceDemand.PerNode(spec, partition, placement.Slots.Where(s => s.Node == n).Sum(s => s.Milli));
            var name = state.Fleet.Nodes[n].Name;
            var uuids = state.Discovered.TryGetValue(name, out var d)
                ? gpus.Select(g => d.Gpus.FirstOrDefault(x => x.Index == g)?.Uuid ?? "").ToList()
                : [];
            var share = placement.Slots.FirstOrDefault(s => s.Node == n) is { IsShare: true } slot ? slot.Milli / 1000.0 : (double?)null;
            nodes.Add(new GpuCommons.Backends.AssignedNode(name, gpus, uuids, share)
            {
                Cpus = demand.Cpus > 0 ? demand.Cpus : null,
                MemoryMiB = demand.MemoryMiB > 0 ? demand.MemoryMiB : null,
            });
        }

        var env = new Dictionary<string, string>(Environment(row), StringComparer.Ordinal);
        return new GpuCommons.Backends.BackendJob(row.Id, row.Name, row.Project, row.User, Command(row), row.WorkingDirectory, env, nodes,
            TimeSpan.FromSeconds(row.WalltimeSeconds), Path.Combine(logDirectory, row.Id.ToString(CultureInfo.InvariantCulture)), row.Checkpointable)
        {
            Attempt = row.Attempt,
            NotBefore = row.SubmitTime - TimeSpan.FromMinutes(1),
            ArrayTask = row.ArrayJobId is not { } array || row.ArrayTaskId is not { } task ? null
                : state.Arrays.TryGetValue(array, out var st) ? st.TaskOf(task) : new GpuCommons.Backends.ArrayTask(array, task, 1, task, task),
        };
    }
}
