using System.Diagnostics;
using System.Globalization;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling;
using GpuCommons.Simulation.Metrics;
using GpuCommons.Simulation.Traces;
using GpuCommons.Simulation.Workloads;

namespace GpuCommons.Simulation;

/// <summary>
/// Discrete-event replay of a workload against a fleet with the production <see cref="SchedulerEngine"/> in virtual
/// time. Events: arrivals, completions (at start + min(remaining run time, walltime)), preemption kills (after the
/// grace the engine gives), node failures and repairs, fleet timeline changes and the engine's own wake-ups. After the
/// events of one instant the engine runs one cycle: a full one every <see cref="SimulationOptions.CycleIntervalSeconds"/>,
/// an incremental one otherwise. Nothing here decides what runs: every start and every preemption is the engine's.
/// </summary>
/// <remarks>
/// Memory holds only the jobs that are pending or running: finished jobs are written to the schedule CSV and folded
/// into fixed-size aggregates. Deterministic: the same inputs and seed give the same bytes.
/// </remarks>
public sealed class Simulator
{
    /// <summary>Time 0 of every simulation (virtual; nothing reads the wall clock).</summary>
    public static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public const string ScheduleHeader = "job_id,submit_s,start_s,end_s,state,partition,gpus,placement";

    private static readonly string[] SizeBands = ["share", "1", "2-8", "9-64", "65-256", "257+"];

    private readonly Fleet _fleet;
    private readonly Workload _workload;
    private readonly SimulationOptions _options;
    private readonly VirtualTimeProvider _clock = new(Epoch);
    private readonly SchedulerEngine _engine;
    private readonly PriorityQueue<Event, (long Ticks, long Seq)> _events = new();
    private readonly Dictionary<long, Track> _tracks = [];
    private readonly Dictionary<string, int> _classIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (int Project, int Class)> _projects = new(StringComparer.Ordinal);
    private readonly int[] _activeByProject;
    private readonly List<string> _classes = [];
    private readonly MetricGroup _all = new("all");
    private readonly List<MetricGroup> _byClass = [];
    private readonly MetricGroup[] _bySize;
    private readonly LowerBounds _bounds;
    private readonly List<MonthStats> _months = [];
    private readonly List<TimeSample> _series = [];
    private readonly bool[] _present;
    private readonly bool[] _broken;
    private readonly Random _failures;
    private readonly System.Text.StringBuilder _row = new();
    private double[] _allocByClass = [];
    private double[] _pendingByClass = [];

    private long _seq;
    /// <summary>Queued events that can change what runs (all but node failures, which recur forever).</summary>
    private long _essential;
    private long _now;
    private long _lastIntegrated;
    private long _allocatedMilli;
    private int _activeTenants;
    private long _arrived;
    private long _ended;
    private long _eventsHandled;
    private long _cycles;
    private long _fullCycles;
    private long _consideredFull;
    private long _consideredIncremental;
    private TimeSpan _fullCycleTime;
    private TimeSpan _incrementalCycleTime;
    private long _nodeFailures;
    private long _placements;
    private long _lastWakeup = long.MinValue;
    private double _allocatedGpuSeconds;
    private double _usefulGpuSeconds;
    private double _lastEnd;
    private double _sampleInterval;
    private double _nextSample;
    private int _seriesStride = 1;
    private int _seriesSkip;
    private double _strandedSum;
    private long _strandedSamples;

    private Simulator(Fleet fleet, Workload workload, SimulationOptions options)
    {
        _fleet = fleet;
        _workload = workload;
        _options = options;
        _engine = new SchedulerEngine(fleet, EngineTenancy(fleet, workload.Tenancy), EngineOptions(options.Scheduler, workload), _clock);
        _bounds = new LowerBounds(fleet.TotalGpus);
        _bySize = [.. SizeBands.Select(b => new MetricGroup(b))];
        _present = new bool[fleet.Nodes.Count];
        _broken = new bool[fleet.Nodes.Count];
        for (var i = 0; i < fleet.Nodes.Count; i++)
        {
            _present[i] = fleet.Nodes[i].InitialState != NodeState.Down;
        }

        _failures = new Random(options.Seed);
        var p = 0;
        foreach (var project in workload.Tenancy.Projects)
        {
            var cls = workload.ClassOfProject.TryGetValue(project.Name, out var c) ? c : TenantMapping.TraceClass;
            _projects[project.Name] = (p++, ClassIndex(cls));
        }

        _activeByProject = new int[p];
    }

