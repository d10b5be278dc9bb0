using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// The what-ifs of preemption: which running jobs would have to stop for a pending job to start, by GPUs on its
/// partition (<see cref="PlanPreemption"/>) or by quota (<see cref="PlanQuotaPreemption"/>), chosen to lose the least
/// work. A job within its guarantee reclaims GPUs from borrowing jobs; any non-preemptible job may take GPUs from
/// preemptible-class jobs; under least attained service, a lower queue gives way. Plans change nothing the engine decides
/// from (its scratch lists aside, and the quota sums it applies and takes back); the engine commits a plan.
/// </summary>
internal sealed class PreemptionPlanner(Fleet fleet, SchedulerOptions options, ClusterState cluster, Dictionary<long, JobRecord> jobs, Admission admission,
    ResourceLedger ledger)
{
    private const int Milli = JobSpec.MilliPerGpu;
    private readonly Fleet _fleet = fleet;
    private readonly SchedulerOptions _options = options;
    private readonly ClusterState _c = cluster;
    private readonly Dictionary<long, JobRecord> _jobs = jobs;
    private readonly Admission _admission = admission;

    private ResourceLedger Ledger { get; } = ledger;

    private readonly Dictionary<int, List<JobRecord>> _victimsByNode = [];
    private readonly Stack<List<JobRecord>> _spareVictimLists = new();
    private readonly Dictionary<int, double> _gangCost = [];

    private void ClearVictimsByNode()
    {
        foreach (var list in _victimsByNode.Values)
        {
            list.Clear();
            _spareVictimLists.Push(list);
        }

        _victimsByNode.Clear();
    }

    /// <summary>Whether jobs may preempt running jobs of a lower least-attained-service queue.</summary>
    private bool LasPreempts => _options.Ordering == OrderingPolicy.LeastAttainedService && _options.Preemption;

    /// <summary>The least-attained-service queue of a job that has received this much service: 0 is the first.</summary>
    public int LasQueue(double attainedGpuSeconds)
    {
        var thresholds = _options.LasThresholdsGpuHours;
        var q = 0;
        while (q < thresholds.Count && attainedGpuSeconds >= thresholds[q] * 3600)
        {
            q++;
        }

        return q;
    }

    /// <summary>Service received so far, the current run included.</summary>
    private static double AttainedNow(JobRecord job, long now) => job.State == JobState.Running
        ? job.AttainedGpuSeconds + (job.Placement!.HeldGpuMilli / (double)Milli * TimeSpan.FromTicks(Math.Max(0, now - job.StartTicks)).TotalSeconds)
        : job.AttainedGpuSeconds;

    private bool IsVictimFor(JobRecord victim, JobRecord job, int p, bool withinGuarantee, long now)
    {
        if (victim.Preempting || victim.Id == job.Id)
        {
            return false;
        }

        if (victim.PriorityClass == PriorityClass.Preemptible && job.PriorityClass > PriorityClass.Preemptible)
        {
            return true;
        }

        // Least attained service: a job of a lower queue gives way, unless it is of the same project (a project's jobs
        // never preempt each other, DESIGN.md) or of a higher class.
        if (LasPreempts && victim.Project != job.Project && victim.PriorityClass <= job.PriorityClass && LasQueue(AttainedNow(victim, now)) > LasQueue(job.AttainedGpuSeconds))
        {
            return true;
        }

        return withinGuarantee && victim.Project != job.Project && victim.PriorityClass <= job.PriorityClass && _admission.Quota.Borrowing(victim.Project, p);
    }

    private double Loss(JobRecord victim, long now)
    {
        var elapsed = TimeSpan.FromTicks(now - victim.StartTicks).TotalSeconds;
        if (victim.Checkpointable)
        {
            elapsed = Math.Min(elapsed, _options.PreemptionGrace.TotalSeconds);
        }

        return victim.Placement!.HeldGpuMilli / (double)Milli * Math.Max(elapsed, 1);
    }

    /// <summary>
    /// The what-if of preemption: the victims whose GPUs (or quota) would let <paramref name="job"/> start, on the first
    /// partition of <paramref name="partitions"/> where some exist, chosen to lose the least work; null when there are
    /// none. Changes nothing the engine decides from (scratch lists aside): the engine's <c>Preempt</c> commits a plan.
    /// </summary>
    public PreemptionPlan? PlanPreemption(JobRecord job, ulong partitions, long now)
    {
        for (var p = 0; p < _fleet.Partitions.Count; p++)
        {
            if ((partitions & job.ShapeMask & (1UL << p)) == 0)
            {
                continue;
            }

            var shape = job.Shapes[p];

            var within = _admission.Quota.WithinGuarantee(job.Project, p, shape.HeldMilli);
            if (!within && job.PriorityClass == PriorityClass.Preemptible)
            {
                continue;
            }

            ClearVictimsByNode();
            var any = false;

            // Only preemptible-class jobs can be victims unless someone borrows here (and this job is within its
            // guarantee) or least-attained-service queues preempt: then walk just those, in the same order.
            var candidates = (within && _admission.Quota.AnyBorrowing(p)) || LasPreempts ? _c.RunningByEnd[p] : _c.RunningPreemptible[p];
            if (candidates.Count == 0 || (job.PriorityClass == PriorityClass.Preemptible && ReferenceEquals(candidates, _c.RunningPreemptible[p])))
            {
                continue;
            }

            foreach (var (_, id) in candidates)
            {
                var v = _jobs[id];
                if (!IsVictimFor(v, job, p, within, now))
                {
                    continue;
                }

                foreach (var n in v.Placement!.Nodes)
                {
                    if (!_c.NodeUsableFor(n, job) || !NodeCouldHold(job, p, shape, n))
                    {
                        continue;
                    }

                    if (!_victimsByNode.TryGetValue(n, out var list))
                    {
                        _victimsByNode[n] = list = _spareVictimLists.Count > 0 ? _spareVictimLists.Pop() : [];
                    }

                    list.Add(v);
                    any = true;
                }
            }

            if (!any)
            {
                continue;
            }

            var chosen = shape.Kind == ShapeKind.Gang ? ChooseGangVictims(job, p, shape, now, out var nodes) : ChooseNodeVictims(job, p, shape, now, out nodes);
            if (chosen is null || !QuotaAllowsAfter(job, p, shape.HeldMilli, chosen))
            {
                continue;
            }

            return new PreemptionPlan(p, chosen, nodes!);
        }

        return null;
    }

    /// <summary>
    /// On one node, the victims of least loss whose end frees the GPUs the job needs there and, where the node tracks
    /// them, the cores and memory it needs too; the node whose victims lose least wins.
    /// </summary>
    private List<JobRecord>? ChooseNodeVictims(JobRecord job, int p, in Shape shape, long now, out int[]? nodes)
    {
        nodes = null;
        List<JobRecord>? best = null;
        var bestCost = double.MaxValue;
        var need = shape.Kind == ShapeKind.Share ? 1 : shape.Amount;
        var tracked = Ledger.TrackedPartition[p];
        var demand = tracked ? ResourceLedger.DemandOf(job.Request, _fleet.Partitions[p], shape) : default;
        foreach (var (n, victims) in _victimsByNode)
        {
            victims.Sort((a, b) => Loss(a, now).CompareTo(Loss(b, now)));
            var free = _c.Free[n];
            long cpus = tracked ? Ledger.FreeCpus(n) : 0;
            var memory = tracked ? Ledger.FreeMemoryMiB(n) : 0;
            double cost = 0;
            var taken = new List<JobRecord>();
            foreach (var v in victims)
            {
                if (free >= need && cpus >= demand.Cpus && memory >= demand.MemoryMiB)
                {
                    break;
                }

                taken.Add(v);
                cost += Loss(v, now);
                free += v.Exclusive ? _fleet.Nodes[n].Gpus : CountWholeOn(v, n);
                if (tracked && ResourceLedger.TakenOn(v, n) is { } held)
                {
                    cpus += held.Cpus;
                    memory += held.MemoryMiB;
                }
            }

            if (free >= need && cpus >= demand.Cpus && memory >= demand.MemoryMiB && cost < bestCost)
            {
                bestCost = cost;
                best = taken;
                nodes = [n];
            }
        }

        return best;
    }

    /// <summary>Node <paramref name="n"/> is of the job's model and features, and big enough for its cores and memory when empty.</summary>
    private bool NodeCouldHold(JobRecord job, int p, in Shape shape, int n)
    {
        var spec = job.Request;
        var constrained = spec.GpuModels is not null || spec.Features is not null;
        if (!constrained && !Ledger.TrackedPartition[p])
        {
            return true;
        }

        var node = _fleet.Nodes[n];
        return (!constrained || ResourceDemand.Eligible(spec, node)) && ResourceLedger.DemandOf(spec, _fleet.Partitions[p], shape).FitsOnEmpty(node);
    }

    private static int CountWholeOn(JobRecord v, int n)
    {
        var c = 0;
        foreach (var s in v.Placement!.Slots)
        {
            if (s.Node == n && !s.IsShare)
            {
                c++;
            }
        }

        return c;
    }

    private List<JobRecord>? ChooseGangVictims(JobRecord job, int p, in Shape shape, long now, out int[]? nodes)
    {
        nodes = null;
        var part = _fleet.Partitions[p];
        var cost = _gangCost;
        cost.Clear();
        foreach (var n in part.Nodes)
        {
            if (!_c.NodeUsableFor(n, job) || _fleet.Nodes[n].Gpus < shape.Amount)
            {
                continue;
            }

            if (_c.IsFullyFree(n))
            {
                cost[n] = 0;
                continue;
            }

            if (!_victimsByNode.TryGetValue(n, out var victims) || victims.Count != _c.NodeJobs[n].Count)
            {
                continue;
            }

            double c = 0;
            foreach (var v in victims)
            {
                c += Loss(v, now);
            }

            cost[n] = c;
        }

        if (cost.Count < shape.Nodes)
        {
            // Fewer nodes could be freed than the gang needs: no domain can hold it.
            return null;
        }

        var levels = _c.DomainsByDepth[p];
        for (var depth = levels.Length - 1; depth >= 0; depth--)
        {
            int[]? bestNodes = null;
            var bestCost = double.MaxValue;
            foreach (var d in levels[depth])
            {
                var candidates = new List<(double Cost, int Node)>();
                foreach (var leaf in _c.LeavesUnder[p][d])
                {
                    foreach (var n in part.Domains[leaf].DirectNodes)
                    {
                        if (cost.TryGetValue(n, out var c))
                        {
                            candidates.Add((c, n));
                        }
                    }
                }

                if (candidates.Count < shape.Nodes)
                {
                    continue;
                }

                candidates.Sort();
                double total = 0;
                for (var i = 0; i < shape.Nodes; i++)
                {
                    total += candidates[i].Cost;
                }

                if (total < bestCost)
                {
                    bestCost = total;
                    bestNodes = [.. candidates.Take(shape.Nodes).Select(c => c.Node)];
                }
            }

            if (bestNodes is not null)
            {
                nodes = bestNodes;
                var victims = new List<JobRecord>();
                foreach (var n in bestNodes)
                {
                    foreach (var v in _c.NodeJobs[n])
                    {
                        if (!victims.Contains(v))
                        {
                            victims.Add(v);
                        }
                    }
                }

                return victims;
            }
        }

        return null;
    }

    /// <summary>
    /// Would the job pass its quota check once the victims are gone? Applies their release to the quota sums and takes
    /// it back (integer sums: the state after is the state before, which a test checks).
    /// </summary>
    private bool QuotaAllowsAfter(JobRecord job, int p, long held, List<JobRecord> victims)
    {
        foreach (var v in victims)
        {
            _admission.Quota.Apply(v.Project, v.Partition, -v.Placement!.HeldGpuMilli);
        }

        var ok = _admission.Quota.Check(job.Project, p, held) is null;
        foreach (var v in victims)
        {
            _admission.Quota.Apply(v.Project, v.Partition, v.Placement!.HeldGpuMilli);
        }

        return ok;
    }

    /// <summary>
    /// The what-if of preemption for quota (a job within its guarantee refused because borrowers use the cohort's
    /// capacity): either the jobs already stopping free enough (a plan with no victims, to wait until they are gone),
    /// or the fewest-loss victims still to stop; null when neither. Changes nothing.
    /// </summary>
    public QuotaPreemptionPlan? PlanQuotaPreemption(JobRecord job, long now)
    {
        for (var p = 0; p < _fleet.Partitions.Count; p++)
        {
            if ((job.ShapeMask & (1UL << p)) == 0)
            {
                continue;
            }

            var shape = job.Shapes[p];

            if (!_admission.Quota.WithinGuarantee(job.Project, p, shape.HeldMilli) || _admission.Quota.Check(job.Project, p, shape.HeldMilli) != PendingReason.CohortQuota)
            {
                continue;
            }

            var candidates = new List<JobRecord>();
            var stopping = new List<JobRecord>();
            foreach (var (_, id) in _c.RunningByEnd[p])
            {
                var v = _jobs[id];
                if (v.Preempting)
                {
                    stopping.Add(v);
                }
                else if (IsVictimFor(v, job, p, withinGuarantee: true, now))
                {
                    candidates.Add(v);
                }
            }

            // Jobs already told to stop will free their quota: count them as gone, and preempt only what is still missing.
            if (stopping.Count > 0 && QuotaAllowsAfter(job, p, shape.HeldMilli, stopping))
            {
                var until = now;
                foreach (var v in stopping)
                {
                    until = Math.Max(until, v.PreemptKillTicks);
                }

                return new QuotaPreemptionPlan(p, null, until);
            }

            candidates.Sort((a, b) => Loss(a, now).CompareTo(Loss(b, now)));
            var chosen = new List<JobRecord>(stopping);
            var fresh = new List<JobRecord>();
            foreach (var v in candidates)
            {
                chosen.Add(v);
                fresh.Add(v);
                if (QuotaAllowsAfter(job, p, shape.HeldMilli, chosen))
                {
                    return new QuotaPreemptionPlan(p, fresh, now);
                }

                if (fresh.Count >= 64)
                {
                    break;
                }
            }
        }

        return null;
    }
}
