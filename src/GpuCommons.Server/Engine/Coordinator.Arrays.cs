using System.Collections.Immutable;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Engine;

/// <summary>What requests see of an array: its unexpanded remainder and its tasks' counts.</summary>
public sealed record ArraySummary(string Remainder, long Tasks, int Live, int PendingLive, long Ok, long NotOk, string Reason);

// Job arrays and dependencies, on the loop (docs/batch-scripts.md, "How the server runs arrays and dependencies").
// An array is one row; it and a job held by a dependency never reach the engine. Each pass, before the cycle, this part
// (1) learns of every job that left the active set, (2) re-evaluates held dependencies when anything ended, (3) expands
// arrays into task rows: at most ArrayPendingWindow pending tasks per array, and no more live tasks than its %N, written
// with the array's cursor in one transaction before the engine sees them, and (4) ends an array whose tasks all ended.
public sealed partial class Coordinator
{
    private bool _depsDirty = true;
    private bool _holdsDirty = true;
    private readonly Dictionary<long, bool> _endedOk = [];
    private readonly Dictionary<long, string> _holdWhy = [];
    private ImmutableDictionary<long, string> _holdsView = ImmutableDictionary<long, string>.Empty;
    private ImmutableDictionary<long, ArraySummary> _arraysView = ImmutableDictionary<long, ArraySummary>.Empty;

    /// <summary>True for a submission the engine does not take at once: an array, or a job with a dependency.</summary>
    private static bool HeldAtSubmit(JobRow row) => row.IsArray || row.Dependency is not null;

    /// <summary>A new array or dependent job, already numbered: held by the loop (written with the batch).</summary>
    private void Hold(JobRow row)
    {
        if (row.IsArray)
        {
            var st = new ArrayState(row, ArrayIndices.TryParse(row.ArrayIndices, out _)!) { DependencyMet = row.Dependency is null };
            _s.Arrays[row.Id] = st;
        }
        else
        {
            _s.Held[row.Id] = row;
        }

        _depsDirty = true;
        _holdsDirty = true;
    }

    private void Unhold(JobRow row)
    {
        _s.Arrays.Remove(row.Id);
        _s.Held.Remove(row.Id);
        _holdsDirty = true;
    }

    /// <summary>The array and dependency pass; true when the engine got new jobs.</summary>
    private async Task<bool> PumpArraysAsync(bool full, CancellationToken ct)
    {
        var left = _s.Active.Left;
        if (left.Count > 0)
        {
            foreach (var row in left)
            {
                if (row.State is JobState.Pending or JobState.Running)
                {
                    continue; // a submission rolled back
                }

                _depsDirty = true;
                NoteEnded(row);
                if (row.ArrayJobId is { } a && _s.Arrays.TryGetValue(a, out var st) && st.Live.Remove(row.Id))
                {
                    CountTaskEnd(st, row.State);
                }
            }

            left.Clear();
        }

        var changed = false;
        if ((_depsDirty || full) && (_s.Held.Count > 0 || _s.Arrays.Values.Any(a => !a.DependencyMet)))
        {
            _depsDirty = false;
            changed |= await EvaluateHeldAsync(ct);
        }

        _depsDirty = false;
        if (_s.Arrays.Count > 0)
        {
            changed |= await ExpandArraysAsync(ct);
        }

        return changed;
    }

    private void NoteEnded(JobRow row)
    {
        if (_endedOk.Count > 100_000)
        {
            _endedOk.Clear();
        }

        _endedOk[row.Id] = row.State == JobState.Finished;
    }

    private static void CountTaskEnd(ArrayState st, JobState state)
    {
        if (state == JobState.Finished)
        {
            st.Ok++;
            return;
        }

        st.NotOk++;
        if (state == JobState.Cancelled)
        {
            st.Cancelled++;
        }
        else
        {
            st.Failed++;
        }
    }

    /// <summary>Every array with room for more tasks now (the loop runs another pass for them).</summary>
    private bool ArraysHaveRoom()
    {
        foreach (var st in _s.Arrays.Values)
        {
            if (st.DependencyMet && st.HasRemainder && st.PendingLive() < _options.ArrayPendingWindow
                && (st.Row.ArrayMaxRunning is not { } m || st.Live.Count < m))
            {
                return true;
            }
        }

        return false;
    }

    // ---- Dependencies ------------------------------------------------------------------------------------------

