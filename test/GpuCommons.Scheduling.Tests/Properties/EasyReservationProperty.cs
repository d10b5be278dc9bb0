using CsCheck;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Tests.Support;
using Xunit.Abstractions;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// EASY backfill end to end: in FIFO order, with no quotas, unlimited grants, no preemption and no node or reservation
/// events, the job that holds the reservation starts no later than the estimate it was given, whatever arrives,
/// backfills or ends early meanwhile.
/// </summary>
public sealed class EasyReservationProperty(ITestOutputHelper output)
{
    private static readonly Gen<(PartitionShape[] Partitions, Op[] Ops)> World =
        Gen.Select(RandomWorld.Partition.Array[1, 2], RandomWorld.Operation.Array[40, 160]);

    private static readonly string? TraceFile = Environment.GetEnvironmentVariable("GPUC_TRACE");

    private static void Play((PartitionShape[] Partitions, Op[] Ops) w)
    {
        var trace = new System.Text.StringBuilder();
        try
        {
            Play(w, TraceFile is null ? null : line => trace.AppendLine(line));
        }
        catch (Exception ex) when (TraceFile is not null)
        {
            trace.AppendLine(ex.Message);
            File.WriteAllText(TraceFile, trace.ToString());
            throw;
        }
    }

    private static void Play((PartitionShape[] Partitions, Op[] Ops) w, Action<string>? log)
    {
        var fleet = RandomWorld.BuildFleet(w.Partitions);
        var tenancy = TenancyBuilder.Simple("a", "b", "c");
        var options = new SchedulerOptions { Ordering = OrderingPolicy.Fifo, Backfill = BackfillMode.Easy, Preemption = false };
        var e = new CheckedEngine(fleet, tenancy, options, TenancyBuilder.Epoch) { Log = log };
        log?.Invoke(string.Join(" ", fleet.Nodes.Select(n => $"{n.Name}:{n.Gpus}@{fleet.Domains[n.DomainIndex].Name}")));
        long nextId = 1;
        (long Job, DateTimeOffset Due)? watch = null;
        foreach (var op in w.Ops)
        {
            switch (op.Kind)
            {
                case OpKind.Submit:
                case OpKind.Reserve:
                case OpKind.Cancel:
                    var gpus = new[] { 0.25, 0.5, 1, 2, 4, 8, 16, 3 }[op.A % 8];
                    e.Submit(new Core.Jobs.JobSpec
                    {
                        Id = nextId++,
                        Project = tenancy.Projects[op.C % 3].Name,
                        Gpus = gpus,
                        Nodes = gpus >= 2 && op.B % 4 == 0 ? 2 : null,
                        Walltime = TimeSpan.FromMinutes(5 + (op.C % 300)),
                        Partition = op.D % 3 == 0 ? fleet.Partitions[op.D % fleet.Partitions.Count].Name : null,
                        SubmitTime = e.Now,
                    });
                    break;
                case OpKind.ScheduleFull:
                case OpKind.NodeState:
                    e.Schedule(full: true);
                    break;
                case OpKind.ScheduleIncremental:
                    e.Schedule(full: false);
                    break;
                case OpKind.Complete:
                case OpKind.StartFailed:
                {
                    var running = e.RunningIds.ToList();
                    if (running.Count > 0)
                    {
                        e.Complete(running[op.A % running.Count]);
                    }

                    break;
                }

                default:
                {
                    var step = TimeSpan.FromMinutes(1 + (op.A % 120));
                    if (watch is { } wt && e.Now + step >= wt.Due)
                    {
                        // Stop at the due time and schedule there: the reserved job must start now at the latest.
                        e.Advance(wt.Due - e.Now);
                        e.Schedule(full: true);
                        var v = e.Engine.GetJob(wt.Job) ?? throw new InvariantViolation($"reserved job {wt.Job} vanished");
                        if (v.Start is not { } start || start > wt.Due)
                        {
                            throw new InvariantViolation($"job {wt.Job} was reserved to start by {wt.Due:o} but at that time is {v.State} ({v.Reason})");
                        }

                        watch = null;
                        break;
                    }

                    e.Advance(step);
                    break;
                }
            }

            if (watch is { } w2 && e.Engine.GetJob(w2.Job) is not { State: Core.Jobs.JobState.Pending })
            {
                // Started (and maybe already ended): it must have started by its due time.
                var start = e.Starts.Last(s => s.JobId == w2.Job).Time;
                if (start > w2.Due)
                {
                    throw new InvariantViolation($"job {w2.Job} was reserved to start by {w2.Due:o} but started at {start:o}");
                }

                watch = null;
            }

            if (watch is null)
            {
                foreach (var id in e.PendingIds)
                {
                    var v = e.View(id);
                    if (v.Reason == PendingReason.Reserved && v.EstimatedStart is { } due)
                    {
                        watch = (id, due);
                        log?.Invoke($"   watching {id} due {due:HH:mm}");
                        break;
                    }
                }
            }
        }
    }

    [Fact]
    public void EasyReservation_IsNeverDelayed()
    {
        Deterministic.Sample(World, Play, iter: 300, stream: 21, print: w => $"{string.Join(" | ", w.Partitions.AsEnumerable())}\n{string.Join(" ", w.Ops.AsEnumerable())}", writeLine: output.WriteLine);
    }
}
