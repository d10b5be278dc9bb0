using GpuCommons.Core.Fleet;

namespace GpuCommons.Simulation.Benchmarks;

/// <summary>
/// A GPU-sharing workload and cluster shaped after Alibaba's <c>cluster-trace-gpu-v2023</c> ("openb", the trace of the
/// FGD paper, ATC'23): heterogeneous nodes with their cores, memory and GPUs, and tasks that ask for a share of one GPU,
/// whole GPUs, cores and memory.
/// </summary>
/// <remarks>
/// <para>Node shapes (cores, memory, GPUs, model) are those of the trace's node list; their counts are estimated from
/// a part of that list and scaled to 1,213 nodes and 6,214 GPUs (the paper's cluster has 6,212 GPUs).</para>
/// <para>Task shapes (cores, memory, GPU share) are frequent rows of the trace's default task list, cores rounded up to
/// whole cores; their weights are estimated from a part of that list (about 230 rows). Multi-GPU weights (3.5 % of
/// GPU tasks) are an assumption. CPU-only tasks (about 13 % of the trace's tasks) are left out: the engine schedules
/// jobs that ask for GPUs. These are estimates, not the trace: figures from this workload are comparable with each
/// other (before and after an engine change), and only roughly with the paper's.</para>
/// </remarks>
public static class SharingWorkload
{
    /// <summary>One kind of task: cores, memory (MiB), whole GPUs or a share (<see cref="GpuMilli"/> &lt; 1000 with <see cref="Gpus"/> 1), weight per 1,000 GPU tasks.</summary>
    public sealed record TaskShape(int Cpus, long MemoryMiB, int Gpus, int GpuMilli, int Weight)
    {
        /// <summary>GPU demand in thousandths of a GPU.</summary>
        public int TotalMilli => Gpus == 1 ? GpuMilli : Gpus * 1000;
    }

    /// <summary>Node shapes: count, cores, memory (MiB), GPUs, model.</summary>
    public static IReadOnlyList<(int Count, int Cpus, long MemoryMiB, int Gpus, string Model)> NodeShapes { get; } =
    [
        (519, 96, 393_216, 8, "G2"),
        (377, 104, 524_288, 2, "T4"),
        (25, 96, 393_216, 4, "T4"),
        (120, 16, 122_880, 2, "P100"),
        (22, 64, 262_144, 2, "P100"),
        (6, 8, 61_440, 1, "P100"),
        (60, 128, 786_432, 8, "G3"),
        (25, 96, 786_432, 8, "V100M32"),
        (6, 48, 376_832, 4, "V100M32"),
        (35, 32, 131_072, 4, "V100M16"),
        (8, 64, 262_144, 8, "V100M16"),
        (10, 8, 32_768, 1, "V100M16"),
    ];

    /// <summary>Task shapes and their weights (sum 1,000).</summary>
    public static IReadOnlyList<TaskShape> Tasks { get; } =
    [
        // A share of one GPU: 42 %.
        new(4, 5_600, 1, 810, 105),
        new(8, 30_517, 1, 470, 85),
        new(12, 47_104, 1, 470, 105),
        new(12, 47_104, 1, 650, 75),
        new(8, 30_517, 1, 320, 17),
        new(4, 22_888, 1, 320, 17),
        new(4, 22_888, 1, 230, 4),
        new(6, 23_552, 1, 460, 12),
        // One whole GPU: 54.5 %.
        new(10, 41_560, 1, 1000, 150),
        new(12, 49_152, 1, 1000, 130),
        new(15, 58_368, 1, 1000, 105),
        new(25, 93_184, 1, 1000, 43),
        new(12, 77_824, 1, 1000, 26),
        new(12, 16_384, 1, 1000, 22),
        new(16, 80_896, 1, 1000, 17),
        new(9, 33_792, 1, 1000, 22),
        new(4, 24_576, 1, 1000, 13),
        new(16, 32_768, 1, 1000, 5),
        new(8, 16_384, 1, 1000, 12),
        // Several GPUs: 3.5 % (assumed).
        new(24, 98_304, 2, 1000, 15),
        new(48, 196_608, 4, 1000, 10),
        new(88, 327_680, 8, 1000, 5),
        new(120, 737_280, 8, 1000, 5),
    ];

    /// <summary>The cluster: one partition per GPU model, every node with its cores and memory.</summary>
    public static Fleet Fleet()
    {
        var b = new FleetBuilder("openb-like");
        var counters = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (count, cpus, mem, gpus, model) in NodeShapes)
        {
            if (!counters.ContainsKey(model))
            {
                b.AddPartition(model.ToLowerInvariant(), model, 0);
                counters[model] = 0;
            }

            for (var i = 0; i < count; i++)
            {
                var name = $"{model.ToLowerInvariant()}-{++counters[model]:D4}";
                b.AddNode(model.ToLowerInvariant(), name, gpus, null, NodeState.Up, NodeResources.Create(cpus, mem, null, name), model);
            }
        }

        return b.Build();
    }

    /// <summary>An endless stream of tasks drawn by weight with a seeded generator.</summary>
    public static IEnumerable<TaskShape> Draw(int seed)
    {
        var random = new Random(seed);
        var total = Tasks.Sum(t => t.Weight);
        while (true)
        {
            var r = random.Next(total);
            foreach (var t in Tasks)
            {
                r -= t.Weight;
                if (r < 0)
                {
                    yield return t;
                    break;
                }
            }
        }
    }
}
