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
/// <para>Task shapes (cores, memory, GPU share) are frequent rows of the trace's default task list, with the cores the
/// trace gives in thousandths of a core (3,152 for 3.152 cores) kept in hundredths (<see cref="CpuUnitsPerCore"/>,
/// rounded up: 316); their weights are estimated from a part of that list (about 230 rows). The exact cores of each
/// shape were read from rows 5,664 to 5,892 of <c>openb_pod_list_default.csv</c>; the 2- and 4-GPU shapes are not in
/// those rows and keep whole cores. Multi-GPU weights (3.5 % of
/// GPU tasks) are an assumption. CPU-only tasks (about 13 % of the trace's tasks) are left out: the engine schedules
/// jobs that ask for GPUs. These are estimates, not the trace: figures from this workload are comparable with each
/// other (before and after an engine change), and only roughly with the paper's.</para>
/// </remarks>
public static class SharingWorkload
{
    /// <summary>
    /// CPU units per core in this workload's fleet and tasks: the engine counts whole units, and the trace asks for
    /// fractions of a core (3.152 cores), so this benchmark's "cores" are hundredths of a core. Rounding the trace's
    /// requests up to whole cores instead adds about 3 % to the cores asked for (a 3.152-core share asks 4).
    /// </summary>
    public const int CpuUnitsPerCore = 100;

    /// <summary>One kind of task: cores (in the fleet's units: <see cref="CpuUnitsPerCore"/> for this workload), memory (MiB), whole GPUs or a share (<see cref="GpuMilli"/> &lt; 1000 with <see cref="Gpus"/> 1), weight per 1,000 GPU tasks.</summary>
    public sealed record TaskShape(int Cpus, long MemoryMiB, int Gpus, int GpuMilli, int Weight)
    {
        /// <summary>GPU demand in thousandths of a GPU.</summary>
        public int TotalMilli => Gpus == 1 ? GpuMilli : Gpus * 1000;
    }

    /// <summary>Node shapes: count, cores (whole cores; <see cref="Fleet"/> gives them in <see cref="CpuUnitsPerCore"/>), memory (MiB), GPUs, model.</summary>
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
        new(316, 5_600, 1, 810, 105),
        new(800, 30_517, 1, 470, 85),
        new(1_191, 47_104, 1, 470, 105),
        new(1_191, 47_104, 1, 650, 75),
        new(800, 30_517, 1, 320, 17),
        new(400, 22_888, 1, 320, 17),
        new(400, 22_888, 1, 230, 4),
        new(600, 23_552, 1, 460, 12),
        // One whole GPU: 54.5 %.
        new(981, 41_560, 1, 1000, 150),
        new(1_130, 49_152, 1, 1000, 130),
        new(1_420, 58_368, 1, 1000, 105),
        new(2_420, 93_184, 1, 1000, 43),
        new(1_140, 77_824, 1, 1000, 26),
        new(1_200, 16_384, 1, 1000, 22),
        new(1_520, 80_896, 1, 1000, 17),
        new(820, 33_792, 1, 1000, 22),
        new(400, 24_576, 1, 1000, 13),
        new(1_600, 32_768, 1, 1000, 5),
        new(800, 16_384, 1, 1000, 12),
        // Several GPUs: 3.5 % (assumed).
        new(2_400, 98_304, 2, 1000, 15),
        new(4_800, 196_608, 4, 1000, 10),
        new(8_800, 327_680, 8, 1000, 5),
        new(12_000, 737_280, 8, 1000, 5),
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
                b.AddNode(model.ToLowerInvariant(), name, gpus, null, NodeState.Up, NodeResources.Create(cpus * CpuUnitsPerCore, mem, null, name), model);
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
