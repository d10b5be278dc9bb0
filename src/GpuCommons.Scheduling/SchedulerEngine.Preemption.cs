using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Preemption: a job within its guarantee reclaims GPUs from borrowing jobs; any non-preemptible job may take GPUs
// from preemptible-class jobs. Victims are chosen to lose the least work.
public sealed partial class SchedulerEngine
{
    private bool TryPreempt(JobRecord job, ulong partitions, long now, ScheduleResult result)
    {
        if (_preemption.PlanPreemption(job, partitions, now) is not { } plan)
        {
            return false;
        }

        Preempt(job, plan.Victims, plan.Nodes, plan.Partition, now, result);
        return true;
    }

    private void Preempt(JobRecord job, List<JobRecord> victims, int[] nodes, int p, long now, ScheduleResult result)
    {
        var grace = TimeSpan.Zero;
        foreach (var v in victims)
        {
            var g = v.Checkpointable ? Options.PreemptionGrace : TimeSpan.Zero;
            grace = g > grace ? g : grace;
            v.Preempting = true;
            v.PreemptKillTicks = now + g.Ticks;
            _preempting++;
            result.Preempted.Add(new JobPreemption(v.Id, job.Id, g, new DateTimeOffset(now, TimeSpan.Zero)));
        }

        if (job.HeldPool >= 0)
        {
            DissolveHold(_c.Pools[job.HeldPool]);
        }

        if (nodes.Length > 0)
        {
            // Claim the victims' nodes for the job so that nobody else takes the GPUs they release.
            var pool = _c.NewPool(Fleet.Partitions[p], PoolKind.Hold);
            pool.HolderJob = job.Id;
            pool.UsableUntil = now;
            pool.StickyUntil = now + grace.Ticks + ClaimSlack.Ticks;
            foreach (var n in nodes)
            {
                _c.Reassign(n, pool.Id);
            }

            Materialize(job);
            job.HeldPool = pool.Id;
        }

        Decide(job, PendingReason.WaitingForPreemption, now + grace.Ticks);
        RefreshCapacitySignature(p);
    }

    private bool TryPreemptForQuota(JobRecord job, long now, ScheduleResult result)
    {
        switch (_preemption.PlanQuotaPreemption(job, now))
        {
            case { Victims: null } wait:
                // Jobs already told to stop will free the quota: wait for them.
                Decide(job, PendingReason.WaitingForPreemption, wait.Until);
                return true;
            case { } plan:
                Preempt(job, plan.Victims, [], plan.Partition, now, result);
                return true;
            default:
                return false;
        }
    }

    /// <summary>What-if for tests: the partition, victims and nodes of a preemption by GPUs for this pending job, or null; decides nothing.</summary>
    internal (int Partition, IReadOnlyList<long> Victims, IReadOnlyList<int> Nodes)? PlanNodePreemptionForTests(long jobId)
    {
        var job = _jobs[jobId];
        return _preemption.PlanPreemption(job, job.ShapeMask, _time.GetUtcNow().UtcTicks) is { } plan ? (plan.Partition, [.. plan.Victims.Select(v => v.Id)], plan.Nodes) : null;
    }

    /// <summary>What-if for tests: the jobs a preemption for this pending job would stop now, or null; decides nothing.</summary>
    internal IReadOnlyList<long>? PlanPreemptionForTests(long jobId)
    {
        var job = _jobs[jobId];
        var now = _time.GetUtcNow().UtcTicks;
        if (_preemption.PlanPreemption(job, job.ShapeMask, now) is { } plan)
        {
            return [.. plan.Victims.Select(v => v.Id)];
        }

        return _preemption.PlanQuotaPreemption(job, now) is { Victims: { } victims } ? [.. victims.Select(v => v.Id)] : null;
    }
}

/// <summary>A preemption decided but not applied: the partition, the jobs to stop, and the nodes to claim for the preemptor.</summary>
internal sealed record PreemptionPlan(int Partition, List<JobRecord> Victims, int[] Nodes);

/// <summary>A preemption for quota: the jobs to stop (null: wait for those already stopping) and, when waiting, until when.</summary>
internal sealed record QuotaPreemptionPlan(int Partition, List<JobRecord>? Victims, long Until);
