using CsCheck;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;
using GpuCommons.Scheduling.Tests.Support;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// The pending queue's radix sort orders exactly as a comparison sort by (key, highest first; submit time; id) would,
/// whatever the keys (ties, ±0, infinities, NaN) and after jobs leave and come back (a requeued job reuses its place
/// in the submit-order list).
/// </summary>
public sealed class QueueSortProperty
{
    private static readonly Gen<double> Key = Gen.OneOf(
        Gen.Double[-5, 5],
        Gen.Int[0, 3].Select(i => (double)i),
        Gen.OneOfConst(0.0, -0.0, double.NaN, double.PositiveInfinity, double.NegativeInfinity, double.MaxValue, double.Epsilon));

    /// <summary>(submit minute, key) per job; then, per job, whether it leaves before the second sort and whether it comes back.</summary>
    private static readonly Gen<(int Submit, double Key, double Key2, bool Leaves, bool Returns)[]> Jobs =
        Gen.Select(Gen.Int[0, 20], Key, Key, Gen.Bool, Gen.Bool).Array[0, 60];

    private readonly struct Keys(Dictionary<long, double> keys, bool columnar) : PendingQueue.ISortKeys
    {
        public bool Columnar => columnar;

        public double KeyOf(JobRecord job) => columnar ? throw new InvalidOperationException("columnar keys read no job") : keys[job.Id];

        public double KeyOf(int user, long submitTicks, PriorityClass cls, ref double size, JobRecord job)
        {
            columnar.ShouldBeTrue();
            submitTicks.ShouldBe(job.SubmitTicks);
            user.ShouldBe(job.User);
            return keys[job.Id];
        }
    }

    [Fact]
    public void RadixSort_OrdersLikeAComparisonSort_AcrossDeparturesAndRequeues()
    {
        Deterministic.Sample(Jobs, jobs =>
        {
            var queue = new PendingQueue(new SchedulerOptions { Ordering = OrderingPolicy.Multifactor });
            var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
            var records = new List<JobRecord>();
            var keys = new Dictionary<long, double>();
            for (var i = 0; i < jobs.Length; i++)
            {
                // Ids in reverse of arrival, so that the id tie-break is not the arrival order.
                var spec = new JobSpec { Id = 1000 - i, Project = "p", Gpus = 1, Walltime = TimeSpan.FromHours(1), SubmitTime = start.AddMinutes(jobs[i].Submit) };
                var job = new JobRecord(spec, spec, 0, 0, -1);
                records.Add(job);
                keys[job.Id] = jobs[i].Key;
                queue.Add(job, start.UtcTicks);
            }

            Check(queue, records, keys, columnar: false);

            // Some jobs leave; some of those come back with a new key (a requeue keeps the submit time).
            for (var i = 0; i < jobs.Length; i++)
            {
                if (jobs[i].Leaves)
                {
                    queue.Remove(records[i]);
                }
            }

            for (var i = 0; i < jobs.Length; i++)
            {
                if (jobs[i].Leaves && jobs[i].Returns)
                {
                    keys[records[i].Id] = jobs[i].Key2;
                    queue.Add(records[i], start.UtcTicks);
                }
            }

            Check(queue, [.. records.Where(r => r.PendingSlot >= 0)], keys, columnar: true);

            // A third sort, after more departures (the submit-order columns drop departed entries once they are an
            // eighth of them, and requeued jobs take theirs back).
            for (var i = 0; i < jobs.Length; i += 3)
            {
                if (records[i].PendingSlot >= 0)
                {
                    queue.Remove(records[i]);
                }
            }

            Check(queue, [.. records.Where(r => r.PendingSlot >= 0)], keys, columnar: false);
        }, iter: 2_000, stream: 91);
    }

    [Fact]
    public void ExtendingTheHead_MovesTheNextEntriesInOrder_AndKeepsTheTailInSubmitOrderWithItsKeys()
    {
        // A lazy sort (a head of 4), then the head extended by 1–40 entries at a time until the tail is sorted: the order
        // is always the full sort's up to the end of the head, the tail keeps its entries in submit order with each one's
        // key and decision class, and the rest of the order is the tail sorted.
        Gen.Select(Gen.Select(Gen.Int[0, 30], Gen.Int[0, 12]).Array[9, 400], Gen.Int[1, 40].Array[1, 30])
            .Sample((jobs, steps) =>
            {
                var queue = new PendingQueue(new SchedulerOptions { Ordering = OrderingPolicy.Multifactor, SortedHead = 4 });
                var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
                var keys = new Dictionary<long, double>();
                var records = new List<JobRecord>();
                for (var i = 0; i < jobs.Length; i++)
                {
                    var spec = new JobSpec { Id = 5000 - i, Project = "p", Gpus = 1, Walltime = TimeSpan.FromMinutes(1 + i), SubmitTime = start.AddMinutes(jobs[i].Item1) };
                    var job = new JobRecord(spec, spec, 0, 0, -1) { DecisionClass = i % 7 };
                    keys[job.Id] = jobs[i].Item2;
                    records.Add(job);
                    queue.Add(job, start.UtcTicks);
                }

                var expected = FullSortOrder(records, keys);
                var sortKeys = new Keys(keys, columnar: false);
                queue.Sort(ref sortKeys, []);
                foreach (var step in steps)
                {
                    var head = queue.SortedUntil;
                    if (head == int.MaxValue)
                    {
                        break;
                    }

                    queue.Order.Take(head).Select(j => j.Id).ShouldBe(expected.Take(head));
                    var tail = queue.Order.Skip(head).ToList();
                    tail.Count.ShouldBe(queue.UnsortedCount);
                    tail.ShouldBe([.. tail.OrderBy(j => j.SubmitTicks).ThenBy(j => j.Id)]);
                    queue.TailKeys.ToArray().ShouldBe([.. tail.Select(j => PendingQueue.Descending(keys[j.Id]))]);
                    queue.TailDecisions.ToArray().ShouldBe([.. tail.Select(j => j.DecisionClass)]);
                    queue.OrderWall.ShouldBe([.. queue.Order.Select(j => j.WalltimeTicks)]);
                    queue.ExtendHead(step);
                }

                queue.SortTail();
                queue.Order.Select(j => j.Id).ShouldBe(expected);
                queue.OrderWall.ShouldBe([.. queue.Order.Select(j => j.WalltimeTicks)]);
            }, iter: 500);
    }

    /// <summary>The ids of <paramref name="jobs"/> as a comparison sort orders them: key (highest first), submit time, id.</summary>
    private static List<long> FullSortOrder(IEnumerable<JobRecord> jobs, Dictionary<long, double> keys) => jobs
        .OrderBy(j => keys[j.Id], Comparer<double>.Create((a, b) => b.CompareTo(a)))
        .ThenBy(j => j.SubmitTicks)
        .ThenBy(j => j.Id)
        .Select(j => j.Id)
        .ToList();

    private static void Check(PendingQueue queue, List<JobRecord> pending, Dictionary<long, double> keys, bool columnar)
    {
        var sortKeys = new Keys(keys, columnar);
        queue.Sort(ref sortKeys, []);
        var expected = FullSortOrder(pending, keys);
        queue.Order.Select(j => j.Id).ToList().ShouldBe(expected);
        queue.OrderHead.ShouldBe(pending.Count(j => double.IsPositiveInfinity(keys[j.Id])));
        queue.MinWalltime.ShouldBe(pending.Count == 0 ? long.MaxValue : pending.Min(j => j.WalltimeTicks));
    }
}
