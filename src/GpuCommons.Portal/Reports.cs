using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal;

/// <summary>
/// Center-wide figures for the operator and director pages: computed from the jobs and the ledger in one pass,
/// at most once a minute, so the pages themselves only read a finished snapshot.
/// </summary>
public sealed class Reports(GpucDbFactory factory, TimeProvider time, GpuCommons.Server.Engine.Coordinator co)
{
    public sealed record Snapshot(
        DateTimeOffset Taken,
        IReadOnlyList<string> Classes,
        IReadOnlyList<DateTime> Days,
        /// <summary>[class][day] average GPUs busy.</summary>
        IReadOnlyDictionary<string, double[]> BusyGpus,
        /// <summary>[class][day] jobs waiting at the end of the day.</summary>
        IReadOnlyDictionary<string, double[]> Queue,
        IReadOnlyList<MonthRow> Months,
        IReadOnlyList<WaitRow> Waits,
        int TotalGpus,
        IReadOnlyDictionary<string, string> ProjectClass,
        /// <summary>The latest jobs the backend lost (the server's records and the backend disagreed).</summary>
        IReadOnlyList<LostJob> Lost);

    public sealed record LostJob(long Id, string Project, string? Placement, DateTimeOffset? End, string Outcome);

    public sealed record MonthRow(DateTime Month, string OrgType, string Partition, double GpuHours, decimal Amount);

    public sealed record WaitRow(DateTime Month, string OrgType, int Jobs, double P50Minutes, double P90Minutes, double P99Minutes);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Snapshot? _last;

    public const int Days = 14;

    /// <summary>
    /// The latest figures. A snapshot older than a minute is still served while a new one is computed in the
    /// background, so only the very first request after a start waits for the computation.
    /// </summary>
    public async Task<Snapshot> GetAsync()
    {
        if (_last is { } s)
        {
            if (time.GetUtcNow() - s.Taken >= TimeSpan.FromSeconds(60) && _gate.CurrentCount > 0)
            {
                _ = Task.Run(RefreshAsync);
            }

            return s;
        }

        await RefreshAsync();
        return _last!;
    }

    private async Task RefreshAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_last is null || time.GetUtcNow() - _last.Taken >= TimeSpan.FromSeconds(60))
            {
                _last = await ComputeAsync();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Snapshot> ComputeAsync()
    {
        var now = time.GetUtcNow();
        await using var db = factory.Create();
        var orgType = await db.Organisations.AsNoTracking().ToDictionaryAsync(o => o.Name, o => o.Type);
        var projectClass = (await db.Projects.AsNoTracking().Select(p => new { p.Name, p.Organisation }).ToListAsync())
            .ToDictionary(p => p.Name, p => orgType.GetValueOrDefault(p.Organisation, "unknown"), StringComparer.Ordinal);
        var classes = orgType.Values.Distinct().Order(StringComparer.Ordinal).ToList();
        if (classes.Count == 0)
        {
            classes.Add("unknown");
        }

        var today = now.UtcDateTime.Date;
        var first = today.AddDays(-(Days - 1));
        var days = Enumerable.Range(0, Days).Select(i => first.AddDays(i)).ToList();
        var busy = classes.ToDictionary(c => c, _ => new double[Days]);
        var queue = classes.ToDictionary(c => c, _ => new double[Days]);
        var waits = new Dictionary<(DateTime, string), List<double>>();
        var from = new DateTimeOffset(first, TimeSpan.Zero);

        var jobs = db.Jobs.AsNoTracking()
            .Select(j => new { j.Id, j.Project, j.Gpus, j.HeldGpus, j.SubmitTime, j.StartTime, j.EndTime, j.Outcome, j.Placement })
            .AsAsyncEnumerable();
        var lost = new PriorityQueue<LostJob, long>();
        await foreach (var j in jobs)
        {
            if (j.Outcome is { } outcome && outcome.StartsWith("lost", StringComparison.Ordinal))
            {
                lost.Enqueue(new LostJob(j.Id, j.Project, j.Placement, j.EndTime, outcome), j.Id);
                if (lost.Count > 20)
                {
                    lost.Dequeue();
                }
            }

            var cls = projectClass.GetValueOrDefault(j.Project, "unknown");
            if (!busy.ContainsKey(cls))
            {
                busy[cls] = new double[Days];
                queue[cls] = new double[Days];
                classes.Add(cls);
            }

            if (j.StartTime is { } st)
            {
                var m = new DateTime(st.Year, st.Month, 1, 0, 0, 0, DateTimeKind.Utc);
                var key = (m, cls);
                if (!waits.TryGetValue(key, out var list))
                {
                    waits[key] = list = [];
                }

                list.Add((st - j.SubmitTime).TotalMinutes);
                var end = j.EndTime ?? now;
                if (end > from)
                {
                    var gpus = j.HeldGpus > 0 ? j.HeldGpus : j.Gpus;
                    for (var d = 0; d < Days; d++)
                    {
                        var ds = new DateTimeOffset(days[d], TimeSpan.Zero);
                        var de = ds.AddDays(1) > now ? now : ds.AddDays(1);
                        var overlap = (Min(end, de) - Max(st, ds)).TotalHours;
                        if (overlap > 0 && de > ds)
                        {
                            busy[cls][d] += gpus * overlap / (de - ds).TotalHours;
                        }
                    }
                }
            }

            // Waiting at the end of each day: submitted before it, not started by it.
            var started = j.StartTime ?? (j.EndTime is { } e && j.StartTime is null ? e : DateTimeOffset.MaxValue);
            for (var d = 0; d < Days; d++)
            {
                var mark = new DateTimeOffset(days[d].AddDays(1), TimeSpan.Zero);
                if (mark > now)
                {
                    mark = now;
                }

                if (j.SubmitTime <= mark && started > mark)
                {
                    queue[cls][d]++;
                }
            }
        }

        var months = await db.Ledger.AsNoTracking().Select(l => new { l.Project, l.Partition, l.GpuHours, l.Amount, l.Time }).ToListAsync();
        var monthRows = months
            .GroupBy(l => (new DateTime(l.Time.Year, l.Time.Month, 1, 0, 0, 0, DateTimeKind.Utc), projectClass.GetValueOrDefault(l.Project, "unknown"), l.Partition))
            .Select(g => new MonthRow(g.Key.Item1, g.Key.Item2, g.Key.Partition, g.Sum(x => x.GpuHours), g.Sum(x => x.Amount)))
            .OrderBy(r => r.Month).ThenBy(r => r.OrgType, StringComparer.Ordinal).ThenBy(r => r.Partition, StringComparer.Ordinal).ToList();
        var waitRows = waits.Select(kv =>
        {
            var v = kv.Value;
            v.Sort();
            return new WaitRow(kv.Key.Item1, kv.Key.Item2, v.Count, Pctl(v, 0.5), Pctl(v, 0.9), Pctl(v, 0.99));
        }).OrderBy(r => r.Month).ThenBy(r => r.OrgType, StringComparer.Ordinal).ToList();
        var lostList = new List<LostJob>();
        while (lost.TryDequeue(out var l, out _))
        {
            lostList.Add(l);
        }

        lostList.Reverse();
        return new Snapshot(now, classes, days, busy, queue, monthRows, waitRows, co.Fleet.TotalGpus, projectClass, lostList);
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static double Pctl(List<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}
