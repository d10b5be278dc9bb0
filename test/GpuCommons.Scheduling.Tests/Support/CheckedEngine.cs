using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;

namespace GpuCommons.Scheduling.Tests.Support;

/// <summary>
/// A <see cref="SchedulerEngine"/> on a virtual clock that checks, after every call, the engine's own invariants
/// (<see cref="SchedulerEngine.VerifyInvariants"/>) and, after every scheduling decision, the rules of DESIGN.md from the
/// outside: gangs start whole, only on up nodes, inside quota and grant, outside other tenants' advance reservations,
/// never delaying a backfill reservation; and job conservation.
/// </summary>
internal sealed class CheckedEngine
{
    private readonly Dictionary<long, JobSpec> _specs = [];
    private readonly Dictionary<long, JobEnd> _ended = [];
    private readonly Dictionary<long, DateTimeOffset> _killAt = [];
    private readonly Dictionary<string, AdvanceReservation> _reservations = new(StringComparer.Ordinal);
    /// <summary>Jobs waiting for their preemptions when a pass began: the pass looks at them first.</summary>
    private readonly HashSet<long> _claimants = [];

    public CheckedEngine(Fleet fleet, TenancySpec tenancy, SchedulerOptions? options = null, DateTimeOffset? start = null)
    {
        Fleet = fleet;
        Tenancy = tenancy;
        Clock = new VirtualTimeProvider(start ?? new DateTimeOffset(2026, 3, 2, 9, 0, 0, TimeSpan.Zero));
        Engine = new SchedulerEngine(fleet, tenancy, options, Clock);
        Verify("construction");
    }

    public Fleet Fleet { get; }
    public TenancySpec Tenancy { get; }
    public VirtualTimeProvider Clock { get; }
    public SchedulerEngine Engine { get; }
    public DateTimeOffset Now => Clock.GetUtcNow();
    public IReadOnlyDictionary<long, JobEnd> Ended => _ended;
    public IReadOnlyDictionary<long, JobSpec> Specs => _specs;
    public int Submitted => _specs.Count;
    /// <summary>Jobs the engine asked to stop, and when the backend kills them.</summary>
    public IReadOnlyDictionary<long, DateTimeOffset> Preempting => _killAt;
    public List<JobStart> Starts { get; } = [];
    public int PreemptionCount { get; private set; }
    public int RequeueCount { get; private set; }
    public int ReservationCount { get; private set; }
    /// <summary>How often each pending reason was seen after a full pass (to check what the random worlds reach).</summary>
    public Dictionary<PendingReason, int> ReasonsSeen { get; } = [];

    /// <summary>Trace of every call, for reproducing a failure (set CsCheck_Seed and GPUC_TRACE=1).</summary>
    public Action<string>? Log { get; set; }

    public SubmitResult Submit(JobSpec spec)
    {
        var r = Engine.Submit(spec);
        Log?.Invoke($"{Now:HH:mm} submit {spec.Id}: {spec.Gpus} GPUs nodes {spec.Nodes} per {spec.GpusPerNode} {spec.Project} {spec.Partition} {spec.Walltime} {spec.Priority} ckpt={spec.Checkpointable} -> {(r.Accepted ? "ok" : r.Error!.Message)}");
        if (r.Accepted)
        {
            _specs.Add(spec.Id, spec);
            _ended.Remove(spec.Id);
        }

        Verify($"submit of job {spec.Id}");
        return r;
    }

    public SubmitResult Submit(JobBuilder job) => Submit(job.Obj(Now));

    /// <summary>
    /// Changes an organisation's quotas in the engine and in the model. Until the running jobs fit the new quotas
    /// again, the model's quota checks are relaxed (jobs that run are not stopped for a change); the engine's own
    /// checks and the test's assertions still apply.
    /// </summary>
    public void SetOrganisationQuotas(string organisation, params QuotaSpec[] quotas)
    {
        Engine.SetOrganisationQuotas(organisation, quotas);
        Log?.Invoke($"{Now:HH:mm} quotas of organisation {organisation}: {string.Join(", ", quotas.Select(q => $"{q.Partition} {q.NominalGpus}+{q.BorrowingLimitGpus?.ToString() ?? "inf"}"))}");
        var i = Tenancy.Organisations.FindIndex(o => o.Name == organisation);
        Tenancy.Organisations[i] = Tenancy.Organisations[i] with { Quotas = quotas };
        _quotaRelaxed = true;
    }

