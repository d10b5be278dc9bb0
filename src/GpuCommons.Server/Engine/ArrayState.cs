using System.Collections;
using GpuCommons.Backends;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;

namespace GpuCommons.Server.Engine;

/// <summary>
/// The loop's live jobs by id: a dictionary that also notes every row that leaves it, so that arrays and dependencies
/// learn of ends on whichever path a job ended (<see cref="Coordinator"/>'s array and dependency pass drains <see cref="Left"/>).
/// </summary>
internal sealed class ActiveJobs : IEnumerable<KeyValuePair<long, JobRow>>
{
    private readonly Dictionary<long, JobRow> _rows = [];

    /// <summary>Rows removed since the last drain, in order.</summary>
    public List<JobRow> Left { get; } = [];

    public JobRow this[long id]
    {
        get => _rows[id];
        set => _rows[id] = value;
    }

    public int Count => _rows.Count;

    public Dictionary<long, JobRow>.ValueCollection Values => _rows.Values;

    public bool ContainsKey(long id) => _rows.ContainsKey(id);

    public bool TryGetValue(long id, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out JobRow row) => _rows.TryGetValue(id, out row);

    public bool Remove(long id)
    {
        if (!_rows.Remove(id, out var row))
        {
            return false;
        }

        Left.Add(row);
        return true;
    }

    public IEnumerator<KeyValuePair<long, JobRow>> GetEnumerator() => _rows.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

/// <summary>
/// A job array as the loop holds it: its row, its indices, the cursor of expansion, its live tasks, and counts of its
/// ended tasks. The engine sees only the live (expanded) tasks: at most <see cref="ServerOptions.ArrayPendingWindow"/>
/// pending ones, and no more live ones than the array's <c>%N</c>.
/// </summary>
internal sealed class ArrayState(JobRow row, ArrayIndices indices)
{
    public JobRow Row { get; } = row;

    public ArrayIndices Indices { get; } = indices;

    /// <summary>Expanded tasks that are pending or running: task job id → row.</summary>
    public Dictionary<long, JobRow> Live { get; } = [];

    /// <summary>Task indices at or after the cursor that already have a row (a task cancelled before it was expanded).</summary>
    public HashSet<long> Skip { get; } = [];

    public long Ok { get; set; }

    public long NotOk { get; set; }

    public long Failed { get; set; }

    public long Cancelled { get; set; }

    /// <summary>False while the array's dependency is not met: nothing is expanded.</summary>
    public bool DependencyMet { get; set; }

    public bool HasRemainder => !Row.CancelRequested && Row.ArrayExpanded < Indices.Count && Remaining > 0;

    /// <summary>Tasks not yet expanded (less those already given a row out of order).</summary>
    public long Remaining => Indices.Count - Row.ArrayExpanded - Skip.Count;

    public int PendingLive()
    {
        var n = 0;
        foreach (var r in Live.Values)
        {
            if (r.State == JobState.Pending)
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>The array's remainder as squeue shows it: <c>8-999%50</c> (empty when every task is expanded).</summary>
    public string RemainderText() => HasRemainder ? Indices.Remainder(Row.ArrayExpanded, Skip) : "";

    public ArrayTask TaskOf(long index) => new(Row.Id, index, Indices.Count, Indices.Min, Indices.Max);
}
