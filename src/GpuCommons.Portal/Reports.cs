using GpuCommons.Core.Jobs;
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
        IReadOnlyList<LostJob> Lost,
        /// <summary>GPU-hours of the jobs running when the snapshot was taken, so far: in <see cref="Months"/>, not yet charged.</summary>
        double RunningGpuHours = 0,
        int RunningJobs = 0);

    public sealed record LostJob(long Id, string Project, string? Placement, DateTimeOffset? End, string Outcome);

    /// <param name="Amount">The market value of the use (the ledger's amount).</param>
    /// <param name="Paid">What the organisations pay of it (the ledger's co-pay); the rest is the public subsidy.</param>
    public sealed record MonthRow(DateTime Month, string OrgType, string Partition, double GpuHours, decimal Amount, decimal Paid = 0);

    public sealed record WaitRow(DateTime Month, string OrgType, int Jobs, double P50Minutes, double P90Minutes, double P99Minutes);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Snapshot? _last;

    public const int Days = 14;

    /// <summary>How old a snapshot may be before a page asks for a new one (a minute).</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a page waits for a new snapshot before it shows the older one (which says when it was taken).</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The latest figures, at most <see cref="MaxAge"/> old: an older snapshot is recomputed (once, however many pages
    /// ask) and the page waits for it up to <see cref="MaxWait"/>, so the first view after a quiet hour is not an hour
    /// old; where the computation takes longer (a national fleet on a slow disk) the older snapshot is shown meanwhile.
    /// </summary>
    public async Task<Snapshot> GetAsync()
    {
        if (_last is { } s)
        {
            if (time.GetUtcNow() - s.Taken < MaxAge)
            {
                return s;
            }

            var refresh = _refresh ??= Task.Run(RefreshAsync);
            await Task.WhenAny(refresh, Task.Delay(MaxWait, time));
            return _last!;
        }

        await (_refresh ??= Task.Run(RefreshAsync));
        return _last!;
    }

    private Task? _refresh;

    private async Task RefreshAsync()
    {
        await _gate.WaitAsync();
        try
        {
            if (_last is null || time.GetUtcNow() - _last.Taken >= MaxAge)
            {
                _last = await ComputeAsync();
            }
        }
        finally
        {
            _refresh = null;
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
            .Select(j => new { j.Id, j.Project, j.Gpus, j.HeldGpus, j.SubmitTime, j.StartTime, j.EndTime, j.Outcome, j.Placement, j.Partition, j.State })
            .AsAsyncEnumerable();
        var lost = new PriorityQueue<LostJob, long>();
        // Running jobs are charged when they end: until then their GPU-hours so far count in this month's figures.
        var running = new Dictionary<(string Class, string Partition), double>();
        var runningJobs = 0;
        await foreach (var j in jobs)
        {
            if (j.State == JobState.Running && j.StartTime is { } rs && j.EndTime is null)
            {
                var part = j.Partition ?? PartitionOf(j.Placement) ?? "";
                var since = rs > new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero) ? rs : new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
                var k = (projectClass.GetValueOrDefault(j.Project, "unknown"), part);
                running[k] = running.GetValueOrDefault(k) + (j.HeldGpus > 0 ? j.HeldGpus : j.Gpus) * Math.Max(0, (now - since).TotalHours);
                runningJobs++;
            }

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

        var months = await db.Ledger.AsNoTracking().Select(l => new { l.Project, l.Partition, l.GpuHours, l.Amount, l.Payable, l.Time }).ToListAsync();
        var thisMonth = new DateTime(now.Year, now.Month, 1, 0, 0, 0, DateTimeKind.Utc);
        var monthRows = months
            .Select(l => (Month: new DateTime(l.Time.Year, l.Time.Month, 1, 0, 0, 0, DateTimeKind.Utc), Class: projectClass.GetValueOrDefault(l.Project, "unknown"), l.Partition, l.GpuHours, l.Amount, Paid: l.Payable))
            .Concat(running.Select(r => (Month: thisMonth, r.Key.Class, r.Key.Partition, GpuHours: r.Value, Amount: 0m, Paid: 0m)))
            .GroupBy(l => (l.Month, l.Class, l.Partition))
            .Select(g => new MonthRow(g.Key.Month, g.Key.Class, g.Key.Partition, g.Sum(x => x.GpuHours), g.Sum(x => x.Amount), g.Sum(x => x.Paid)))
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
        return new Snapshot(now, classes, days, busy, queue, monthRows, waitRows, co.Fleet.TotalGpus, projectClass, lostList, running.Values.Sum(), runningJobs);
    }

    /// <summary>The partition of the first node of a placement (<c>NODE:GPU;…</c>).</summary>
    private string? PartitionOf(string? placement)
    {
        if (string.IsNullOrEmpty(placement))
        {
            return null;
        }

        var colon = placement.IndexOf(':', StringComparison.Ordinal);
        var node = co.Fleet.FindNode(colon < 0 ? placement : placement[..colon]);
        return node is null ? null : co.Fleet.Partitions[node.PartitionIndex].Name;
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static double Pctl(List<double> sorted, double p) =>
        sorted.Count == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}
