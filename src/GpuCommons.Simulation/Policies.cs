using GpuCommons.Core;
using GpuCommons.Scheduling;

namespace GpuCommons.Simulation;

/// <summary>Named scheduling policies for simulations: each is a set of the engine's own options, nothing more.</summary>
public static class Policies
{
    /// <summary>The policies <c>gpuc compare</c> runs by default, in its table's order.</summary>
    public static IReadOnlyList<string> CompareDefault { get; } = ["fifo", "fifo-easy", "multifactor", "las", "srtf"];

    public static IReadOnlyList<string> Names { get; } = ["fifo", "fifo-easy", "multifactor", "multifactor-conservative", "las", "srtf"];

    public static string Describe(string name) => name switch
    {
        "fifo" => "FIFO, no backfill",
        "fifo-easy" => "FIFO + EASY backfill",
        "multifactor" => "multifactor fair share + EASY backfill (default)",
        "multifactor-conservative" => "multifactor fair share + conservative backfill",
        "las" => "least attained service (Tiresias-style) + EASY backfill",
        "srtf" => "clairvoyant shortest remaining time first + EASY backfill (reference)",
        _ => name,
    };

    /// <summary>Engine options of a policy. The simulator lifts the 30-day walltime limit.</summary>
    public static SchedulerOptions Create(string name)
    {
        var o = new SchedulerOptions { MaxWalltime = null };
        switch (name.ToLowerInvariant())
        {
            case "fifo":
                o.Ordering = OrderingPolicy.Fifo;
                o.Backfill = BackfillMode.None;
                break;
            case "fifo-easy":
                o.Ordering = OrderingPolicy.Fifo;
                o.Backfill = BackfillMode.Easy;
                break;
            case "multifactor":
                break;
            case "multifactor-conservative":
                o.Backfill = BackfillMode.Conservative;
                break;
            case "las":
                o.Ordering = OrderingPolicy.LeastAttainedService;
                break;
            case "srtf":
                o.Ordering = OrderingPolicy.ShortestRemainingFirst;
                break;
            default:
                throw new SpecException("policy", $"unknown policy '{name}' (known: {string.Join(", ", Names)})");
        }

        return o;
    }
}