    /// <summary>
    /// The engine options for a run: the policy's, with the preemption search off when no running job could ever be a
    /// victim (no preemptible-class job, no quota anywhere, and no least-attained-service queues). The engine would find
    /// no victim anyway, but it looks for one for each of up to 16 blocked jobs in every full cycle.
    /// </summary>
    internal static SchedulerOptions EngineOptions(SchedulerOptions o, Workload workload)
    {
        var quotas = workload.Tenancy.Organisations.Any(x => x.Quotas.Count > 0) || workload.Tenancy.Projects.Any(x => x.Quotas.Count > 0);
        var preemption = o.Preemption && (workload.MayHavePreemptibleJobs || quotas || o.Ordering == OrderingPolicy.LeastAttainedService);
        return new SchedulerOptions
        {
            Ordering = o.Ordering,
            Backfill = o.Backfill,
            ConservativeDepth = o.ConservativeDepth,
            Preemption = preemption,
            MaxPreemptorsPerCycle = o.MaxPreemptorsPerCycle,
            LasThresholdsGpuHours = o.LasThresholdsGpuHours,
            PreemptionGrace = o.PreemptionGrace,
            FairShareHalfLife = o.FairShareHalfLife,
            MaxAge = o.MaxAge,
            PriorityPeriod = o.PriorityPeriod,
            WeightFairShare = o.WeightFairShare,
            WeightAge = o.WeightAge,
            WeightPriorityClass = o.WeightPriorityClass,
            WeightSize = o.WeightSize,
            RequireAllocation = o.RequireAllocation,
            MaxWalltime = o.MaxWalltime,
        };
    }

    /// <summary>
    /// The tenancy the engine gets. When no organisation or project has a quota ("no quota" in the workload), each gets a
    /// nominal quota of <see cref="UnboundedQuotaGpus"/> on every partition, which can never bind. Without it the engine
    /// counts every tenant's usage as borrowed from the cohort, so a job that does not fit the free GPUs is refused as
    /// <see cref="Scheduling.PendingReason.CohortQuota"/> (inadmissible) instead of waiting for resources: it gets no
    /// backfill reservation and does not block FIFO, and big jobs starve. (An engine problem; see docs/simulation.md.)
    /// </summary>
    public const double UnboundedQuotaGpus = 1_000_000;

    internal static TenancySpec EngineTenancy(Fleet fleet, TenancySpec tenancy)
    {
        if (tenancy.Organisations.Any(o => o.Quotas.Count > 0) || tenancy.Projects.Any(p => p.Quotas.Count > 0))
        {
            return tenancy;
        }

        List<QuotaSpec> whole = [.. fleet.Partitions.Select(p => new QuotaSpec(p.Name, UnboundedQuotaGpus))];
        return new TenancySpec
        {
            Organisations = [.. tenancy.Organisations.Select(o => o with { Quotas = whole })],
            Projects = [.. tenancy.Projects.Select(p => p with { Quotas = whole })],
            Allocations = tenancy.Allocations,
            TypeShares = tenancy.TypeShares,
        };
    }

    /// <summary>Runs a workload to its end (or the horizon) and returns the figures.</summary>
    public static SimulationResult Run(Fleet fleet, Workload workload, SimulationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        ArgumentNullException.ThrowIfNull(workload);
        var sim = new Simulator(fleet, workload, options ?? new SimulationOptions());
        var wall = Stopwatch.StartNew();
        var result = sim.Loop();
        result.WallSeconds = wall.Elapsed.TotalSeconds;
        using var self = Process.GetCurrentProcess();
        result.PeakMemoryMb = self.PeakWorkingSet64 / 1048576.0;
        return result;
    }

