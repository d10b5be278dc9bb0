using System.Collections.Immutable;
using System.Diagnostics;
using System.Threading.Channels;
using GpuCommons.Backends;
using GpuCommons.Contracts;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;
using GpuCommons.Server.Security;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Engine;

/// <summary>Result of a submission handed back to the API.</summary>
public sealed record SubmitOutcome(JobRow? Job, bool Replayed, SpecException? Error);

/// <summary>A job whose start failed in the infrastructure: how often, the last error, and when it is tried again.</summary>
public sealed record StartRetry(int Failures, DateTimeOffset NextTry, string LastError);

/// <summary>
/// The scheduler loop: the one owner of the <see cref="SchedulerEngine"/>. Everything that changes the engine comes in as
/// a command through a FIFO channel and runs on this loop, one at a time: submissions (written in groups, one transaction
/// per batch, committed before any of them is answered), typed changes from the API (written and applied once, see
/// Coordinator.Commands.cs), backend events, and the results of starts. Starts follow assume → persist → dispatch: the
/// engine places a job, the start is written, then the <see cref="StartDispatcher"/> calls the backend off the loop and
/// posts what came of it back here. Requests read the <see cref="View"/> the loop publishes after every pass.
/// </summary>
/// <remarks>
/// The parts: <see cref="EngineRebuilder"/> builds the state at start-up; <see cref="StartDispatcher"/> talks to the
/// backend for starts; <see cref="JobEndRecorder"/> writes ledger entries and job ends; <see cref="AllocationAlertService"/>
/// raises allocation alerts from the view. This file is the loop itself; Coordinator.Starts.cs the start and end paths,
/// Coordinator.Commands.cs the API's typed commands, Coordinator.Reconcile.cs what reconciliation asks of the loop.
/// </remarks>
public sealed partial class Coordinator : BackgroundService
{
    private readonly GpucDbFactory _db;
    private readonly IJobBackend _backend;
    private readonly ServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<Coordinator> _log;
    private readonly ServerMetrics _metrics;
    private readonly PosixAccounts _accounts;
    private readonly JobEndRecorder _recorder;
    private readonly EngineRebuilder _rebuilder;
    private readonly StartDispatcher _dispatcher;
    private readonly Channel<Command> _channel = Channel.CreateUnbounded<Command>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Owned by the loop.
    private LoopState _s = null!;
    private readonly List<JobRow> _deferredRows = [];
    private readonly List<EventRow> _deferredEvents = [];
    private readonly HashSet<long> _touched = [];
    private long _lastFull;
    private IReadOnlyDictionary<long, JobView> _jobViews = new Dictionary<long, JobView>();
    private ImmutableDictionary<long, JobView?> _recentViews = ImmutableDictionary<long, JobView?>.Empty;
    private DateTimeOffset _jobViewsTime;
    private long _version;
    private TimeSpan _scheduleTime;
    private volatile SchedulerView _view = SchedulerView.Empty;

    public Coordinator(GpucDbFactory db, IJobBackend backend, ServerOptions options, TimeProvider time, ILogger<Coordinator> log, ServerMetrics metrics,
        PosixAccounts accounts)
    {
        _accounts = accounts;
        _db = db;
        _backend = backend;
        _options = options;
        _time = time;
        _log = log;
        _metrics = metrics;
        _recorder = new JobEndRecorder(time, metrics);
        _rebuilder = new EngineRebuilder(db, backend, options, time, accounts, _recorder, log);
        _dispatcher = new StartDispatcher(backend, accounts, options.MaxConcurrentStarts, log);
    }

    /// <summary>Whose account jobs run as.</summary>
    public PosixAccounts Accounts => _accounts;

    /// <summary>What the loop knows as of its last pass (read without waiting for the loop).</summary>
    public SchedulerView View => _view;

    /// <summary>A pending job held back after its start failed in the infrastructure, or null.</summary>
    public StartRetry? GetStartRetry(long id) => _view.StartRetries.GetValueOrDefault(id);

