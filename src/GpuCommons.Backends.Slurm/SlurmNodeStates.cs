using GpuCommons.Core.Fleet;

namespace GpuCommons.Backends.Slurm;

/// <summary>Maps Slurm node states (<c>sinfo %T</c>: <c>idle</c>, <c>mixed</c>, <c>drained</c>, <c>down*</c>, …) to ours.</summary>
public static class SlurmNodeStates
{
    /// <summary>
    /// Up: idle, mixed, allocated, completing, planned, reserved (also when flagged not responding: Slurm itself marks the
    /// node down after SlurmdTimeout, and only then do its jobs fail). Draining: drain*, maint, reboot. Down: down,
    /// fail*, inval, future, unknown, powered down.
    /// </summary>
    public static NodeState Categorize(string slurmState)
    {
        var s = slurmState.Trim().ToLowerInvariant().TrimEnd('*', '~', '#', '!', '%', '$', '@', '^', '-', '+');
        if (s.Contains("drain", StringComparison.Ordinal) || s.StartsWith("maint", StringComparison.Ordinal)
            || s.StartsWith("reboot", StringComparison.Ordinal))
        {
            return NodeState.Draining;
        }

        if (s.StartsWith("down", StringComparison.Ordinal) || s.StartsWith("fail", StringComparison.Ordinal)
            || s.StartsWith("inval", StringComparison.Ordinal) || s.StartsWith("future", StringComparison.Ordinal)
            || s.StartsWith("unk", StringComparison.Ordinal) || s.Contains("power", StringComparison.Ordinal)
            || s.StartsWith("no_respond", StringComparison.Ordinal))
        {
            return NodeState.Down;
        }

        return NodeState.Up;
    }

    /// <summary>
    /// True for <c>unknown</c>: after slurmctld restarts, idle nodes read <c>unknown</c> until their slurmd registers
    /// again. That is no news about the node, so it raises no event.
    /// </summary>
    public static bool IsUndetermined(string slurmState) =>
        slurmState.Trim().TrimEnd('*', '~', '#', '!', '%', '$', '@', '^', '-', '+').Equals("unknown", StringComparison.OrdinalIgnoreCase);

    /// <summary>The word used in <see cref="DiscoveredNode.State"/>.</summary>
    public static string Word(NodeState state) => state switch
    {
        NodeState.Up => "up",
        NodeState.Draining => "draining",
        _ => "down",
    };
}
