namespace GpuCommons.Server.Data;

/// <summary>
/// Job arrays and dependencies (docs/batch-scripts.md). An array is one row (its <see cref="ArrayIndices"/> set) that the
/// scheduler loop expands lazily into task rows (<see cref="ArrayJobId"/> and <see cref="ArrayTaskId"/> set), each an
/// ordinary job with its own id, runs and ledger entries.
/// </summary>
public sealed partial class JobRow
{
    /// <summary>On an array's row: its task indices, <c>N</c>, <c>A-B</c>, <c>A-B:STEP</c> comma-separated in increasing order.</summary>
    public string? ArrayIndices { get; set; }

    /// <summary>On an array's row: how many of its tasks may be pending or running at once (Slurm's <c>%N</c>); null: no limit.</summary>
    public int? ArrayMaxRunning { get; set; }

    /// <summary>On an array's row: how many tasks, in index order, have been expanded into task rows (the cursor).</summary>
    public long ArrayExpanded { get; set; }

    /// <summary>On a task's row: the id of its array's row.</summary>
    public long? ArrayJobId { get; set; }

    /// <summary>On a task's row: its index in the array (<c>GPUC_ARRAY_TASK_ID</c>).</summary>
    public long? ArrayTaskId { get; set; }

    /// <summary>JSON array of conditions that must all hold before the job (or array) is queued: <c>[{"type":"afterok","jobs":[12]}]</c>.</summary>
    public string? Dependency { get; set; }

    /// <summary>True for an array's own row (not one of its tasks).</summary>
    public bool IsArray => ArrayIndices is not null;
}