    private enum EventKind
    {
        Completion,
        Kill,
        NodeFail,
        NodeRepair,
        Timeline,
        Wakeup,
    }

    private readonly record struct Event(EventKind Kind, long JobId, int Segment, int Index);

    private sealed class Track(TraceJob job, long submitTicks, long remainingTicks, long walltimeTicks, int project, int cls, int size, int activeAtSubmit)
    {
        public TraceJob Job { get; } = job;
        public long SubmitTicks { get; } = submitTicks;
        public long RemainingTicks { get; set; } = remainingTicks;
        public long WalltimeTicks { get; } = walltimeTicks;
        public int Project { get; } = project;
        public int Class { get; } = cls;
        public int Size { get; } = size;
        public int ActiveAtSubmit { get; } = activeAtSubmit;
        public int Segment { get; set; }
        public bool Running { get; set; }
        public bool Started { get; set; }
        public long StartTicks { get; set; }
        public Placement? Placement { get; set; }
        public double RunSeconds { get; set; }
    }

    private int ClassIndex(string name)
    {
        if (!_classIndex.TryGetValue(name, out var i))
        {
            i = _classes.Count;
            _classIndex[name] = i;
            _classes.Add(name);
            _byClass.Add(new MetricGroup(name));
            Array.Resize(ref _allocByClass, _classes.Count);
            Array.Resize(ref _pendingByClass, _classes.Count);
        }

        return i;
    }

    private static long Ticks(double seconds) => Epoch.UtcTicks + (long)Math.Round(seconds * TimeSpan.TicksPerSecond);

    private static double Seconds(long ticks) => (ticks - Epoch.UtcTicks) / (double)TimeSpan.TicksPerSecond;

    private void Push(long ticks, Event e)
    {
        if (e.Kind != EventKind.NodeFail)
        {
            _essential++;
        }

        _events.Enqueue(e, (ticks, _seq++));
    }