    private DependencyStatus StatusOf(long id)
    {
        if (_s.Active.ContainsKey(id) || _s.Held.ContainsKey(id))
        {
            return DependencyStatus.Live;
        }

        if (_s.Arrays.TryGetValue(id, out var st))
        {
            return st.NotOk > 0 ? DependencyStatus.LiveAnyNotOk : DependencyStatus.Live;
        }

        return _endedOk.TryGetValue(id, out var ok) ? ok ? DependencyStatus.Ok : DependencyStatus.NotOk : DependencyStatus.Unknown;
    }

    private async Task<bool> EvaluateHeldAsync(CancellationToken ct)
    {
        var waiting = _s.Held.Values.Concat(_s.Arrays.Values.Where(a => !a.DependencyMet).Select(a => a.Row)).ToList();
        var conditions = waiting.ToDictionary(r => r.Id, r => Dependencies.Parse(r.Dependency));

        // Jobs named that the loop does not hold: ended (jobs are never deleted); their outcome from the database, once.
        var unknown = conditions.Values.SelectMany(Dependencies.JobIds).Distinct().Where(id => StatusOf(id) == DependencyStatus.Unknown).ToList();
        if (unknown.Count > 0)
        {
            await using var db = _db.Create();
            foreach (var chunk in unknown.Chunk(1000))
            {
                var ids = chunk.ToList();
                foreach (var r in await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).Select(j => new { j.Id, j.State }).ToListAsync(ct))
                {
                    if (r.State is not (JobState.Pending or JobState.Running))
                    {
                        _endedOk[r.Id] = r.State == JobState.Finished;
                    }
                }
            }
        }

        // singleton: the earliest live job of each (user, name) goes first.
        Dictionary<(string, string), long>? first = null;
        if (conditions.Values.Any(c => c.Any(x => x.Type == "singleton")))
        {
            first = [];
            void See(JobRow r)
            {
                var k = (r.User, r.Name);
                if (!first.TryGetValue(k, out var id) || r.Id < id)
                {
                    first[k] = r.Id;
                }
            }

            foreach (var r in _s.Active.Values)
            {
                // An array's tasks count as their array (which is earlier than any of them).
                See(r.ArrayJobId is { } a && _s.Arrays.TryGetValue(a, out var st) ? st.Row : r);
            }

            foreach (var r in _s.Held.Values)
            {
                See(r);
            }

            foreach (var st in _s.Arrays.Values)
            {
                See(st.Row);
            }
        }

        var released = false;
        var now = _time.GetUtcNow();
        foreach (var row in waiting.OrderBy(r => r.Id))
        {
            var (result, why) = Dependencies.Evaluate(conditions[row.Id], StatusOf, () => first![(row.User, row.Name)] >= row.Id);
            switch (result)
            {
                case DependencyResult.Wait:
                    if (_holdWhy.GetValueOrDefault(row.Id) != why)
                    {
                        _holdWhy[row.Id] = why;
                        _holdsDirty = true;
                    }

                    break;
                case DependencyResult.Met:
                    _holdWhy.Remove(row.Id);
                    _holdsDirty = true;
                    _touched.Add(row.Id);
                    if (_s.Arrays.TryGetValue(row.Id, out var st))
                    {
                        st.DependencyMet = true;
                        released = true;
                        break;
                    }

                    _s.Held.Remove(row.Id);
                    var v = _s.Engine.Submit(JobMapping.ToSpec(row));
                    if (!v.Accepted)
                    {
                        _s.Active[row.Id] = row;
                        _recorder.FailUnstarted(_s, row, "could not be queued when its dependency was met: " + v.Error!.Message);
                        _deferredRows.Add(row);
                        break;
                    }

                    _s.Active[row.Id] = row;
                    released = true;
                    break;
                default:
                    // Slurm's kill_invalid_depend: a job whose dependency can never be met is ended, not left pending.
                    _holdWhy.Remove(row.Id);
                    row.CancelRequested = row.IsArray || row.CancelRequested;
                    row.Outcome = "DependencyNeverSatisfied: " + why;
                    if (row.IsArray)
                    {
                        _s.Arrays[row.Id].DependencyMet = true; // nothing is expanded (cancel requested); ended below
                        _deferredRows.Add(row);
                        break;
                    }

                    Unhold(row);
                    row.State = JobState.Cancelled;
                    row.EndTime = now;
                    NoteEnded(row);
                    _depsDirty = true;
                    _touched.Add(row.Id);
                    _metrics.Outcome(JobState.Cancelled);
                    _deferredRows.Add(row);
                    _deferredEvents.Add(Event("scheduler", "job.cancelled", $"job/{row.Id}", row.Project, row.Outcome));
                    break;
            }
        }