    /// <summary>Tries of a failing start before the job fails.</summary>
    public int MaxStartTries => _options.MaxStartTries;

    /// <summary>Completes when the engine has been rebuilt from the database and the loop runs.</summary>
    public Task Ready => _ready.Task;

    public bool IsReady => _ready.Task.IsCompletedSuccessfully;

    /// <summary>The fleet, known once <see cref="Ready"/>.</summary>
    public Fleet Fleet { get; private set; } = null!;

    public DiscoveredFleet? Discovered { get; private set; }

    /// <summary>Node states as of the last pass.</summary>
    public IReadOnlyDictionary<string, (NodeState State, string? Reason)> NodeStates => _view.NodeStates;

    /// <summary>Granted, spent, committed GPU-hours of every allocation, as of the last pass.</summary>
    public Task<Dictionary<string, (double Granted, double Spent, double Committed)>> AllocationUsageAsync() =>
        Task.FromResult(new Dictionary<string, (double Granted, double Spent, double Committed)>(_view.AllocationUsage, StringComparer.Ordinal));

    // ---- Commands ----------------------------------------------------------------------------------------------

    private abstract class Command;

    private sealed class SubmitCommand(JobRow row) : Command
    {
        public JobRow Row { get; } = row;
        public TaskCompletionSource<SubmitOutcome> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Work of a typed command, run on the loop; it completes its own task.</summary>
    private sealed class WorkCommand(Func<Task> work) : Command
    {
        public Func<Task> Work { get; } = work;
    }

    private sealed class StartResultCommand(StartResult result) : Command
    {
        public StartResult Result { get; } = result;
    }

    private sealed class PolledCommand(IReadOnlyList<BackendEvent> events) : Command
    {
        public IReadOnlyList<BackendEvent> Events { get; } = events;
    }

    private sealed class TickCommand : Command
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private void Post(Command cmd)
    {
        if (!_channel.Writer.TryWrite(cmd))
        {
            throw new InvalidOperationException("the scheduler loop has stopped");
        }
    }