    private SimulationResult Loop()
    {
        var options = _options;
        _options.ScheduleOut?.Write(ScheduleHeader + "\n");
        _options.TimeSeriesOut?.Write("time_s,pending,running,allocated_gpus,up_gpus,stranded_gpus,preempting" + string.Concat(_classes.Select(c => ",allocated_" + c)) + "\n");
        _sampleInterval = options.SampleIntervalSeconds > 0 ? options.SampleIntervalSeconds
            : Math.Max(60, Math.Ceiling((options.HorizonSeconds ?? _workload.SpanSeconds ?? 86400 * 30.0) / 2000 / 60) * 60);
        _nextSample = 0;

        for (var i = 0; i < options.Timeline.Count; i++)
        {
            Push(Ticks(options.Timeline[i].AtSeconds), new Event(EventKind.Timeline, 0, 0, i));
        }

        if (options.NodeMtbfHours > 0)
        {
            for (var n = 0; n < _fleet.Nodes.Count; n++)
            {
                Push(Epoch.UtcTicks + Exponential(options.NodeMtbfHours), new Event(EventKind.NodeFail, 0, 0, n));
            }
        }

        _now = Epoch.UtcTicks;
        _lastIntegrated = _now;
        var horizon = options.HorizonSeconds is { } h ? Ticks(h) : long.MaxValue;
        var interval = (long)(options.CycleIntervalSeconds * TimeSpan.TicksPerSecond);
        var lastFull = long.MinValue;
        var changedSinceFull = false;
        var fullTimer = long.MaxValue;
        using var arrivals = _workload.Jobs.GetEnumerator();
        var hasArrival = arrivals.MoveNext();
        long progressAt = 0;
        while (true)
        {
            var tA = hasArrival ? Ticks(arrivals.Current.SubmitSeconds) : long.MaxValue;
            var tE = _events.TryPeek(out _, out var pri) ? pri.Ticks : long.MaxValue;
            var t = Math.Min(Math.Min(tA, tE), fullTimer);
            if (t == long.MaxValue || t > horizon)
            {
                break;
            }

            // Without a horizon the run ends when every job has ended, or when the jobs left can never start: nothing
            // runs, nothing more arrives, and only node failures are left to happen.
            if (horizon == long.MaxValue && !hasArrival && _essential == 0 && fullTimer == long.MaxValue && _engine.RunningCount == 0)
            {
                break;
            }

            if (t < _now)
            {
                throw new SpecException("trace", $"job {arrivals.Current.Label} is submitted at {arrivals.Current.SubmitSeconds} s, before the previous job: the workload must be sorted by submit time");
            }

            Integrate(t);
            _clock.SetUtcNow(new DateTimeOffset(t, TimeSpan.Zero));
            _now = t;
            var something = false;
            while (hasArrival && Ticks(arrivals.Current.SubmitSeconds) == t)
            {
                Arrive(arrivals.Current);
                hasArrival = arrivals.MoveNext();
                something = true;
            }

            while (_events.TryPeek(out _, out pri) && pri.Ticks == t)
            {
                var e = _events.Dequeue();
                if (e.Kind != EventKind.NodeFail)
                {
                    _essential--;
                }

                _eventsHandled++;
                something |= Handle(e);
            }

            if (fullTimer == t)
            {
                fullTimer = long.MaxValue;
            }

            var full = interval <= 0 || lastFull == long.MinValue || t - lastFull >= interval;
            if (!something && !full)
            {
                continue;
            }

            changedSinceFull |= something;
            var result = _engine.Schedule(full);
            _cycles++;
            var spent = result.Timings.TimeEvents + result.Timings.Order + result.Timings.Walk;
            if (full)
            {
                _fullCycles++;
                _consideredFull += result.Considered;
                _fullCycleTime += spent;
                lastFull = t;
                changedSinceFull = false;
            }
            else
            {
                _consideredIncremental += result.Considered;
                _incrementalCycleTime += spent;
            }

            Apply(result);
            if (result.Started.Count > 0 || result.Preempted.Count > 0)
            {
                changedSinceFull = true;
            }

            // The next full cycle, when the queue has work and something changed since the last one.
            if (interval > 0 && changedSinceFull && _engine.PendingCount > 0)
            {
                fullTimer = Math.Max(lastFull + interval, t + 1);
            }

            if (_engine.NextWakeup() is { } wake && wake.UtcTicks > t && wake.UtcTicks != _lastWakeup)
            {
                _lastWakeup = wake.UtcTicks;
                Push(wake.UtcTicks, new Event(EventKind.Wakeup, 0, 0, 0));
            }

            if (options.Progress is not null && ++progressAt % 4096 == 0)
            {
                options.Progress(new SimulationProgress(Seconds(t), _arrived, _ended, _workload.Count, options.HorizonSeconds));
            }
        }

        // The run's window ends at the horizon, or at the last job's end (node failures may have moved the clock on).
        var stop = horizon != long.MaxValue ? horizon : (_tracks.Count == 0 && _lastEnd > 0 ? Ticks(_lastEnd) : _now);
        Integrate(Math.Max(stop, _now));
        Sample(Seconds(stop));
        options.Progress?.Invoke(new SimulationProgress(Seconds(_now), _arrived, _ended, _workload.Count, options.HorizonSeconds));
        return Finish(stop);
    }

    private long Exponential(double meanHours) =>
        (long)(-Math.Log(1 - _failures.NextDouble()) * meanHours * TimeSpan.TicksPerHour);

