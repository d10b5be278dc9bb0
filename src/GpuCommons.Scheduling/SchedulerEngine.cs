using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

/// <summary>
/// The scheduling engine: a pure, deterministic, in-memory model of the fleet, the tenants and the queue that decides
/// which jobs start now and exactly on which GPUs. It does no I/O and reads time only from its <see cref="TimeProvider"/>.
/// Not thread-safe: one owner (the server's scheduler loop or the simulator) calls it.
/// </summary>
/// <remarks>
/// Decisions are "assumed": the engine reserves the GPUs as soon as it decides; the caller persists and runs the job, and
/// calls <see cref="StartFailed"/> to roll back when that fails. Running jobs report back through <see cref="Complete"/>.
/// </remarks>
public sealed partial class SchedulerEngine
{
    private const int Milli = JobSpec.MilliPerGpu;

    private readonly TimeProvider _time;
    /// <summary>Nodes, GPUs, pools and running jobs by end (see <see cref="ClusterState"/>).</summary>
    private readonly ClusterState _c;

    /// <summary>Placement and the resource-fit checks (see <see cref="Placer"/>).</summary>
    private readonly Placer _placer;

    /// <summary>Free cores and memory per node.</summary>
    private ResourceLedger Ledger => _placer.Ledger;

    /// <summary>The backfill shadow computation (see <see cref="ShadowPlanner"/>).</summary>
    private readonly ShadowPlanner _shadow;

    /// <summary>The preemption what-ifs (see <see cref="PreemptionPlanner"/>).</summary>
    private readonly PreemptionPlanner _preemption;

    /// <summary>Quota and grants (see <see cref="Admission"/>).</summary>
    private readonly Admission _admission;
    private readonly FairShare _fairShare;
    private readonly Dictionary<string, int> _projectIndex = new(StringComparer.Ordinal);
    private readonly List<string> _projectNames = [];
    private readonly Dictionary<string, int> _orgIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<(int Project, string User), int> _userIndex = [];

    private readonly Dictionary<long, JobRecord> _jobs = [];
    private readonly PendingQueue _queue;
    private readonly Dictionary<string, List<Pool>> _advance = new(StringComparer.Ordinal);

    private int _running;
    private int _preempting;
    private bool _capacityDirty = true;
    private long _lastFairShareTicks = long.MinValue;
    private long _cycles;

    /// <summary>
    /// An engine on <paramref name="fleet"/> with the tenants, quotas and allocations of <paramref name="tenancy"/>, no job
    /// yet, and each node in its initial state. Invalid options throw <see cref="ArgumentException"/>; an invalid tenancy
    /// throws <see cref="SpecException"/> naming the field.
    /// </summary>
    /// <param name="fleet">The nodes and GPUs the engine places jobs on.</param>
    /// <param name="tenancy">Organisations, projects and allocations.</param>
    /// <param name="options">Policy and weights; <see langword="null"/> for the defaults.</param>
    /// <param name="time">Where the engine reads the time; <see langword="null"/> for the system clock.</param>
    public SchedulerEngine(Fleet fleet, TenancySpec tenancy, SchedulerOptions? options = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        ArgumentNullException.ThrowIfNull(tenancy);
        Options = options ?? new SchedulerOptions();
        Options.Validate();
        tenancy.Validate(fleet);
        Fleet = fleet;
        _time = time ?? TimeProvider.System;
        _queue = new PendingQueue(Options);

        var parts = fleet.Partitions.Count;
        _holdCount = new int[parts];
        _partitionOrder = Enumerable.Range(0, parts).OrderBy(p => fleet.Partitions[p].RatePerGpuHour).ThenBy(p => p).ToArray();
        var capacity = new long[parts];
        for (var p = 0; p < parts; p++)
        {
            capacity[p] = (long)fleet.Partitions[p].TotalGpus * Milli;
        }

        _c = new ClusterState(fleet);
        var ledger = new ResourceLedger(fleet);
        _placer = new Placer(fleet, Options, _c, ledger, _partitionOrder, (job, p, held) => Admit(job, p, held, _walkNow).Reason is null);
        _shadow = new ShadowPlanner(fleet, _c, _jobs, ledger);

        _admission = new Admission(new QuotaTracker(capacity), Options);
        _fairShare = new FairShare(tenancy.TypeShares);
        _preemption = new PreemptionPlanner(fleet, Options, _c, _jobs, _admission, ledger);
        foreach (var o in tenancy.Organisations)
        {
            AddOrganisation(o);
        }

        foreach (var pr in tenancy.Projects)
        {
            AddProject(pr);
        }

        foreach (var a in tenancy.Allocations)
        {
            UpsertAllocation(a);
        }
    }