    /// <summary>Changes a project's quotas in the engine and in the model (see <see cref="SetOrganisationQuotas"/>).</summary>
    public void SetProjectQuotas(string project, params QuotaSpec[] quotas)
    {
        Engine.SetProjectQuotas(project, quotas);
        Log?.Invoke($"{Now:HH:mm} quotas of project {project}: {string.Join(", ", quotas.Select(q => $"{q.Partition} {q.NominalGpus}+{q.BorrowingLimitGpus?.ToString() ?? "inf"}"))}");
        var i = Tenancy.Projects.FindIndex(o => o.Name == project);
        Tenancy.Projects[i] = Tenancy.Projects[i] with { Quotas = quotas };
        _quotaRelaxed = true;
    }

    private bool _quotaRelaxed;

    public ScheduleResult Schedule(bool full = true)
    {
        var holdsBefore = Engine.HoldsForTests();
        (Engine.WalkRecord ??= []).Clear();
        _claimants.Clear();
        _claimants.UnionWith(PendingIds.Where(id => View(id).Reason == PendingReason.WaitingForPreemption));
        var result = Engine.Schedule(full);
        if (Log is { } log)
        {
            log($"{Now:HH:mm} schedule(full={full}): started [{string.Join(", ", result.Started.Select(x => $"{x.JobId}(prio {View(x.JobId).Priority:0.###})@{x.Placement.Format(Fleet)}"))}] preempted [{string.Join(", ", result.Preempted.Select(x => $"{x.JobId} for {x.ForJobId}"))}]");
            foreach (var h in Engine.HoldsForTests())
            {
                log($"   hold for {h.Holder} until {new DateTimeOffset(h.UsableUntil == long.MinValue ? 0 : h.UsableUntil, TimeSpan.Zero):MM-dd HH:mm} sticky={h.Sticky} nodes {string.Join(",", h.Nodes.Select(n => Fleet.Nodes[n].Name))}");
            }

            foreach (var id in PendingIds)
            {
                var v = View(id);
                log($"   pending {id}: {v.Reason} est {v.EstimatedStart:MM-dd HH:mm} prio {v.Priority:0.###}");
            }
        }

        Verify(full ? "full schedule" : "incremental schedule");
        CheckDecisions(result, full, holdsBefore);
        Starts.AddRange(result.Started);
        PreemptionCount += result.Preempted.Count;
        foreach (var p in result.Preempted)
        {
            _killAt[p.JobId] = p.Time + p.Grace;
        }

        if (full)
        {
            // After a full pass every pending job was looked at: its reason and estimate must agree with the holds.
            var holds = Engine.HoldsForTests();
            foreach (var id in PendingIds)
            {
                var v = View(id);
                ReasonsSeen[v.Reason] = ReasonsSeen.GetValueOrDefault(v.Reason) + 1;
                var ok = v.Reason switch
                {
                    PendingReason.Reserved => v.EstimatedStart >= Now && holds.Any(h => h.Holder == id && !h.Sticky),
                    PendingReason.WaitingForPreemption => v.EstimatedStart is not null,
                    // Sticky (preemption) holds may have ended within the pass when their holder started.
                    PendingReason.BehindReservation => holds.Count > 0 || holdsBefore.Count > 0 || Engine.Reservations.Count > 0,
                    PendingReason.New => _specs[id].SubmitTime > Now,
                    _ => v.EstimatedStart is null || holds.Any(h => h.Holder == id),
                };
                if (!ok)
                {
                    throw new InvariantViolation($"after a full pass at {Now:o}, pending job {id} says {v.Reason} with estimate {v.EstimatedStart:o}, which the holds do not bear out");
                }
            }
        }

        return result;
    }

    public JobEnd Complete(long id, JobOutcome outcome = JobOutcome.Finished, DateTimeOffset? at = null)
    {
        var end = Engine.Complete(id, outcome, at);
        Log?.Invoke($"{Now:HH:mm} complete {id} {outcome} -> {end.State} requeued={end.Requeued}");
        Record(end);
        Verify($"completion of job {id} ({outcome})");
        return end;
    }

    public JobEnd? Cancel(long id)
    {
        var end = Engine.Cancel(id);
        Log?.Invoke($"{Now:HH:mm} cancel {id} -> {end?.State}");
        if (end is not null)
        {
            Record(end);
        }

        Verify($"cancel of job {id}");
        return end;
    }

    public void StartFailed(long id)
    {
        Engine.StartFailed(id);
        Log?.Invoke($"{Now:HH:mm} start failed {id}");
        _killAt.Remove(id);
        Verify($"start failure of job {id}");
    }

    public IReadOnlyList<JobEnd> SetNodeState(string node, NodeState state)
    {
        var ends = Engine.SetNodeState(node, state);
        Log?.Invoke($"{Now:HH:mm} node {node} {state}: ended [{string.Join(", ", ends.Select(x => x.JobId))}]");
        foreach (var e in ends)
        {
            Record(e);
        }

        Verify($"node {node} set {state}");
        return ends;
    }

    public IReadOnlyList<string> ReservationNodes(string name) => _reservations.TryGetValue(name, out var r) ? r.Nodes : [];

    public void AddReservation(AdvanceReservation r)
    {
        Engine.AddReservation(r);
        Log?.Invoke($"{Now:HH:mm} reserve {r.Name} {r.Project ?? "maintenance"} {r.Start:MM-dd HH:mm}..{r.End:MM-dd HH:mm} [{string.Join(",", r.Nodes)}]");
        _reservations[r.Name] = r;
        ReservationCount++;
        Verify($"reservation {r.Name} added");
    }

    public bool RemoveReservation(string name)
    {
        var removed = Engine.RemoveReservation(name);
        Log?.Invoke($"{Now:HH:mm} unreserve {name} -> {removed}");
        _reservations.Remove(name);
        Verify($"reservation {name} removed");
        return removed;
    }

    /// <summary>
    /// Moves the clock forward as a backend would live through it: jobs reaching their walltime are killed at it, and
    /// preempted jobs are stopped when their grace period ends, each at its own instant.
    /// </summary>
    public void Advance(TimeSpan by)
    {
        var target = Now + by;
        while (true)
        {
            var next = NextForcedEnd(target);
            if (next is not { } e)
            {
                break;
            }

            Clock.SetUtcNow(e.At);
            Complete(e.Id, e.Outcome);
        }

        Clock.SetUtcNow(target);
        Verify("advance of the clock");
    }

    public IEnumerable<long> RunningIds => Engine.JobIds.Where(id => Engine.GetJob(id)!.State == JobState.Running).Order();

    public IEnumerable<long> PendingIds => Engine.JobIds.Where(id => Engine.GetJob(id)!.State == JobState.Pending).Order();

    public bool IsRunning(long id) => Engine.GetJob(id)?.State == JobState.Running;

    public PendingReason Reason(long id) => View(id).Reason;

    /// <summary>Names of the nodes a running job is on.</summary>
    public string[] NodesOf(long id) => [.. View(id).Placement!.Nodes.Select(n => Fleet.Nodes[n].Name)];

    public JobView View(long id) => Engine.GetJob(id) ?? throw new InvalidOperationException($"job {id} is not known to the engine");

    private (long Id, DateTimeOffset At, JobOutcome Outcome)? NextForcedEnd(DateTimeOffset until)
    {
        (long Id, DateTimeOffset At, JobOutcome Outcome)? best = null;
        foreach (var id in RunningIds)
        {
            var v = View(id);
            var wallEnd = v.Start!.Value + _specs[id].Walltime;
            var (at, outcome) = (wallEnd, JobOutcome.Walltime);
            if (v.Preempting && _killAt.TryGetValue(id, out var kill) && kill <= wallEnd)
            {
                (at, outcome) = (kill, JobOutcome.Preempted);
            }

            at = at < Now ? Now : at;
            if (at <= until && (best is null || at < best.Value.At))
            {
                best = (id, at, outcome);
            }
        }

        return best;
    }

    private void Record(JobEnd end)
    {
        _killAt.Remove(end.JobId);
        if (end.Requeued)
        {
            RequeueCount++;
        }
        else
        {
            _ended[end.JobId] = end;
        }
    }

    /// <summary>Engine invariants, plus conservation: every submitted job is exactly one of pending, running or ended.</summary>
    public void Verify(string after)
    {
        if (Engine.VerifyInvariants() is { } broken)
        {
            throw new InvariantViolation($"after {after} at {Now:o}: {broken}");
        }

        var pending = Engine.PendingCount;
        var running = Engine.RunningCount;
        if (Submitted != pending + running + _ended.Count)
        {
            throw new InvariantViolation($"after {after}: {Submitted} submitted != {pending} pending + {running} running + {_ended.Count} ended");
        }

        foreach (var id in _specs.Keys)
        {
            var known = Engine.GetJob(id) is not null;
            if (known == _ended.ContainsKey(id))
            {
                throw new InvariantViolation($"after {after}: job {id} is {(known ? "both ended and known to the engine" : "neither ended nor known to the engine")}");
            }
        }
    }

    private void CheckDecisions(ScheduleResult result, bool full, IReadOnlyList<(long Holder, long UsableUntil, bool Sticky, int[] Nodes)> holdsBefore)
    {
        var now = Now;
        foreach (var s in result.Started)
        {
            CheckStart(s, now);
        }

        CheckQuotaModel();
        foreach (var p in result.Preempted)
        {
            var victim = _specs[p.JobId];
            var preemptor = _specs[p.ForJobId];
            var vv = View(p.JobId);
            if (vv.State != JobState.Running || !vv.Preempting || View(p.ForJobId).State != JobState.Pending)
            {
                throw new InvariantViolation($"preemption of {p.JobId} for {p.ForJobId}: the victim must be running and marked, the preemptor pending");
            }

            // A higher class takes from the preemptible class; within its guarantee, a job reclaims from other projects'
            // borrowers of its class or below; nobody preempts a higher class or its own project's peers.
            if (victim.Priority > preemptor.Priority || (victim.Priority == preemptor.Priority && victim.Project == preemptor.Project))
            {
                throw new InvariantViolation($"job {p.ForJobId} ({preemptor.Priority}, {preemptor.Project}) preempted job {p.JobId} ({victim.Priority}, {victim.Project})");
            }

            var grace = victim.Checkpointable ? Engine.Options.PreemptionGrace : TimeSpan.Zero;
            if (p.Grace != grace)
            {
                throw new InvariantViolation($"preempted job {p.JobId} (checkpointable={victim.Checkpointable}) got grace {p.Grace}, expected {grace}");
            }
        }

        // Backfill: a job started on nodes held for a blocked job must end by the time the held job is due to start.
        var holdsAfter = Engine.HoldsForTests();
        // A full pass makes its holds while it walks the queue in priority order (jobs walked before the holder were free
        // to start anywhere); an incremental pass keeps the holds it found, unless one expired or its holder started.
        // (An incremental pass that walks the whole order makes them again, as a full pass does.)
        var remade = Engine.RemadeHolds;
        var holds = remade
            ? holdsAfter
            : holdsBefore.Where(h => holdsAfter.Any(a => a.Holder == h.Holder && a.UsableUntil == h.UsableUntil && a.Sticky == h.Sticky && a.Nodes.Order().SequenceEqual(h.Nodes.Order())));
        foreach (var (holder, usableUntil, _, nodes) in holds)
        {
            var h = View(holder);
            foreach (var s in result.Started)
            {
                if (s.JobId == holder || !s.Placement.Nodes.Any(nodes.Contains))
                {
                    continue;
                }

                if (full ? WalkedBefore(s.JobId, holder) : remade && SteppedBefore(s.JobId, holder))
                {
                    continue;
                }

                var end = s.Time + _specs[s.JobId].Walltime;
                if (end.UtcTicks > usableUntil)
                {
                    throw new InvariantViolation($"job {s.JobId} started at {s.Time:o} until {end:o} on nodes held for job {holder}, which is due at {new DateTimeOffset(usableUntil, TimeSpan.Zero):o} (estimate {h.EstimatedStart:o})");
                }
            }
        }
    }

    /// <summary>Whether the last pass stepped <paramref name="a"/> before <paramref name="b"/> (an incremental pass walks the last full pass's order).</summary>
    private bool SteppedBefore(long a, long b)
    {
        var record = Engine.WalkRecord!;
        var ia = record.IndexOf(a);
        var ib = record.IndexOf(b);
        return ia >= 0 && (ib < 0 || ia < ib);
    }

    /// <summary>Whether the full pass looked at <paramref name="a"/> before <paramref name="b"/> (jobs waiting for their preemptions first, then priority, then submit time, then id).</summary>
    private bool WalkedBefore(long a, long b)
    {
        if (_claimants.Contains(a) != _claimants.Contains(b))
        {
            return _claimants.Contains(a);
        }

        // The jobs waiting for their preemptions go first among themselves by submit time, then id: their priorities do
        // not order them.
        var pa = View(a).Priority;
        var pb = View(b).Priority;
        if (pa != pb && !_claimants.Contains(a))
        {
            return pa > pb;
        }

        var c = _specs[a].SubmitTime.CompareTo(_specs[b].SubmitTime);
        return c != 0 ? c < 0 : a < b;
    }

    private void CheckStart(JobStart s, DateTimeOffset now)
    {
        var spec = _specs[s.JobId];
        var v = View(s.JobId);
        var p = s.Placement;
        var part = Fleet.Partitions[p.Partition];
        void Fail(string why) => throw new InvariantViolation($"start of job {s.JobId} ({spec.Gpus} GPUs, nodes {spec.Nodes}, per node {spec.GpusPerNode}) at {now:o}: {why}");

        if (v.State != JobState.Running || !ReferenceEquals(v.Placement, p) && v.Placement is null)
        {
            Fail("the engine does not show it running");
        }

        if (s.Time != now || s.Time < spec.SubmitTime)
        {
            Fail($"start time {s.Time:o} is not now, or is before its submission at {spec.SubmitTime:o}");
        }

        if (spec.Partition is not null && !string.Equals(spec.Partition, part.Name, StringComparison.OrdinalIgnoreCase))
        {
            Fail($"asked for partition {spec.Partition}, placed on {part.Name}");
        }

        // The gang starts whole: every GPU it asked for, on nodes of its partition that are up.
        if (spec.Gpus < 1)
        {
            if (p.Slots.Count != 1 || p.Slots[0].Milli != spec.GpuMilli || p.HeldGpuMilli != spec.GpuMilli)
            {
                Fail($"a {spec.Gpus} share got {p.Slots.Count} slots holding {p.HeldGpuMilli}");
            }
        }
        else
        {
            var whole = p.Slots.Count(x => x.Milli == JobSpec.MilliPerGpu);
            if (whole != p.Slots.Count || whole < (int)spec.Gpus)
            {
                Fail($"got {whole} whole GPUs of {p.Slots.Count} slots for {spec.Gpus} GPUs");
            }

            if (spec.Nodes is { } nodes && p.Nodes.Count != nodes)
            {
                Fail($"asked for {nodes} nodes, got {p.Nodes.Count}");
            }

            if (spec.Nodes is { } n2 && spec.GpusPerNode is { } g2 && (p.Slots.Count != n2 * g2 || p.Slots.GroupBy(x => x.Node).Any(x => x.Count() != g2)))
            {
                Fail($"asked for {n2} × {g2} GPUs, got {p.Slots.Count} slots");
            }

            if (p.Nodes.Count > 1)
            {
                // Multi-node jobs take whole nodes.
                var wholeNodes = p.Nodes.Sum(n => Fleet.Nodes[n].Gpus) * JobSpec.MilliPerGpu;
                if (p.HeldGpuMilli != wholeNodes)
                {
                    Fail($"a multi-node job holds {p.HeldGpuMilli} thousandths, not its {wholeNodes / 1000} nodes' GPUs");
                }
            }
            else if (p.HeldGpuMilli < spec.GpuMilli)
            {
                Fail($"holds {p.HeldGpuMilli} thousandths for {spec.Gpus} GPUs");
            }
        }

        if (p.Slots.Select(x => (x.Node, x.Gpu)).Distinct().Count() != p.Slots.Count)
        {
            Fail("a GPU appears twice in the placement");
        }

        foreach (var n in p.Nodes)
        {
            var node = Fleet.Nodes[n];
            if (node.PartitionIndex != p.Partition)
            {
                Fail($"node {node.Name} is not in partition {part.Name}");
            }

            if (Engine.GetNodeState(n) != NodeState.Up)
            {
                Fail($"node {node.Name} is {Engine.GetNodeState(n)}");
            }

            foreach (var r in _reservations.Values)
            {
                if (!r.Nodes.Contains(node.Name) || r.End <= now)
                {
                    continue;
                }

                var ownJob = r.Project is not null && r.Project == spec.Project;
                if (!ownJob && s.Time + spec.Walltime > r.Start)
                {
                    Fail($"runs until {s.Time + spec.Walltime:o} on node {node.Name}, reserved by '{r.Name}' ({r.Project ?? "maintenance"}) from {r.Start:o} to {r.End:o}");
                }

                if (ownJob && s.Time < r.Start && s.Time + spec.Walltime > r.Start)
                {
                    Fail($"an owner's job started before the window of '{r.Name}' runs into it");
                }
            }
        }

        // The grant: an active allocation of the project, on this partition, that covers walltime × held GPUs.
        if (Engine.Options.RequireAllocation)
        {
            var a = Tenancy.Allocations.FirstOrDefault(x => x.Id == s.AllocationId);
            if (a is null)
            {
                Fail($"charged to unknown allocation '{s.AllocationId}'");
                return;
            }

            if (a.Project != spec.Project || (a.Partition is not null && !string.Equals(a.Partition, part.Name, StringComparison.OrdinalIgnoreCase)) || now < a.Start || now >= a.End)
            {
                Fail($"charged to allocation {a.Id} of {a.Project} on {a.Partition}, {a.Start:o}..{a.End:o}");
            }

            var (granted, spent, committed) = Engine.GetAllocationUsage(a.Id)!.Value;
            if (spent + committed > granted + 1e-6)
            {
                Fail($"allocation {a.Id} now has {spent} spent + {committed} committed of {granted} GPU-hours");
            }
        }
    }

    /// <summary>Kueue quota from the specs alone: nominal + borrowing limit per project and organisation, and borrowing covered by what others lend.</summary>
    private void CheckQuotaModel()
    {
        if (_quotaRelaxed)
        {
            try
            {
                CheckQuotaModelStrict();
                _quotaRelaxed = false;
            }
            catch (InvariantViolation)
            {
            }

            return;
        }

        CheckQuotaModelStrict();
    }

    private void CheckQuotaModelStrict()
    {
        var usage = new Dictionary<(string Project, int Partition), long>();
        foreach (var id in RunningIds)
        {
            var v = View(id);
            var key = (_specs[id].Project, v.Placement!.Partition);
            usage[key] = usage.GetValueOrDefault(key) + v.Placement.HeldGpuMilli;
        }

        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            var name = Fleet.Partitions[p].Name;
            long rootExcess = 0, rootLend = 0, rootNominal = 0;
            foreach (var org in Tenancy.Organisations)
            {
                var oq = Quota(org.Quotas, name);
                long orgUsage = 0, excess = 0, lend = 0, childNominal = 0;
                foreach (var project in Tenancy.Projects.Where(x => x.Organisation == org.Name))
                {
                    var pq = Quota(project.Quotas, name);
                    var u = usage.GetValueOrDefault((project.Name, p));
                    orgUsage += u;
                    childNominal += pq.Nominal;
                    excess += Math.Max(0, u - pq.Nominal);
                    lend += Math.Min(pq.Lend, Math.Max(0, pq.Nominal - u));
                    if (u > pq.Nominal + pq.Borrow)
                    {
                        throw new InvariantViolation($"project {project.Name} uses {u} thousandths on {name}, above nominal {pq.Nominal} + borrowing {pq.Borrow}");
                    }
                }

                if (orgUsage > oq.Nominal + oq.Borrow)
                {
                    throw new InvariantViolation($"organisation {org.Name} uses {orgUsage} thousandths on {name}, above nominal {oq.Nominal} + borrowing {oq.Borrow}");
                }

                if (oq.Borrow < Unlimited && excess > lend + Math.Max(0, oq.Nominal + oq.Borrow - childNominal))
                {
                    throw new InvariantViolation($"projects of {org.Name} borrow {excess} thousandths on {name}, more than their siblings lend ({lend})");
                }

                rootExcess += Math.Max(0, orgUsage - oq.Nominal);
                rootLend += Math.Min(oq.Lend, Math.Max(0, oq.Nominal - orgUsage));
                rootNominal += oq.Nominal;
            }

            var capacity = (long)Fleet.Partitions[p].TotalGpus * JobSpec.MilliPerGpu;
            if (rootExcess > rootLend + Math.Max(0, capacity - rootNominal))
            {
                throw new InvariantViolation($"organisations borrow {rootExcess} thousandths on {name}, more than others lend ({rootLend}) plus unassigned capacity");
            }
        }
    }

    private const long Unlimited = long.MaxValue / 4;

    private static (long Nominal, long Borrow, long Lend) Quota(IReadOnlyList<QuotaSpec> quotas, string partition)
    {
        var q = quotas.FirstOrDefault(x => string.Equals(x.Partition, partition, StringComparison.OrdinalIgnoreCase));
        if (q is null)
        {
            return (0, Unlimited, 0);
        }

        var nominal = (long)Math.Round(q.NominalGpus * 1000);
        return (nominal, q.BorrowingLimitGpus is { } b ? (long)Math.Round(b * 1000) : Unlimited, q.LendingLimitGpus is { } l ? (long)Math.Round(l * 1000) : nominal);
    }
}