    private void Arrive(TraceJob job)
    {
        _arrived++;
        var (project, cls) = _projects.TryGetValue(job.Tenant, out var pc) ? pc : (-1, ClassIndex(TenantMapping.TraceClass));
        var size = SizeBand(job.Gpus);
        var group = _byClass[cls];
        _all.Submitted++;
        group.Submitted++;
        _bySize[size].Submitted++;
        var wallSeconds = job.WalltimeSeconds ?? Math.Max(1, Math.Ceiling(job.DurationSeconds * _options.WalltimeFactor));
        var spec = new JobSpec
        {
            Id = job.Id,
            Project = job.Tenant,
            User = job.User,
            Partition = job.Partition,
            Gpus = job.Gpus,
            Nodes = job.Nodes,
            Walltime = TimeSpan.FromTicks((long)Math.Round(wallSeconds * TimeSpan.TicksPerSecond)),
            Priority = job.Priority,
            Checkpointable = job.Checkpointable,
            SubmitTime = _clock.GetUtcNow(),
            DurationHint = TimeSpan.FromSeconds(job.DurationSeconds),
            CpusPerNode = job.Cpus,
            MemoryMiBPerNode = job.MemoryMiB,
            GpuModels = job.GpuModels,
        };
        var submitted = project < 0 ? SubmitResult.Reject("project", $"unknown project '{job.Tenant}'") : _engine.Submit(spec);
        if (!submitted.Accepted)
        {
            _all.Rejected++;
            group.Rejected++;
            _bySize[size].Rejected++;
            _ended++;
            WriteRow(job, null, null, "rejected", null);
            return;
        }

        if (_activeByProject[project]++ == 0)
        {
            _activeTenants++;
        }

        var track = new Track(job, _now, Ticks(job.DurationSeconds) - Epoch.UtcTicks, spec.Walltime.Ticks, project, cls, size, _activeTenants);
        _tracks.Add(job.Id, track);
        _pendingByClass[cls] += job.Gpus;
        var month = Month(_now);
        month.DemandGpuHours[cls] += job.WorkGpuSeconds / 3600;
        _bounds.Add(job.SubmitSeconds, Math.Min(job.DurationSeconds, wallSeconds), job.Gpus);
    }

    private bool Handle(Event e)
    {
        switch (e.Kind)
        {
            case EventKind.Completion:
            case EventKind.Kill:
            {
                if (!_tracks.TryGetValue(e.JobId, out var track) || !track.Running || track.Segment != e.Segment)
                {
                    return false;
                }

                var outcome = e.Kind == EventKind.Kill ? JobOutcome.Preempted
                    : track.RemainingTicks <= track.WalltimeTicks ? JobOutcome.Finished : JobOutcome.Walltime;
                var end = _engine.Complete(e.JobId, outcome, _clock.GetUtcNow());
                Ended(track, end);
                return true;
            }

            case EventKind.NodeFail:
            {
                var n = e.Index;
                if (!_present[n] || _broken[n])
                {
                    // Not in service: try again after a repair time.
                    Push(_now + Exponential(_options.RepairHours) + Exponential(_options.NodeMtbfHours), new Event(EventKind.NodeFail, 0, 0, n));
                    return false;
                }

                _broken[n] = true;
                _nodeFailures++;
                foreach (var end in _engine.SetNodeState(_fleet.Nodes[n].Name, NodeState.Down))
                {
                    if (_tracks.TryGetValue(end.JobId, out var track))
                    {
                        Ended(track, end);
                    }
                }

                Push(_now + Math.Max(1, Exponential(_options.RepairHours)), new Event(EventKind.NodeRepair, 0, 0, n));
                return true;
            }

            case EventKind.NodeRepair:
            {
                var n = e.Index;
                _broken[n] = false;
                if (_present[n])
                {
                    _engine.SetNodeState(_fleet.Nodes[n].Name, NodeState.Up);
                }

                Push(_now + Math.Max(1, Exponential(_options.NodeMtbfHours)), new Event(EventKind.NodeFail, 0, 0, n));
                return true;
            }

            case EventKind.Timeline:
            {
                var change = _options.Timeline[e.Index];
                foreach (var name in change.Nodes)
                {
                    var node = _fleet.FindNode(name) ?? throw new SpecException("timeline.nodes", $"unknown node '{name}'");
                    _present[node.Index] = change.State != NodeState.Down;
                    var state = _broken[node.Index] && change.State == NodeState.Up ? NodeState.Down : change.State;
                    foreach (var end in _engine.SetNodeState(name, state))
                    {
                        if (_tracks.TryGetValue(end.JobId, out var track))
                        {
                            Ended(track, end);
                        }
                    }
                }

                return true;
            }

            default:
                return true;
        }
    }

