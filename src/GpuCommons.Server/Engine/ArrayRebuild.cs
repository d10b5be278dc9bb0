using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Engine;

/// <summary>
/// Rebuilds the loop's arrays and held jobs at start-up: an array from its row (the cursor says which tasks have rows),
/// the counts of its ended tasks, and the task indices given a row out of order; a pending job with a dependency is held
/// again and its dependency evaluated in the first pass (a dependency once met stays met: ended jobs do not change).
/// </summary>
internal static class ArrayRebuild
{
    public static async Task HoldAsync(GpucDb ctx, LoopState state, List<JobRow> live, CancellationToken ct)
    {
        foreach (var row in live)
        {
            if (row.IsArray)
            {
                if (ArrayIndices.TryParse(row.ArrayIndices, out _) is not { } indices)
                {
                    continue;
                }

                var st = new ArrayState(row, indices) { DependencyMet = row.Dependency is null || row.CancelRequested };
                var id = row.Id;
                foreach (var c in await ctx.Jobs.AsNoTracking().Where(j => j.ArrayJobId == id && j.State != JobState.Pending && j.State != JobState.Running)
                    .GroupBy(j => j.State).Select(g => new { g.Key, N = g.LongCount() }).ToListAsync(ct))
                {
                    if (c.Key == JobState.Finished)
                    {
                        st.Ok += c.N;
                        continue;
                    }

                    st.NotOk += c.N;
                    if (c.Key == JobState.Cancelled)
                    {
                        st.Cancelled += c.N;
                    }
                    else
                    {
                        st.Failed += c.N;
                    }
                }

                foreach (var t in await ctx.Jobs.AsNoTracking().Where(j => j.ArrayJobId == id).Select(j => j.ArrayTaskId!.Value).ToListAsync(ct))
                {
                    if (indices.PositionOf(t) >= row.ArrayExpanded)
                    {
                        st.Skip.Add(t);
                    }
                }

                state.Arrays[row.Id] = st;
            }
            else if (row.State == JobState.Pending && row.Dependency is not null)
            {
                state.Held[row.Id] = row;
            }
        }
    }

    /// <summary>Links the live tasks (restored into the engine as ordinary jobs) to their arrays.</summary>
    public static void LinkTasks(LoopState state)
    {
        foreach (var row in state.Active.Values)
        {
            if (row.ArrayJobId is { } a && state.Arrays.TryGetValue(a, out var st))
            {
                st.Live[row.Id] = row;
            }
        }

        state.Active.Left.Clear();
    }
}