    /// <summary>The fleet the engine was built on; node and partition indices refer to it.</summary>
    public Fleet Fleet { get; }
    /// <summary>The policy and weights the engine runs with.</summary>
    public SchedulerOptions Options { get; }
    /// <summary>Jobs waiting in the queue.</summary>
    public int PendingCount => _queue.Count;
    /// <summary>Jobs holding GPUs now (those being preempted included).</summary>
    public int RunningCount => _running;
    /// <summary>Full scheduling cycles run so far.</summary>
    public long Cycles => _cycles;

    // ---- Tenancy ---------------------------------------------------------------------------------------------

    /// <summary>Adds an organisation with its quotas and fair-share shares; a name already known is a <see cref="SpecException"/>.</summary>
    public void AddOrganisation(OrganisationSpec org)
    {
        ArgumentNullException.ThrowIfNull(org);
        if (_orgIndex.ContainsKey(org.Name))
        {
            throw new SpecException("organisation.name", $"duplicate organisation '{org.Name}'");
        }

        var node = new QuotaNode(Fleet.Partitions.Count, org.Quotas, PartitionOrThrow);
        _orgIndex[org.Name] = _admission.Quota.AddOrganisation(node);
        _fairShare.AddOrganisation(org.Type, org.Shares);
    }

    /// <summary>
    /// Adds a project under a known organisation, with its quotas and fair-share shares; a name already known or an unknown
    /// organisation is a <see cref="SpecException"/>.
    /// </summary>
    public void AddProject(ProjectSpec project)
    {
        ArgumentNullException.ThrowIfNull(project);
        if (_projectIndex.ContainsKey(project.Name))
        {
            throw new SpecException("project.name", $"duplicate project '{project.Name}'");
        }

        if (!_orgIndex.TryGetValue(project.Organisation, out var org))
        {
            throw new SpecException("project.organisation", $"unknown organisation '{project.Organisation}'");
        }

        var node = new QuotaNode(Fleet.Partitions.Count, project.Quotas, PartitionOrThrow);
        var idx = _admission.Quota.AddProject(node, org);
        _projectIndex[project.Name] = idx;
        _projectNames.Add(project.Name);
        _fairShare.AddProject(org, project.Shares);
        _admission.Grants.EnsureProject(idx);
    }

    /// <summary>
    /// Replaces an organisation's quotas (a partition not listed: nothing guaranteed, borrowing unlimited). Jobs that
    /// run keep running where they now exceed it (as in Kueue); nothing more is admitted past it, and what it now
    /// guarantees may be reclaimed from borrowers.
    /// </summary>
    public void SetOrganisationQuotas(string organisation, IReadOnlyList<QuotaSpec> quotas)
    {
        ArgumentNullException.ThrowIfNull(quotas);
        if (!_orgIndex.TryGetValue(organisation, out var org))
        {
            throw new SpecException("organisation", $"unknown organisation '{organisation}'");
        }

        _admission.Quota.SetOrganisationLimits(org, Limits(quotas));
        _capacityDirty = true;
    }

    /// <summary>Replaces a project's quotas, with the same rules as <see cref="SetOrganisationQuotas"/>.</summary>
    public void SetProjectQuotas(string project, IReadOnlyList<QuotaSpec> quotas)
    {
        ArgumentNullException.ThrowIfNull(quotas);
        if (!_projectIndex.TryGetValue(project, out var idx))
        {
            throw new SpecException("project", $"unknown project '{project}'");
        }

        _admission.Quota.SetProjectLimits(idx, Limits(quotas));
        _capacityDirty = true;
    }