    private void Apply(ScheduleResult result)
    {
        _placements += result.Started.Count;
        foreach (var start in result.Started)
        {
            var track = _tracks[start.JobId];
            track.Running = true;
            track.Segment++;
            track.StartTicks = start.Time.UtcTicks;
            track.Placement = start.Placement;
            var held = start.Placement.HeldGpuMilli;
            _allocatedMilli += held;
            _allocByClass[track.Class] += held / 1000.0;
            _pendingByClass[track.Class] -= track.Job.Gpus;
            if (!track.Started)
            {
                track.Started = true;
                Month(track.SubmitTicks).Wait[track.Class].Add(Seconds(track.StartTicks) - Seconds(track.SubmitTicks));
            }

            var run = Math.Min(track.RemainingTicks, track.WalltimeTicks);
            Push(track.StartTicks + run, new Event(EventKind.Completion, start.JobId, track.Segment, 0));
        }

        foreach (var p in result.Preempted)
        {
            if (_tracks.TryGetValue(p.JobId, out var track) && track.Running)
            {
                Push(p.Time.UtcTicks + p.Grace.Ticks, new Event(EventKind.Kill, p.JobId, track.Segment, 0));
            }
        }
    }

    /// <summary>A run segment ended: write its row, account for it, and forget the job when it will not run again.</summary>
    private void Ended(Track track, JobEnd end)
    {
        var start = end.Start!.Value.UtcTicks;
        var stop = end.End.UtcTicks;
        var runSeconds = (stop - start) / (double)TimeSpan.TicksPerSecond;
        var held = end.Placement!.HeldGpuMilli;
        _allocatedMilli -= held;
        _allocByClass[track.Class] -= held / 1000.0;
        track.Running = false;
        track.Placement = null;
        track.RunSeconds += runSeconds;
        var group = _byClass[track.Class];
        var size = _bySize[track.Size];
        var charged = end.Charge?.GpuHours ?? 0;
        _all.ChargedGpuHours += charged;
        group.ChargedGpuHours += charged;
        size.ChargedGpuHours += charged;
        var state = end.Outcome switch
        {
            JobOutcome.Finished => "finished",
            JobOutcome.Preempted => "preempted",
            JobOutcome.Cancelled => "cancelled",
            _ => "failed",
        };
        WriteRow(track.Job, start, stop, state, end.Placement);

        if (end.Requeued)
        {
            // Lost work: a checkpointable job keeps what it did (it checkpoints on the preemption signal, and every
            // hour otherwise); any other job starts again from zero.
            var ranTicks = stop - start;
            long kept = 0;
            if (track.Job.Checkpointable)
            {
                kept = end.Outcome == JobOutcome.Preempted ? ranTicks : ranTicks - (ranTicks % TimeSpan.TicksPerHour);
            }

            track.RemainingTicks = Math.Max(0, track.RemainingTicks - kept);
            var lost = held / 1000.0 * ((ranTicks - kept) / (double)TimeSpan.TicksPerHour);
            _all.LostGpuHours += lost;
            group.LostGpuHours += lost;
            size.LostGpuHours += lost;
            if (end.Outcome == JobOutcome.Preempted)
            {
                _all.Preemptions++;
                group.Preemptions++;
                size.Preemptions++;
            }

            _usefulGpuSeconds += track.Job.Gpus * kept / (double)TimeSpan.TicksPerSecond;
            _pendingByClass[track.Class] += track.Job.Gpus;
            return;
        }

        // The job is over.
        _ended++;
        _tracks.Remove(track.Job.Id);
        if (--_activeByProject[track.Project] == 0)
        {
            _activeTenants--;
        }

        _usefulGpuSeconds += track.Job.Gpus * runSeconds;
        var jct = Seconds(stop) - Seconds(track.SubmitTicks);
        var wait = Math.Max(0, jct - track.RunSeconds);
        var need = Math.Min(track.Job.DurationSeconds, track.WalltimeTicks / (double)TimeSpan.TicksPerSecond);
        var share = _fleet.TotalGpus / (double)Math.Max(1, track.ActiveAtSubmit);
        var ftf = jct / Math.Max(1e-9, need * Math.Max(1, track.Job.Gpus / share));
        var finished = end.State == JobState.Finished;
        foreach (var g in (ReadOnlySpan<MetricGroup>)[_all, group, size])
        {
            if (finished)
            {
                g.Finished++;
            }
            else
            {
                g.Failed++;
            }

            g.End(jct, wait, need, ftf);
        }

        _lastEnd = Math.Max(_lastEnd, Seconds(stop));
    }