    /// <summary>Runs <paramref name="work"/> on the loop; the view is published again before its task completes.</summary>
    private Task<T> OnLoopAsync<T>(Func<Task<T>> work)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new WorkCommand(async () =>
        {
            T result;
            try
            {
                result = await work();
            }
            catch (Exception e)
            {
                tcs.SetException(e);
                return;
            }

            Publish(full: false);
            tcs.SetResult(result);
        }));
        return tcs.Task;
    }

    /// <summary>Queues a job; answers once it is committed to the database (or rejected).</summary>
    public Task<SubmitOutcome> SubmitAsync(JobRow row)
    {
        var cmd = new SubmitCommand(row);
        Post(cmd);
        return cmd.Done.Task;
    }

    /// <summary>
    /// One whole pass of the loop, now: what is queued, a backend poll, a scheduling cycle (full when one is due by the
    /// clock), the starts it makes handed to the backend and their results applied. For tests that step the server with a
    /// fake clock; the loop runs the same passes on its own.
    /// </summary>
    internal async Task RunOnceAsync()
    {
        await TickAsync();
        await _dispatcher.IdleAsync();
        await TickAsync();
    }

    private Task TickAsync()
    {
        var tick = new TickCommand();
        Post(tick);
        return tick.Done.Task;
    }

    // ---- The loop --------------------------------------------------------------------------------------------

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            var rebuilt = await _rebuilder.RebuildAsync(stoppingToken);
            _s = rebuilt.State;
            Fleet = _s.Fleet;
            Discovered = rebuilt.Discovered;
            foreach (var row in rebuilt.Lost)
            {
                // Not the job's fault: failed, charged up to now, and requeued as its next attempt if it is requeueable.
                await EndJobAsync(row.Id, JobOutcome.NodeFailure, _time.GetUtcNow(), null, "lost: the process was gone after a restart", stoppingToken, JobStateNames.Failed);
            }

            LogRebuilt(_s.Active.Count, rebuilt.Lost.Count, rebuilt.Requeued, _s.NextId);
            PublishStats();
            Publish(full: true);
            _ready.SetResult();
        }
        catch (Exception e)
        {
            LogRebuildFailed(e);
            _ready.TrySetException(e);
            throw;
        }

        var poller = PollLoopAsync(stoppingToken);
        var reader = _channel.Reader;
        var batch = new Batch();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!reader.TryPeek(out _))
                {
                    await WaitAsync(reader, stoppingToken);
                }

                await RunPassAsync(batch, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogLoopError(e);
                batch.Fail(e);
                await Task.Delay(TimeSpan.FromMilliseconds(50), TimeProvider.System, CancellationToken.None);
            }
        }

        try
        {
            await FlushDeferredAsync(CancellationToken.None);
        }
        catch (Exception e)
        {
            LogLoopError(e);
        }

        _channel.Writer.TryComplete();
        while (reader.TryRead(out var left))
        {
            switch (left)
            {
                case SubmitCommand s:
                    s.Done.TrySetException(new OperationCanceledException("server stopping"));
                    break;
                case TickCommand t:
                    t.Done.TrySetCanceled(CancellationToken.None);
                    break;
            }
        }

        await poller;
        await _dispatcher.DisposeAsync();
    }

    /// <summary>Waits for a command, or until a full cycle is due (by the server's clock).</summary>
    private async Task WaitAsync(ChannelReader<Command> reader, CancellationToken stoppingToken)
    {
        var due = _options.FullCycleInterval - _time.GetElapsedTime(_lastFull);
        if (_s.StartRetries.Count > 0)
        {
            due = TimeSpan.FromTicks(Math.Min(due.Ticks, _options.PollInterval.Ticks));
        }

        if (due <= TimeSpan.Zero)
        {
            return;
        }

        using var timer = new CancellationTokenSource(due, _time);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, timer.Token);
        try
        {
            await reader.WaitToReadAsync(wait.Token);
        }
        catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Polls the backend off the loop every poll interval and posts what it reports as a command.</summary>
    private async Task PollLoopAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.PollInterval, _time, ct);
                var events = await PollBackendAsync(ct);
                if (events.Count > 0)
                {
                    _channel.Writer.TryWrite(new PolledCommand(events));
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogLoopError(e);
            }
        }
    }

    private async Task<IReadOnlyList<BackendEvent>> PollBackendAsync(CancellationToken ct)
    {
        try
        {
            return await _backend.PollAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogBackendError("poll", 0, e);
            return [];
        }
    }

    private long Phase(string name, long since)
    {
        var now = _time.GetTimestamp();
        _metrics.Phase(name, _time.GetElapsedTime(since, now));
        return now;
    }

    /// <summary>What one pass took off the channel.</summary>
    private sealed class Batch
    {
        public List<SubmitCommand> Submits { get; } = [];
        public List<Command> Others { get; } = [];
        public List<TickCommand> Ticks { get; } = [];

        public void Fail(Exception e)
        {
            foreach (var s in Submits)
            {
                s.Done.TrySetException(e);
            }

            foreach (var t in Ticks)
            {
                t.Done.TrySetException(e);
            }

            Clear();
        }

        public void Clear()
        {
            Submits.Clear();
            Others.Clear();
            Ticks.Clear();
        }
    }

    /// <summary>One pass: commands in arrival order (submissions grouped), then a cycle when anything changed or one is due.</summary>
    private async Task RunPassAsync(Batch batch, CancellationToken ct)
    {
        var pass = _time.GetTimestamp();
        _scheduleTime = TimeSpan.Zero;
        var reader = _channel.Reader;
        while (batch.Submits.Count < _options.MaxSubmitBatch && batch.Others.Count < 1024 && reader.TryRead(out var cmd))
        {
            switch (cmd)
            {
                case SubmitCommand s:
                    batch.Submits.Add(s);
                    break;
                case TickCommand t:
                    batch.Ticks.Add(t);
                    break;
                default:
                    batch.Others.Add(cmd);
                    break;
            }
        }

        var changed = false;
        var phase = _time.GetTimestamp();
        if (batch.Submits.Count > 0)
        {
            await FlushSubmitsAsync(batch.Submits, ct);
            batch.Submits.Clear();
            changed = true;
            phase = Phase("submissions", phase);
        }

        foreach (var cmd in batch.Others)
        {
            switch (cmd)
            {
                case WorkCommand w:
                    await w.Work();
                    changed = true;
                    break;
                case StartResultCommand r:
                    changed |= await ApplyStartResultAsync(r.Result, ct);
                    break;
                case PolledCommand p:
                    changed |= await ApplyBackendEventsAsync(p.Events, ct);
                    break;
            }
        }

        if (batch.Others.Count > 0)
        {
            phase = Phase("commands", phase);
        }

        batch.Others.Clear();
        if (batch.Ticks.Count > 0)
        {
            // A stepped pass polls here, on the loop, so that what the backend reported is applied before it returns.
            changed |= await ApplyBackendEventsAsync(await PollBackendAsync(ct), ct);
        }

        changed |= ResubmitDueStarts();
        var full = _time.GetElapsedTime(_lastFull) >= _options.FullCycleInterval;
        changed |= await PumpArraysAsync(full, ct);
        if (full || changed)
        {
            await ScheduleAsync(full, ct);
            phase = Phase("schedule_and_start", phase);
            if (ArraysHaveRoom())
            {
                // Tasks of an array started: another pass expands the next ones (without waiting for a command).
                Post(new WorkCommand(() => Task.CompletedTask));
            }
        }

        if (!reader.TryPeek(out var waiting) || waiting is not SubmitCommand)
        {
            // Submissions waiting would carry these writes in their transaction; otherwise write them now.
            await FlushDeferredAsync(ct);
            phase = Phase("deferred_writes", phase);
        }

        Publish(full);
        Phase("publish", phase);
        _metrics.StartsInFlight = _s.Starting.Count;
        _metrics.LoopPass(_time.GetElapsedTime(pass), _scheduleTime);
        foreach (var t in batch.Ticks)
        {
            t.Done.TrySetResult();
        }

        batch.Ticks.Clear();
    }

    // ---- Submissions -----------------------------------------------------------------------------------------

    private async Task FlushSubmitsAsync(List<SubmitCommand> batch, CancellationToken ct)
    {
        var engine = _s.Engine;
        var now = _time.GetUtcNow();
        var accepted = new List<SubmitCommand>(batch.Count);
        var batchKeys = new Dictionary<(string, string), SubmitCommand>();
        var replays = new List<(SubmitCommand Cmd, SubmitCommand? Of)>();
        foreach (var cmd in batch)
        {
            var row = cmd.Row;
            if (row.IdempotencyKey is { } key)
            {
                if (_s.Idempotency.TryGetValue((row.User, key), out var existing))
                {
                    replays.Add((cmd, null));
                    row.Id = existing;
                    continue;
                }

                if (batchKeys.TryGetValue((row.User, key), out var first))
                {
                    replays.Add((cmd, first));
                    continue;
                }
            }

            row.Id = _s.NextId;
            row.SubmitTime = now;
            row.State = JobState.Pending;
            // Queued at once (the write below rolls it back if it fails): one check of the job, not two. An array or a job
            // with a dependency is checked the same way but held by the loop (Coordinator.Arrays.cs), not queued.
            var held = HeldAtSubmit(row);
            var v = held ? engine.Validate(JobMapping.ToSpec(row)) : engine.Submit(JobMapping.ToSpec(row));
            if (!v.Accepted)
            {
                cmd.Done.TrySetResult(new SubmitOutcome(null, false, v.Error));
                continue;
            }

            _s.NextId++;
            if (held)
            {
                Hold(row);
            }
            else
            {
                _s.Active[row.Id] = row;
            }

            _touched.Add(row.Id);
            accepted.Add(cmd);
            if (row.IdempotencyKey is { } k2)
            {
                batchKeys[(row.User, k2)] = cmd;
            }
        }

        List<(JobStart Start, JobRow Row)> starts = [];
        if (accepted.Count > 0)
        {
            // Place at once what fits on free GPUs, so that a job that can start is written as submitted and started
            // in one transaction (one commit between the request and the run).
            var placed = engine.Schedule(full: false);
            starts = PrepareStarts(placed.Started);
            try
            {
                await using var db = _db.Create();
                db.ChangeTracker.AutoDetectChangesEnabled = false;
                var fresh = new HashSet<long>(accepted.Count);
                var jobs = new List<JobRow>(accepted.Count);
                var events = new List<EventRow>(accepted.Count);
                foreach (var cmd in accepted)
                {
                    jobs.Add(cmd.Row);
                    fresh.Add(cmd.Row.Id);
                    events.Add(new EventRow { Time = now, Actor = cmd.Row.User, Kind = "job.submitted", Subject = $"job/{cmd.Row.Id}", Project = cmd.Row.Project });
                }

                var started = starts.Select(s => s.Row).Where(r => !fresh.Contains(r.Id)).ToList();
                await AddDeferredAsync(db, ct);
                await WriteSubmissionsAsync(db, jobs, events, started, ct);
                _deferredRows.Clear();
                _deferredEvents.Clear();
            }
            catch (Exception e)
            {
                // Roll back the engine: nothing of this batch was stored.
                LogSubmitWriteFailed(accepted.Count, e);
                foreach (var (st, row) in starts)
                {
                    engine.StartFailed(st.JobId);
                    ResetToPending(row);
                }

                foreach (var cmd in accepted)
                {
                    if (HeldAtSubmit(cmd.Row))
                    {
                        Unhold(cmd.Row);
                        cmd.Done.TrySetException(e);
                        continue;
                    }

                    engine.Cancel(cmd.Row.Id);
                    _s.Active.Remove(cmd.Row.Id);
                    cmd.Done.TrySetException(e);
                }

                foreach (var (cmd, of) in replays.Where(r => r.Of is not null))
                {
                    cmd.Done.TrySetException(e);
                }

                accepted.Clear();
                starts.Clear();
                replays.RemoveAll(r => r.Of is not null);
            }
        }

        foreach (var cmd in accepted)
        {
            if (cmd.Row.IdempotencyKey is { } key)
            {
                _s.Idempotency[(cmd.Row.User, key)] = cmd.Row.Id;
            }
        }

        if (starts.Count > 0)
        {
            DispatchStarts(starts);
            PublishStats();
        }

        // Answered once the view shows the new jobs (a GET right after the answer finds them).
        Publish(full: false);
        foreach (var cmd in accepted)
        {
            cmd.Done.TrySetResult(new SubmitOutcome(Clone(cmd.Row), false, null));
        }

        _metrics.Submitted(accepted.Count);
        foreach (var (cmd, of) in replays)
        {
            var id = of?.Row.Id ?? cmd.Row.Id;
            JobRow? existing = _s.Active.TryGetValue(id, out var live) ? Clone(live) : null;
            if (existing is null)
            {
                await using var db = _db.Create();
                existing = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id, ct);
            }

            cmd.Done.TrySetResult(new SubmitOutcome(existing, true, null));
        }
    }

    /// <summary>
    /// Writes a group of new jobs, their events and whatever the context tracks, atomically. The new rows go as
    /// multi-row inserts; on PostgreSQL with nothing else to write that is one round trip, committed on its own.
    /// </summary>
    private async Task WriteSubmissionsAsync(GpucDb db, List<JobRow> jobs, List<EventRow> events, List<JobRow> started, CancellationToken ct)
    {
        var inserts = new BulkInsert(db).Add(jobs).Add(events);
        if (_db.Provider == "postgres" && !db.ChangeTracker.HasChanges() && inserts.Commands == 1 && started.Count == 0)
        {
            await inserts.ExecuteAsync(ct);
            return;
        }

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await inserts.ExecuteAsync(ct);
        await new BulkUpdate(db).ExecuteAsync(started, StartColumns, ct);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
    }

    internal static JobRow Clone(JobRow r) => r.Clone();

    // ---- Scheduling ------------------------------------------------------------------------------------------

    private async Task ScheduleAsync(bool full, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var result = _s.Engine.Schedule(full);
        _scheduleTime += sw.Elapsed;
        _metrics.Cycle(full, result.Timings);
        if (full)
        {
            _lastFull = _time.GetTimestamp();
        }

        if (result.Started.Count > 0)
        {
            await StartJobsAsync(result.Started, ct);
        }

        foreach (var p in result.Preempted)
        {
            _s.Preempting.Add(p.JobId);
            _touched.Add(p.JobId);
            if (!_s.Starting.ContainsKey(p.JobId))
            {
                // A victim whose start is still in flight is signalled when its start comes back.
                _dispatcher.Cancel(p.JobId, p.Grace);
            }
        }

        if (full || result.Started.Count > 0)
        {
            PublishStats();
        }

        if (full && sw.ElapsedMilliseconds > 500)
        {
            LogSlowCycle(sw.ElapsedMilliseconds, _s.Engine.PendingCount);
        }
    }

    // ---- Deferred writes ---------------------------------------------------------------------------------------

    /// <summary>
    /// Writes the deferred rows with the next write: by one bulk UPDATE, not the change tracker. After a wave of starts
    /// they are a thousand handles, and a thousand tracked updates make SaveChanges order them against the jobs' unique
    /// (array, task) index, which is quadratic. The events ride with the caller's SaveChanges.
    /// </summary>
    private async Task AddDeferredAsync(GpucDb db, CancellationToken ct)
    {
        var rows = _deferredRows.DistinctBy(r => r.Id).Where(r => db.Jobs.Local.FindEntry(r.Id) is null).ToList();
        await new BulkUpdate(db).ExecuteAsync(rows, null, ct);
        db.Events.AddRange(_deferredEvents);
    }

    private async Task FlushDeferredAsync(CancellationToken ct)
    {
        if (_deferredRows.Count == 0 && _deferredEvents.Count == 0)
        {
            return;
        }

        // Without the change tracker: after a wave of starts this is a thousand handles.
        await using var db = _db.Create();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await new BulkUpdate(db).ExecuteAsync(_deferredRows.DistinctBy(r => r.Id).ToList(), null, ct);
        await new BulkInsert(db).Add(_deferredEvents).ExecuteAsync(ct);
        await tx.CommitAsync(ct);
        _deferredRows.Clear();
        _deferredEvents.Clear();
    }

    internal static void ResetToPending(JobRow row)
    {
        row.State = JobState.Pending;
        row.StartTime = null;
        row.Slots = null;
        row.Placement = null;
        row.HeldGpus = 0;
        row.AllocationId = null;
        row.BackendId = null;
        row.StartedOn = null;
    }

    // ---- The view ----------------------------------------------------------------------------------------------

    /// <summary>
    /// Publishes a new <see cref="SchedulerView"/>. After a full cycle the views of all live jobs are taken again; after
    /// other passes only those of jobs this loop touched since.
    /// </summary>
    private void Publish(bool full)
    {
        var engine = _s.Engine;
        if (full)
        {
            var jobs = new Dictionary<long, JobView>(engine.PendingCount + engine.RunningCount);
            foreach (var id in engine.JobIds)
            {
                if (engine.GetJob(id) is { } v)
                {
                    jobs[id] = v;
                }
            }

            _jobViews = jobs; // never changed after this: the next full cycle makes a new one
            _recentViews = ImmutableDictionary<long, JobView?>.Empty;
            _jobViewsTime = _time.GetUtcNow();
            _touched.Clear();
        }
        else if (_touched.Count > 0)
        {
            var b = _recentViews.ToBuilder();
            foreach (var id in _touched)
            {
                b[id] = engine.GetJob(id);
            }

            _recentViews = b.ToImmutable();
            _touched.Clear();
        }

        var usage = new Dictionary<string, (double, double, double)>(_s.Allocations.Count, StringComparer.Ordinal);
        foreach (var id in _s.Allocations.Keys)
        {
            if (engine.GetAllocationUsage(id) is { } u)
            {
                usage[id] = u;
            }
        }

        _holdsDirty |= full;
        PublishHolds();
        _view = new SchedulerView(++_version, _time.GetUtcNow(), _jobViews, _recentViews, usage,
            new Dictionary<string, (NodeState, string?)>(_s.NodeStates, StringComparer.Ordinal), new Dictionary<long, StartRetry>(_s.StartRetries),
            engine.PendingCount, engine.RunningCount, _jobViewsTime)
        {
            Holds = _holdsView,
            Arrays = _arraysView,
        };
    }

    private void PublishStats()
    {
        var engine = _s.Engine;
        var stats = engine.GetStats();
        _metrics.GpusAllocated = stats.AllocatedGpus;
        _metrics.GpusTotal = stats.TotalGpus;
        _metrics.GpusUp = stats.UpGpus;
        _metrics.Running = stats.RunningJobs;
        _metrics.Cycles = engine.Cycles;
        var byClass = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in _s.ProjectClass.Values.Distinct())
        {
            byClass[c.ToLowerInvariant()] = 0;
        }

        foreach (var row in _s.Active.Values)
        {
            if (row.State == JobState.Pending)
            {
                var c = _s.ProjectClass.GetValueOrDefault(row.Project, "unknown").ToLowerInvariant();
                byClass[c] = byClass.GetValueOrDefault(c) + 1;
            }
        }

        _metrics.QueueByClass = byClass;
    }

    internal EventRow Event(string actor, string kind, string subject, string? project, string? detail) => _recorder.Event(actor, kind, subject, project, detail);

    // ---- Logging -----------------------------------------------------------------------------------------------

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "engine rebuilt from the database: {Active} live jobs, {Lost} lost, {Requeued} requeued; next job id {Next}")]
    private partial void LogRebuilt(int active, int lost, int requeued, long next);

    [LoggerMessage(EventId = 102, Level = LogLevel.Critical, Message = "could not rebuild the engine from the database")]
    private partial void LogRebuildFailed(Exception e);

    [LoggerMessage(EventId = 103, Level = LogLevel.Error, Message = "scheduler loop error")]
    private partial void LogLoopError(Exception e);

    [LoggerMessage(EventId = 104, Level = LogLevel.Error, Message = "could not write {Count} submissions")]
    private partial void LogSubmitWriteFailed(int count, Exception e);

    [LoggerMessage(EventId = 105, Level = LogLevel.Error, Message = "could not write {Count} starts; rolled back")]
    private partial void LogStartWriteFailed(int count, Exception e);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "backend {Action} failed for job {JobId}")]
    private partial void LogBackendError(string action, long jobId, Exception e);

    [LoggerMessage(EventId = 130, Level = LogLevel.Warning, Message = "job {JobId} failed to start: {Reason}")]
    private partial void LogStartRejected(long jobId, string reason);

    [LoggerMessage(EventId = 109, Level = LogLevel.Warning, Message = "full cycle took {Ms} ms with {Pending} pending")]
    private partial void LogSlowCycle(long ms, int pending);
}