    private QuotaNode Limits(IReadOnlyList<QuotaSpec> quotas)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < quotas.Count; i++)
        {
            quotas[i].Validate($"quotas[{i}]");
            if (!seen.Add(quotas[i].Partition))
            {
                throw new SpecException($"quotas[{i}].partition", $"partition '{quotas[i].Partition}' is listed twice");
            }
        }

        return new QuotaNode(Fleet.Partitions.Count, quotas, PartitionOrThrow);
    }

    /// <summary>Whether the engine knows a project of that name.</summary>
    public bool HasProject(string name) => _projectIndex.ContainsKey(name);

    /// <summary>Adds an allocation, or replaces one with the same id (a new end, more GPU-hours, spent so far).</summary>
    public void UpsertAllocation(AllocationSpec allocation)
    {
        ArgumentNullException.ThrowIfNull(allocation);
        if (!_projectIndex.TryGetValue(allocation.Project, out var project))
        {
            throw new SpecException("allocation.project", $"unknown project '{allocation.Project}'");
        }

        var partition = allocation.Partition is null ? -1 : PartitionOrThrow(allocation.Partition);
        _admission.Grants.Add(allocation, project, partition);
        _capacityDirty = true;
    }

    /// <summary>GPU-hours of an allocation: (granted, spent, committed by running jobs).</summary>
    public (double Granted, double Spent, double Committed)? GetAllocationUsage(string id)
    {
        var i = _admission.Grants.Find(id);
        if (i < 0)
        {
            return null;
        }

        var g = _admission.Grants[i];
        return (g.Spec.GpuHours, g.Spent, g.Committed);
    }

    /// <summary>Adds past usage (for fair share) to a project's user, e.g. history restored at start.</summary>
    public void AddUsageHistory(string project, string user, double gpuSeconds)
    {
        if (_projectIndex.TryGetValue(project, out var p))
        {
            _fairShare.AddUsage(UserIndex(p, user), gpuSeconds * Milli);
        }
    }

    private int PartitionOrThrow(string name) =>
        Fleet.FindPartition(name)?.Index ?? throw new SpecException("partition", $"unknown partition '{name}'");

    private int UserIndex(int project, string user)
    {
        if (!_userIndex.TryGetValue((project, user), out var u))
        {
            u = _fairShare.AddUser(project);
            _userIndex[(project, user)] = u;
        }

        return u;
    }

    // ---- Submission ------------------------------------------------------------------------------------------

    /// <summary>Checks a job against the fleet and tenancy without queueing it.</summary>
    public SubmitResult Validate(JobSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.Check() is { } error)
        {
            return new SubmitResult(false, error);
        }

        if (!_projectIndex.ContainsKey(spec.Project))
        {
            return SubmitResult.Reject("project", $"unknown project '{spec.Project}'");
        }

        if (Options.MaxWalltime is { } max && spec.Walltime > max)
        {
            return SubmitResult.Reject("walltime", $"{spec.Walltime} is beyond the longest walltime allowed ({max})");
        }

        var filter = -1;
        if (spec.Partition is not null)
        {
            var part = Fleet.FindPartition(spec.Partition);
            if (part is null)
            {
                return SubmitResult.Reject("partition", $"unknown partition '{spec.Partition}' (known: {string.Join(", ", Fleet.Partitions.Select(p => p.Name))})");
            }

            filter = part.Index;
        }

        string? why = null;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if (filter >= 0 && p != filter)
            {
                continue;
            }

            if (Shape.TryResolve(spec, Fleet.Partitions[p], _c.NodesAtLeast[p], out _, out var never))
            {
                return CheckResources(spec) ?? SubmitResult.Ok;
            }

            why ??= never;
        }

        return SubmitResult.Reject(why!.StartsWith("gpusPerNode", StringComparison.Ordinal) ? "gpusPerNode" : why.StartsWith("nodes", StringComparison.Ordinal) ? "nodes" : "gpus", why);
    }

    /// <summary>Queues a job, or rejects it with the field and the reason when it is invalid or can never run.</summary>
    public SubmitResult Submit(JobSpec spec)
    {
        var result = Validate(spec);
        if (!result.Accepted)
        {
            return result;
        }

        if (_jobs.ContainsKey(spec.Id))
        {
            return SubmitResult.Reject("id", $"job {spec.Id} already exists");
        }

        var project = _projectIndex[spec.Project];
        var filter = spec.Partition is null ? -1 : Fleet.FindPartition(spec.Partition)!.Index;
        var job = new JobRecord(spec, RequestOf(spec), project, UserIndex(project, spec.User), filter);
        ResolveShapes(job);
        _jobs.Add(spec.Id, job);
        ObserveArrival(job);
        AddPending(job);
        return result;
    }

    /// <summary>
    /// Resolved shapes by request (GPUs, nodes, GPUs per node, partition filter): a shape depends on nothing else, and
    /// jobs share the one read-only array (a queue of a million jobs asks for a few hundred distinct requests).
    /// </summary>
    private readonly Dictionary<(double Gpus, int? Nodes, int? GpusPerNode, int Filter), (Shape[] Shapes, ulong Mask)> _shapeCache = [];

    /// <summary>One spec per distinct request, shared by the jobs that ask for it (see <see cref="JobRecord.Request"/>).</summary>
    private readonly Dictionary<(double Gpus, int? Nodes, int? GpusPerNode, int? CpusPerGpu, int? CpusPerNode, long? MemoryPerGpu, long? MemoryPerNode, string? Models, string? Features), JobSpec> _requests = [];

    /// <summary>The shared request a job holds; for tests.</summary>
    internal JobSpec RequestForTests(long id) => _jobs[id].Request;

    /// <summary>When a running job must end by; for tests.</summary>
    internal DateTimeOffset EndByForTests(long id) => new(_jobs[id].EndByTicks, TimeSpan.Zero);

    /// <summary>A list of names as one string that no other list gives (each name prefixed by its length).</summary>
    private static string? Encode(IReadOnlyList<string>? names) =>
        names is null ? null : string.Concat(names.Select(n => n.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + ":" + n));

    /// <summary>The shared spec of <paramref name="spec"/>'s request: its own fields (id, names, times, class) blanked.</summary>
    private JobSpec RequestOf(JobSpec spec)
    {
        var key = (spec.Gpus, spec.Nodes, spec.GpusPerNode, spec.CpusPerGpu, spec.CpusPerNode, spec.MemoryMiBPerGpu, spec.MemoryMiBPerNode,
            Encode(spec.GpuModels), Encode(spec.Features));
        if (!_requests.TryGetValue(key, out var request))
        {
            request = spec with
            {
                Id = 0,
                Project = "",
                User = "",
                Name = "",
                Partition = null,
                Walltime = TimeSpan.Zero,
                Priority = PriorityClass.Normal,
                Checkpointable = false,
                Requeueable = true,
                SubmitTime = default,
                DurationHint = null,
            };
            _requests[key] = request;
        }

        return request;
    }

    /// <summary>Pending jobs by what their admission and fit depend on (see <see cref="DecisionClasses"/>).</summary>
    private readonly DecisionClasses _classes = new();

    private void ResolveShapes(JobRecord job)
    {
        var key = (job.Request.Gpus, job.Request.Nodes, job.Request.GpusPerNode, job.PartitionFilter);
        if (!_shapeCache.TryGetValue(key, out var resolved))
        {
            var shapes = new Shape[Fleet.Partitions.Count];
            var mask = 0UL;
            for (var p = 0; p < Fleet.Partitions.Count; p++)
            {
                if ((job.PartitionFilter < 0 || job.PartitionFilter == p) && Shape.TryResolve(job.Request, Fleet.Partitions[p], _c.NodesAtLeast[p], out var shape, out _))
                {
                    shapes[p] = shape;
                    mask |= 1UL << p;
                }
            }

            resolved = (shapes, mask);
            _shapeCache[key] = resolved;
        }

        job.Shapes = resolved.Shapes;
        job.ShapeMask = resolved.Mask;
        RestrictShapesToEligible(job); // per job (its cores, memory, models, features): narrows its own mask, never the shared shapes
        var known = _classes.Count;
        job.DecisionClass = _classes.Intern(job.Project, job.Shapes, job.ShapeMask);
        if (_classes.Count > known)
        {
            var org = _admission.Quota.OrgOf(job.Project);
            while (_orgClasses.Count <= org)
            {
                _orgClasses.Add([]);
            }

            _orgClasses[org].Add(job.DecisionClass);
        }
    }

    /// <summary>Per organisation, its projects' decision classes.</summary>
    private readonly List<List<int>> _orgClasses = [];

    private void AddPending(JobRecord job)
    {
        job.State = JobState.Pending;
        Decide(job, PendingReason.New, -1);
        job.Priority = double.PositiveInfinity;
        NoteQueued(job);
        _queue.Add(job, _time.GetUtcNow().UtcTicks);
        PlaceQueued(job);
        _classes.CountPending(job.DecisionClass, +1);
    }

    private void RemovePending(JobRecord job)
    {
        job.Priority = PriorityOf(job); // the last sort's key, kept: it is worked out only while the job is queued
        _queue.Remove(job);
        _classes.CountPending(job.DecisionClass, -1);
        _reasons.Forget(job);
        if (job.HeldPool >= 0)
        {
            DissolveHold(_c.Pools[job.HeldPool]);
        }
    }

    /// <summary>The engine's view of a pending or running job; null for an unknown or ended job.</summary>
    public JobView? GetJob(long id)
    {
        if (!_jobs.TryGetValue(id, out var j))
        {
            return null;
        }

        return new JobView(
            j.Id,
            j.State,
            j.State == JobState.Pending ? ReasonOf(j) : PendingReason.New,
            EstimateOf(j) is >= 0 and var estimate ? new DateTimeOffset(estimate, TimeSpan.Zero) : null,
            j.Placement,
            j.State == JobState.Running ? new DateTimeOffset(j.StartTicks, TimeSpan.Zero) : null,
            PriorityOf(j) is var priority && double.IsInfinity(priority) ? 0 : priority,
            j.Preempting,
            j.Attempts);
    }

    /// <summary>Ids of jobs the engine holds (pending and running).</summary>
    public IEnumerable<long> JobIds => _jobs.Keys;

    /// <summary>Current capacity and queue figures.</summary>
    public EngineStats GetStats()
    {
        int up = 0, free = 0, stranded = 0;
        for (var i = 0; i < Fleet.Nodes.Count; i++)
        {
            if (_c.NodeState[i] != (int)NodeState.Up)
            {
                continue;
            }

            up += Fleet.Nodes[i].Gpus;
            free += _c.Free[i];
            if (_c.Free[i] > 0 && (_c.Free[i] < Fleet.Nodes[i].Gpus || _c.Shared[i] > 0))
            {
                stranded += _c.Free[i];
            }
        }

        var byPartition = new double[Fleet.Partitions.Count];
        for (var p = 0; p < byPartition.Length; p++)
        {
            byPartition[p] = _c.AllocatedByPartition[p] / (double)Milli;
        }

        return new EngineStats(Fleet.TotalGpus, up, _c.AllocatedMilli / (double)Milli, free, stranded, _queue.Count, _running, _preempting, byPartition);
    }

    /// <summary>The next instant at which the engine's decisions change without any event: a reservation window opening or closing, a claim expiring.</summary>
    public DateTimeOffset? NextWakeup()
    {
        var now = _time.GetUtcNow().UtcTicks;
        var next = long.MaxValue;
        foreach (var list in _advance.Values)
        {
            foreach (var p in list)
            {
                if (p.WindowStart > now)
                {
                    next = Math.Min(next, p.WindowStart);
                }
                else if (p.WindowEnd > now)
                {
                    next = Math.Min(next, p.WindowEnd);
                }
            }
        }

        foreach (var p in _c.Pools)
        {
            if (p.Active && p.Kind == PoolKind.Hold && p.StickyUntil > now)
            {
                next = Math.Min(next, p.StickyUntil);
            }
        }

        next = Math.Min(next, _queue.NextSubmitAfter(now));
        return next == long.MaxValue ? null : new DateTimeOffset(next, TimeSpan.Zero);
    }
}