    private void WriteRow(TraceJob job, long? start, long? end, string state, Placement? placement)
    {
        var w = _options.ScheduleOut;
        if (w is null)
        {
            return;
        }

        var sb = _row.Clear();
        sb.Append(Csv(job.Label)).Append(',').Append(JobCsvWriter.Seconds(job.SubmitSeconds)).Append(',');
        if (start is { } s)
        {
            sb.Append(JobCsvWriter.Seconds(Seconds(s)));
        }

        sb.Append(',');
        if (end is { } e)
        {
            sb.Append(JobCsvWriter.Seconds(Seconds(e)));
        }

        sb.Append(',').Append(state).Append(',');
        if (placement is not null)
        {
            sb.Append(_fleet.Partitions[placement.Partition].Name);
        }

        sb.Append(',').Append(job.Gpus.ToString("0.###", CultureInfo.InvariantCulture)).Append(',');
        if (placement is not null)
        {
            sb.Append(placement.Format(_fleet));
        }

        sb.Append('\n');
        w.Write(sb);
    }

    private static string Csv(string s) =>
        s.AsSpan().IndexOfAny(",\"\n") >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;

    private static int SizeBand(double gpus) => gpus switch
    {
        < 1 => 0,
        1 => 1,
        <= 8 => 2,
        <= 64 => 3,
        <= 256 => 4,
        _ => 5,
    };

    private MonthStats Month(long ticks)
    {
        var m = (int)Math.Max(0, Math.Floor(Seconds(ticks) / _options.MonthSeconds));
        while (_months.Count <= m)
        {
            _months.Add(new MonthStats(_months.Count, Math.Max(_classes.Count, 8)));
        }

        var month = _months[m];
        if (month.UnservedGpuHours.Length < _classes.Count)
        {
            _months[m] = month = Grow(month);
        }

        return month;
    }

    private MonthStats Grow(MonthStats old)
    {
        var grown = new MonthStats(old.Month, Math.Max(_classes.Count, 8));
        for (var c = 0; c < old.UnservedGpuHours.Length; c++)
        {
            grown.UnservedGpuHours[c] = old.UnservedGpuHours[c];
            grown.AllocatedGpuHours[c] = old.AllocatedGpuHours[c];
            grown.DemandGpuHours[c] = old.DemandGpuHours[c];
            grown.Wait[c] = old.Wait[c];
            grown.NeverStarted[c] = old.NeverStarted[c];
        }

        return grown;
    }

    /// <summary>Adds the time from the last event to <paramref name="t"/> to the integrals, emitting samples on the way.</summary>
    private void Integrate(long t)
    {
        var now = Seconds(t);
        while (_nextSample < now)
        {
            Sample(_nextSample);
            _nextSample += _sampleInterval;
        }

        var from = _lastIntegrated;
        while (from < t)
        {
            var month = Month(from);
            var monthEnd = Ticks((month.Month + 1) * _options.MonthSeconds);
            var to = Math.Min(t, monthEnd);
            var hours = (to - from) / (double)TimeSpan.TicksPerHour;
            for (var c = 0; c < _classes.Count; c++)
            {
                month.AllocatedGpuHours[c] += _allocByClass[c] * hours;
                month.UnservedGpuHours[c] += Math.Max(0, _pendingByClass[c]) * hours;
            }

            _allocatedGpuSeconds += _allocatedMilli / 1000.0 * hours * 3600;
            from = to;
        }

        _lastIntegrated = Math.Max(_lastIntegrated, t);
    }