        return released;
    }

    // ---- Arrays --------------------------------------------------------------------------------------------

    private JobRow TaskRow(ArrayState st, long index)
    {
        var t = st.Row.Clone();
        t.Id = _s.NextId++;
        t.ArrayIndices = null;
        t.ArrayMaxRunning = null;
        t.ArrayExpanded = 0;
        t.ArrayJobId = st.Row.Id;
        t.ArrayTaskId = index;
        t.Dependency = null;
        t.IdempotencyKey = null;
        t.CancelRequested = false;
        t.State = JobState.Pending;
        t.Outcome = null;
        t.EndTime = null;
        t.Attempt = 0;
        return t;
    }

    private async Task<bool> ExpandArraysAsync(CancellationToken ct)
    {
        List<JobRow>? tasks = null;
        List<(ArrayState St, long Cursor, List<long> Skipped)>? moved = null;
        List<ArrayState>? done = null;
        foreach (var st in _s.Arrays.Values)
        {
            if (!st.DependencyMet)
            {
                continue;
            }

            if (!st.HasRemainder)
            {
                if (st.Live.Count == 0)
                {
                    (done ??= []).Add(st);
                }

                continue;
            }

            long room = _options.ArrayPendingWindow - st.PendingLive();
            if (st.Row.ArrayMaxRunning is { } max)
            {
                room = Math.Min(room, max - st.Live.Count);
            }

            if (room <= 0)
            {
                continue;
            }

            var cursor = st.Row.ArrayExpanded;
            var skipped = new List<long>();
            while (room > 0 && cursor < st.Indices.Count)
            {
                var index = st.Indices.At(cursor++);
                if (st.Skip.Contains(index))
                {
                    skipped.Add(index);
                    continue;
                }

                (tasks ??= []).Add(TaskRow(st, index));
                room--;
            }

            (moved ??= []).Add((st, st.Row.ArrayExpanded, skipped));
            st.Row.ArrayExpanded = cursor;
        }

        if (moved is not null)
        {
            // The tasks and the arrays' cursors in one transaction: after a crash a task exists exactly once.
            try
            {
                await using var db = _db.Create();
                await using var tx = await db.Database.BeginTransactionAsync(ct);
                if (tasks is { Count: > 0 })
                {
                    await new BulkInsert(db).Add(tasks).ExecuteAsync(ct);
                }

                await new BulkUpdate(db).ExecuteAsync(moved.Select(m => m.St.Row).ToList(), [nameof(JobRow.ArrayExpanded)], ct);
                await tx.CommitAsync(ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogSubmitWriteFailed(tasks?.Count ?? 0, e);
                foreach (var (st, cursor, _) in moved)
                {
                    st.Row.ArrayExpanded = cursor;
                }

                return false;
            }

            foreach (var (st, _, skipped) in moved)
            {
                foreach (var i in skipped)
                {
                    st.Skip.Remove(i);
                }
            }

            foreach (var t in tasks ?? [])
            {
                var st = _s.Arrays[t.ArrayJobId!.Value];
                var v = _s.Engine.Submit(JobMapping.ToSpec(t));
                _s.Active[t.Id] = t;
                _touched.Add(t.Id);
                if (!v.Accepted)
                {
                    _recorder.FailUnstarted(_s, t, "could not be queued: " + v.Error!.Message);
                    _deferredRows.Add(t);
                    continue;
                }

                st.Live[t.Id] = t;
            }

            _holdsDirty = true;
        }

        foreach (var st in done ?? [])
        {
            EndArray(st);
        }

        return tasks is { Count: > 0 };
    }

    /// <summary>Ends an array whose tasks have all ended (or that was cancelled with none live): its row and event are deferred writes.</summary>
    private void EndArray(ArrayState st)
    {
        var row = st.Row;
        var total = st.Ok + st.NotOk;
        row.State = st.NotOk == 0 && !row.CancelRequested ? JobState.Finished : st.Failed > 0 ? JobState.Failed : JobState.Cancelled;
        var counts = $"{total} of {st.Indices.Count} tasks ran or were cancelled: {st.Ok} finished, {st.Failed} failed, {st.Cancelled} cancelled";
        row.Outcome = row.Outcome is { } o && o.StartsWith("DependencyNeverSatisfied", StringComparison.Ordinal) ? o : (row.CancelRequested ? "cancelled; " : "") + counts;
        row.EndTime = _time.GetUtcNow();
        _s.Arrays.Remove(row.Id);
        NoteEnded(row);
        _depsDirty = true;
        _holdsDirty = true;
        _touched.Add(row.Id);
        _deferredRows.Add(row);
        _deferredEvents.Add(Event("scheduler", "job." + row.State.ToWire(), $"job/{row.Id}", row.Project, row.Outcome));
    }

    /// <summary>Marks an array cancelled: nothing more is expanded; returns its live tasks (the caller cancels them).</summary>
    private List<JobRow> CancelArray(ArrayState st, string actor)
    {
        st.Row.CancelRequested = true;
        st.Row.Outcome ??= null;
        _holdsDirty = true;
        _touched.Add(st.Row.Id);
        _deferredRows.Add(st.Row);
        _deferredEvents.Add(Event(actor, "job.cancel", $"job/{st.Row.Id}", st.Row.Project, "array"));
        return [.. st.Live.Values];
    }

    /// <summary>
    /// Cancels one task of an array that has no row yet: it gets a row, cancelled, and is never expanded. False when the
    /// array has no such task still to expand.
    /// </summary>
    public Task<bool> CancelUnexpandedTaskAsync(long arrayId, long index, string actor) => OnLoopAsync(async () =>
    {
        if (!_s.Arrays.TryGetValue(arrayId, out var st) || !st.HasRemainder || st.Skip.Contains(index))
        {
            return false;
        }

        var position = st.Indices.PositionOf(index);
        if (position < st.Row.ArrayExpanded)
        {
            return false;
        }

        var t = TaskRow(st, index);
        t.State = JobState.Cancelled;
        t.Outcome = "cancelled by " + actor + " before it started";
        t.EndTime = _time.GetUtcNow();
        await using var db = _db.Create();
        await using var tx = await db.Database.BeginTransactionAsync();
        await new BulkInsert(db).Add(new List<JobRow> { t }).Add(new List<EventRow> { Event(actor, "job.cancel", $"job/{t.Id}", t.Project, $"task {arrayId}_{index}") }).ExecuteAsync(CancellationToken.None);
        await tx.CommitAsync();
        st.Skip.Add(index);
        CountTaskEnd(st, JobState.Cancelled);
        NoteEnded(t);
        _depsDirty = true;
        _holdsDirty = true;
        _touched.Add(arrayId);
        _metrics.Outcome(JobState.Cancelled);
        return true;
    });

    /// <summary>Publishes why held jobs wait and what each array has left (only when they changed).</summary>
    private void PublishHolds()
    {
        if (!_holdsDirty)
        {
            return;
        }

        _holdsDirty = false;
        var holds = ImmutableDictionary.CreateBuilder<long, string>();
        foreach (var id in _s.Held.Keys)
        {
            holds[id] = _holdWhy.GetValueOrDefault(id, "");
        }

        var arrays = ImmutableDictionary.CreateBuilder<long, ArraySummary>();
        foreach (var (id, st) in _s.Arrays)
        {
            var pending = st.PendingLive();
            string reason;
            if (!st.DependencyMet)
            {
                reason = "Dependency";
                holds[id] = _holdWhy.GetValueOrDefault(id, "");
            }
            else if (st.Row.ArrayMaxRunning is { } m && st.Live.Count >= m)
            {
                reason = "JobArrayTaskLimit";
            }
            else
            {
                var first = st.Live.Values.FirstOrDefault(r => r.State == JobState.Pending);
                reason = first is not null && _s.Engine.GetJob(first.Id) is { State: GpuCommons.Core.Jobs.JobState.Pending } v ? GpuCommons.Scheduling.PendingReasons.Code(v.Reason) : "priority";
            }

            arrays[id] = new ArraySummary(st.RemainderText(), st.Indices.Count, st.Live.Count, pending, st.Ok, st.NotOk, reason);
        }

        _holdsView = holds.ToImmutable();
        _arraysView = arrays.ToImmutable();
    }
}

// For `gpuc bench arrays`: what the engine holds and what its full cycle costs, measured on the loop.
public sealed partial class Coordinator
{
    /// <summary>
    /// Runs <paramref name="cycles"/> full scheduling cycles on the loop (through the loop's own path, so any start is
    /// handled as usual) and returns the time of each in milliseconds, with the engine's pending and running counts and
    /// the arrays and held jobs the loop keeps out of it.
    /// </summary>
    public Task<(List<double> CycleMs, int EnginePending, int EngineRunning, int Arrays, int Held)> MeasureFullCyclesAsync(int cycles) => OnLoopAsync(async () =>
    {
        var times = new List<double>(cycles);
        for (var i = 0; i < cycles; i++)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            await ScheduleAsync(full: true, CancellationToken.None);
            times.Add(sw.Elapsed.TotalMilliseconds);
        }

        return (times, _s.Engine.PendingCount, _s.Engine.RunningCount, _s.Arrays.Count, _s.Held.Count);
    });
}
