namespace GpuCommons.Core.Fleet;

/// <summary>Operational state of a node.</summary>
public enum NodeState
{
    /// <summary>Accepts new jobs.</summary>
    Up,
    /// <summary>Running jobs continue; no new job starts on it.</summary>
    Draining,
    /// <summary>Out of service; jobs on it have failed.</summary>
    Down,
}