    private void Sample(double seconds)
    {
        var stats = _engine.GetStats();
        _strandedSum += stats.StrandedGpus;
        _strandedSamples++;
        var sample = new TimeSample(seconds, stats.PendingJobs, stats.RunningJobs, stats.AllocatedGpus, stats.UpGpus, stats.StrandedGpus, stats.PreemptingJobs, [.. _allocByClass], [.. _pendingByClass]);
        if (_options.TimeSeriesOut is { } w)
        {
            var sb = _row.Clear();
            sb.Append(JobCsvWriter.Seconds(seconds)).Append(',').Append(stats.PendingJobs).Append(',').Append(stats.RunningJobs).Append(',')
                .Append(stats.AllocatedGpus.ToString("0.###", CultureInfo.InvariantCulture)).Append(',').Append(stats.UpGpus).Append(',')
                .Append(stats.StrandedGpus).Append(',').Append(stats.PreemptingJobs);
            foreach (var a in _allocByClass)
            {
                sb.Append(',').Append(a.ToString("0.###", CultureInfo.InvariantCulture));
            }

            sb.Append('\n');
            w.Write(sb);
        }

        // Keep at most about 4,000 samples in memory for the report: drop every other one when full.
        if (_seriesSkip++ % _seriesStride == 0)
        {
            _series.Add(sample);
            if (_series.Count >= 4000)
            {
                var kept = new List<TimeSample>(_series.Count / 2);
                for (var i = 0; i < _series.Count; i += 2)
                {
                    kept.Add(_series[i]);
                }

                _series.Clear();
                _series.AddRange(kept);
                _seriesStride *= 2;
                _seriesSkip = 1;
            }
        }
    }

    private SimulationResult Finish(long stop)
    {
        // Jobs left at the horizon (or stuck: they can never be placed on the nodes in service).
        var left = _tracks.Values.OrderBy(t => t.Job.Id).ToList();
        foreach (var track in left)
        {
            if (track.Running)
            {
                WriteRow(track.Job, track.StartTicks, null, "running", track.Placement);
            }
            else
            {
                WriteRow(track.Job, null, null, "pending", null);
            }

            if (!track.Started)
            {
                Month(track.SubmitTicks).NeverStarted[track.Class]++;
            }
        }

        _options.ScheduleOut?.Flush();
        _options.TimeSeriesOut?.Flush();
        var (avgBound, makespanBound) = _bounds.Finish();
        var first = _bounds.FirstSubmit;
        var window = Math.Max(1e-9, Seconds(stop) - first);
        var arrivalSpan = _bounds.LastSubmit - first;
        var offered = arrivalSpan > 0 ? _bounds.WorkGpuSeconds / (_fleet.TotalGpus * arrivalSpan) : 0;
        foreach (var m in _months.ToList())
        {
            Month(Ticks(m.Month * _options.MonthSeconds));
        }

        return new SimulationResult
        {
            Policy = _options.PolicyName,
            Fleet = _fleet.Name,
            Workload = _workload.Name,
            Gpus = _fleet.TotalGpus,
            Nodes = _fleet.Nodes.Count,
            All = _all,
            ByClass = _byClass,
            BySize = _bySize,
            Classes = _classes,
            Series = _series,
            Months = _months,
            Jobs = _arrived,
            Unfinished = left.Count,
            AvgJctLowerBound = avgBound,
            MakespanSeconds = _lastEnd > 0 ? _lastEnd - first : 0,
            MakespanLowerBound = makespanBound,
            OfferedLoad = offered,
            GpuAllocation = _allocatedGpuSeconds / (_fleet.TotalGpus * window),
            GpuUtilization = _usefulGpuSeconds / (_fleet.TotalGpus * window),
            StrandedGpusAvg = _strandedSamples == 0 ? 0 : _strandedSum / _strandedSamples,
            SimulatedSeconds = Seconds(stop),
            Events = _eventsHandled + _arrived,
            Cycles = _cycles,
            FullCycles = _fullCycles,
            ConsideredFull = _consideredFull,
            ConsideredIncremental = _consideredIncremental,
            FullCycleSeconds = _fullCycleTime.TotalSeconds,
            IncrementalCycleSeconds = _incrementalCycleTime.TotalSeconds,
            NodeFailures = _nodeFailures,
            Placements = _placements,
        };
    }
}
