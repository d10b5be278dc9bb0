using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Commit: applies a plan the Placer found (Internal/Placer.cs), taking the GPUs and recording the job as running.
public sealed partial class SchedulerEngine
{
    /// <summary>Applies a plan: takes the GPUs and records the job as running.</summary>
    private JobStart Commit(JobRecord job, int p, in Shape shape, in Placer.Plan plan, int allocation, long now)
    {
        GpuSlot[] slots;
        int[] nodes;
        long held;
        Span<int> scratch = stackalloc int[Core.Fleet.FleetBuilder.MaxGpusPerNode];
        switch (shape.Kind)
        {
            case ShapeKind.Share:
                _c.ChangeGpu(plan.Node, plan.Gpu, shape.Amount);
                slots = [new GpuSlot(plan.Node, plan.Gpu - Fleet.Nodes[plan.Node].FirstGpu, shape.Amount)];
                nodes = [plan.Node];
                held = shape.Amount;
                break;
            case ShapeKind.SingleNode:
            {
                var node = Fleet.Nodes[plan.Node];
                var c = 0;
                slots = new GpuSlot[shape.Amount];
                for (var g = node.FirstGpu; g < node.FirstGpu + node.Gpus && c < shape.Amount; g++)
                {
                    if (_c.GpuUsed[g] == 0)
                    {
                        scratch[c] = g;
                        slots[c] = new GpuSlot(plan.Node, g - node.FirstGpu, Milli);
                        c++;
                    }
                }

                _c.ChangeGpus(plan.Node, scratch[..c], Milli);
                nodes = [plan.Node];
                held = (long)shape.Amount * Milli;
                break;
            }

            default:
            {
                nodes = plan.Nodes!;
                slots = new GpuSlot[nodes.Length * shape.Amount];
                held = 0;
                var s = 0;
                foreach (var n in nodes)
                {
                    var node = Fleet.Nodes[n];
                    for (var g = 0; g < node.Gpus; g++)
                    {
                        scratch[g] = node.FirstGpu + g;
                        if (g < shape.Amount)
                        {
                            slots[s++] = new GpuSlot(n, g, Milli);
                        }
                    }

                    _c.ChangeGpus(n, scratch[..node.Gpus], Milli);
                    held += (long)node.Gpus * Milli;
                }

                break;
            }
        }

        RemovePending(job);
        return MarkRunning(job, p, slots, nodes, held, shape.Kind == ShapeKind.Gang, allocation, now);
    }

    private JobStart MarkRunning(JobRecord job, int p, GpuSlot[] slots, int[] nodes, long held, bool exclusive, int allocation, long now)
    {
        job.State = JobState.Running;
        Decide(job, PendingReason.New, -1);
        job.Placement = new Placement(p, slots, nodes, checked((int)held));
        job.Partition = p;
        job.Allocation = allocation;
        job.StartTicks = now;
        job.EndByTicks = now + job.WalltimeTicks;
        job.Preempting = false;
        job.Exclusive = exclusive;
        Ledger.Take(job);
        foreach (var n in nodes)
        {
            _c.NodeJobs[n].Add(job);
        }

        _c.RunningByEnd[p].Add((job.EndByTicks, job.Id));
        if (job.PriorityClass == PriorityClass.Preemptible)
        {
            _c.RunningPreemptible[p].Add((job.EndByTicks, job.Id));
        }

        _admission.Quota.Apply(job.Project, p, held);
        _admission.Commit(allocation, held, job.WalltimeTicks);

        _fairShare.AddRunning(job.User, held);
        if (_lastFairShareTicks != long.MinValue && now > _lastFairShareTicks)
        {
            // The next decay step counts running jobs from the last step; this job only runs from now.
            _fairShare.AddUsage(job.User, -held * TimeSpan.FromTicks(now - _lastFairShareTicks).TotalSeconds);
        }

        _running++;
        var allocationId = allocation >= 0 ? _admission.Grants[allocation].Spec.Id : "";
        return new JobStart(job.Id, job.Placement, allocationId, new DateTimeOffset(now, TimeSpan.Zero));
    }

    private static double GpuHours(long milli, long ticks) => Admission.GpuHours(milli, ticks);
}
