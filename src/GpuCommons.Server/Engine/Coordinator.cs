using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Threading.Channels;
using GpuCommons.Backends;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
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
/// The scheduler loop: the one owner of the <see cref="SchedulerEngine"/>. Everything that changes the engine comes in
/// through a FIFO channel and runs on this loop, one at a time. Submissions are written in groups (one transaction per
/// batch, committed before any of them is answered). Starts follow assume → persist → roll back: the engine places a
/// job, the start is written, then the backend runs it; a failed write or start gives the GPUs back (StartFailed).
/// </summary>
public sealed partial class Coordinator : BackgroundService
{
    private readonly GpucDbFactory _db;
    private readonly IJobBackend _backend;
    private readonly ServerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<Coordinator> _log;
    private readonly ServerMetrics _metrics;
    private readonly WebhookSender? _webhook;
    private readonly PosixAccounts _accounts;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, StartRetry> _startRetries = new();
    private readonly Channel<Command> _channel = Channel.CreateUnbounded<Command>(new UnboundedChannelOptions { SingleReader = true });
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // State owned by the loop.
    private readonly Dictionary<long, JobRow> _active = [];
    private readonly Dictionary<(string User, string Key), long> _idempotency = [];
    private readonly Dictionary<string, AllocationRow> _allocations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _projectClass = new(StringComparer.Ordinal);
    private readonly HashSet<long> _preempting = [];
    private readonly HashSet<long> _backendStarted = [];
    private readonly Dictionary<string, DiscoveredNode> _discovered = new(StringComparer.Ordinal);
    private readonly List<JobRow> _deferredRows = [];
    private readonly List<EventRow> _deferredEvents = [];
    private SchedulerEngine _engine = null!;
    private long _nextId = 1;
    private long _lastFull;
    private long _lastAlerts;

    public Coordinator(GpucDbFactory db, IJobBackend backend, ServerOptions options, TimeProvider time, ILogger<Coordinator> log, ServerMetrics metrics,
        PosixAccounts accounts, WebhookSender? webhook = null)
    {
        _accounts = accounts;
        _db = db;
        _backend = backend;
        _options = options;
        _time = time;
        _log = log;
        _metrics = metrics;
        _webhook = webhook;
    }

    /// <summary>Whose account jobs run as.</summary>
    public PosixAccounts Accounts => _accounts;

    /// <summary>A pending job held back after its start failed in the infrastructure, or null.</summary>
    public StartRetry? GetStartRetry(long id) => _startRetries.TryGetValue(id, out var r) ? r : null;

    /// <summary>Tries of a failing start before the job fails.</summary>
    public int MaxStartTries => _options.MaxStartTries;

    /// <summary>The database (for work run on the loop).</summary>
    public GpucDbFactory Db => _db;

    /// <summary>Completes when the engine has been rebuilt from the database and the loop runs.</summary>
    public Task Ready => _ready.Task;

    public bool IsReady => _ready.Task.IsCompletedSuccessfully;

    /// <summary>The fleet, known once <see cref="Ready"/>.</summary>
    public Fleet Fleet { get; private set; } = null!;

    public DiscoveredFleet? Discovered { get; private set; }

    /// <summary>Node states as last set by the loop (read freely by the API).</summary>
    public IReadOnlyDictionary<string, (NodeState State, string? Reason)> NodeStates { get; private set; } = new Dictionary<string, (NodeState, string?)>();

    private abstract class Command;

    private sealed class SubmitCommand(JobRow row) : Command
    {
        public JobRow Row { get; } = row;
        public TaskCompletionSource<SubmitOutcome> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private sealed class WorkCommand(Func<Task> work) : Command
    {
        public Func<Task> Work { get; } = work;
    }

    // ---- API entry points (thread-safe) ------------------------------------------------------------------------

    /// <summary>Queues a job; answers once it is committed to the database (or rejected).</summary>
    public Task<SubmitOutcome> SubmitAsync(JobRow row)
    {
        var cmd = new SubmitCommand(row);
        if (!_channel.Writer.TryWrite(cmd))
        {
            throw new InvalidOperationException("the scheduler loop has stopped");
        }

        return cmd.Done.Task;
    }

    /// <summary>Runs <paramref name="work"/> on the loop, with the engine, and returns its result.</summary>
    public Task<T> RunAsync<T>(Func<SchedulerEngine, Task<T>> work)
    {
        var tcs = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var cmd = new WorkCommand(async () =>
        {
            try
            {
                tcs.SetResult(await work(_engine));
            }
            catch (Exception e)
            {
                tcs.SetException(e);
            }
        });
        if (!_channel.Writer.TryWrite(cmd))
        {
            throw new InvalidOperationException("the scheduler loop has stopped");
        }

        return tcs.Task;
    }

    // ---- The loop --------------------------------------------------------------------------------------------

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await RebuildAsync(stoppingToken);
            _ready.SetResult();
        }
        catch (Exception e)
        {
            LogRebuildFailed(e);
            _ready.TrySetException(e);
            throw;
        }

        var reader = _channel.Reader;
        var submits = new List<SubmitCommand>();
        var work = new List<WorkCommand>();
        var lastPoll = 0L;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!reader.TryPeek(out _))
                {
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                    wait.CancelAfter(_options.PollInterval);
                    try
                    {
                        await reader.WaitToReadAsync(wait.Token);
                    }
                    catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
                    {
                    }
                }

                while (submits.Count < _options.MaxSubmitBatch && reader.TryRead(out var cmd))
                {
                    if (cmd is SubmitCommand s)
                    {
                        submits.Add(s);
                    }
                    else
                    {
                        work.Add((WorkCommand)cmd);
                    }
                }

                var changed = submits.Count > 0;
                if (submits.Count > 0)
                {
                    await FlushSubmitsAsync(submits, stoppingToken);
                    submits.Clear();
                }

                foreach (var w in work)
                {
                    await w.Work();
                    changed = true;
                }

                work.Clear();
                var now = _time.GetTimestamp();
                if (_time.GetElapsedTime(lastPoll, now) >= _options.PollInterval)
                {
                    lastPoll = now;
                    changed |= await PollBackendAsync(stoppingToken);
                }

                changed |= ResubmitDueStarts();
                var full = _time.GetElapsedTime(_lastFull, now) >= _options.FullCycleInterval;
                if (full || changed)
                {
                    await ScheduleAsync(full, stoppingToken);
                }

                if (!reader.TryPeek(out var waiting) || waiting is not SubmitCommand)
                {
                    // Submissions waiting would carry these writes in their transaction; otherwise write them now.
                    await FlushDeferredAsync(stoppingToken);
                }

                if (_time.GetElapsedTime(_lastAlerts, now) >= TimeSpan.FromSeconds(5))
                {
                    _lastAlerts = now;
                    await CheckAlertsAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogLoopError(e);
                foreach (var s in submits)
                {
                    s.Done.TrySetException(e);
                }

                submits.Clear();
                work.Clear();
                await Task.Delay(TimeSpan.FromMilliseconds(50), _time, CancellationToken.None);
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
            if (left is SubmitCommand s)
            {
                s.Done.TrySetException(new OperationCanceledException("server stopping"));
            }
        }
    }

    // ---- Rebuild ---------------------------------------------------------------------------------------------

    private async Task RebuildAsync(CancellationToken ct)
    {
        var discovered = await _backend.DiscoverAsync(ct);
        Discovered = discovered;
        foreach (var n in discovered.Nodes)
        {
            _discovered[n.Name] = n;
        }

        Fleet = BuildFleet(discovered, _options.RatePerGpuHour);
        LogFleet(_backend.Name, discovered.Source, Fleet.Nodes.Count, Fleet.TotalGpus, discovered.VirtualGpus, discovered.Note ?? "");

        await using var db = _db.Create();
        var orgs = await db.Organisations.AsNoTracking().ToListAsync(ct);
        var projects = await db.Projects.AsNoTracking().ToListAsync(ct);
        var allocations = await db.Allocations.AsNoTracking().ToListAsync(ct);
        var spent = await db.Ledger.AsNoTracking().GroupBy(l => l.AllocationId).Select(g => new { g.Key, Sum = g.Sum(x => x.GpuHours) }).ToDictionaryAsync(x => x.Key, x => x.Sum, ct);
        var tenancy = new TenancySpec();
        foreach (var o in orgs)
        {
            tenancy.Organisations.Add(new OrganisationSpec(o.Name, Enum.Parse<OrganisationType>(o.Type, true)) { Shares = o.Shares, Quotas = KnownQuotas(o.Name, o.Quotas) });
        }

        var orgType = orgs.ToDictionary(o => o.Name, o => o.Type, StringComparer.Ordinal);
        foreach (var p in projects)
        {
            tenancy.Projects.Add(new ProjectSpec(p.Name, p.Organisation) { Shares = p.Shares, Quotas = KnownQuotas(p.Name, p.Quotas) });
            _projectClass[p.Name] = orgType.GetValueOrDefault(p.Organisation, "unknown");
        }

        var engineOptions = new SchedulerOptions { MaxWalltime = _options.MaxWalltime };
        _engine = new SchedulerEngine(Fleet, tenancy, engineOptions, _time);
        foreach (var a in allocations)
        {
            _allocations[a.Id] = a;
            if (Fleet.FindPartition(a.Partition ?? "") is null && a.Partition is not null)
            {
                continue;
            }

            _engine.UpsertAllocation(ToSpec(a, spent.GetValueOrDefault(a.Id)));
        }

        var states = new Dictionary<string, (NodeState, string?)>(StringComparer.Ordinal);
        foreach (var n in Fleet.Nodes)
        {
            states[n.Name] = (n.InitialState, null);
        }

        foreach (var ns in await db.NodeStates.AsNoTracking().ToListAsync(ct))
        {
            if (Fleet.FindNode(ns.Node) is not null && Enum.TryParse<NodeState>(ns.State, true, out var st))
            {
                _engine.SetNodeState(ns.Node, st);
                states[ns.Node] = (st, ns.Reason);
            }
        }

        NodeStates = states;
        foreach (var r in await db.Reservations.AsNoTracking().ToListAsync(ct))
        {
            try
            {
                _engine.AddReservation(new AdvanceReservation(r.Name, r.Nodes.Split(','), r.Start, r.End, r.Project));
            }
            catch (SpecException e)
            {
                LogReservationSkipped(r.Name, e.Message);
            }
        }

        _nextId = (await db.Jobs.MaxAsync(j => (long?)j.Id, ct) ?? 0) + 1;
        foreach (var k in await db.Jobs.AsNoTracking().Where(j => j.IdempotencyKey != null).Select(j => new { j.User, j.IdempotencyKey, j.Id }).ToListAsync(ct))
        {
            _idempotency[(k.User, k.IdempotencyKey!)] = k.Id;
        }

        var live = await db.Jobs.Where(j => j.State == "pending" || j.State == "running").OrderBy(j => j.Id).ToListAsync(ct);
        var lost = new List<JobRow>();
        var requeued = 0;
        foreach (var row in live)
        {
            _active[row.Id] = row;
            var restartStart = row.State == "running" && row.BackendId is null;

            if (row.State == "pending")
            {
                var r = _engine.Submit(JobMapping.ToSpec(row));
                if (!r.Accepted)
                {
                    LogRestoreRejected(row.Id, r.Error!.Message);
                    row.State = "failed";
                    row.Outcome = "rejected on restart: " + r.Error.Message;
                    row.EndTime = _time.GetUtcNow();
                    _active.Remove(row.Id);
                }

                continue;
            }

            var slots = JobMapping.ParseSlots(row.Slots, Fleet);
            var restored = slots is not null && _engine.RestoreRunning(JobMapping.ToSpec(row), slots, row.StartTime ?? row.SubmitTime, row.AllocationId).Accepted;
            if (restored && restartStart)
            {
                // Written as started, but the server died before it recorded the backend's handle. Starting is idempotent
                // by job id: the backend returns the handle of the run it has, or starts it now on the same GPUs.
                try
                {
                    var placement = _engine.GetJob(row.Id)!.Placement!;
                    var runAs = await _accounts.ResolveAsync(row.User, row.Project, ct);
                    var h = await _backend.StartAsync(ToBackendJob(row, placement) with { RunAs = runAs }, ct);
                    row.BackendId = h.ExternalId;
                    row.StdoutPath = h.StdoutPath;
                    row.StderrPath = h.StderrPath;
                    requeued++;
                    continue;
                }
                catch (JobStartRejectedException e)
                {
                    LogStartRejected(row.Id, e.Message);
                    _engine.StartFailed(row.Id);
                    _engine.Cancel(row.Id);
                    FailUnstarted(row, "failed to start: " + e.Message);
                    continue;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogBackendError("start after restart", row.Id, e);
                    _engine.StartFailed(row.Id);
                    ResetToPending(row);
                    _engine.Cancel(row.Id);
                    _engine.Submit(JobMapping.ToSpec(row));
                    continue;
                }
            }

            var handle = new BackendHandle(row.Id, row.BackendId ?? "", row.StdoutPath, row.StderrPath);
            if (restored && await _backend.ReattachAsync(row.Id, handle, ct))
            {
                continue;
            }

            lost.Add(row);
            if (!restored)
            {
                // Cannot hold its GPUs any more (the fleet changed): end it without a charge through the engine.
                row.State = "failed";
                row.Outcome = "lost";
                row.EndTime = _time.GetUtcNow();
                _active.Remove(row.Id);
            }
        }

        foreach (var row in live)
        {
            db.Jobs.Update(row);
        }

        await db.SaveChangesAsync(ct);
        foreach (var row in lost.Where(r => _active.ContainsKey(r.Id)))
        {
            // Not the job's fault: failed, charged up to now, and requeued as its next attempt if it is requeueable.
            await EndJobAsync(row.Id, JobOutcome.NodeFailure, _time.GetUtcNow(), null, "lost: the process was gone after a restart", ct, "failed");
        }

        LogRebuilt(_active.Count, lost.Count, requeued, _nextId);
        PublishStats();
    }

    internal static Fleet BuildFleet(DiscoveredFleet discovered, decimal rate)
    {
        var b = new FleetBuilder("local");
        foreach (var part in discovered.Nodes.GroupBy(n => n.Partition))
        {
            b.AddPartition(part.Key, part.First().GpuModel, rate);
            foreach (var n in part)
            {
                var state = n.State.ToLowerInvariant() switch
                {
                    "down" => NodeState.Down,
                    "draining" or "drain" or "drained" => NodeState.Draining,
                    _ => NodeState.Up,
                };
                b.AddNode(part.Key, n.Name, n.Gpus.Count, null, state, NodeResources.FromDiscovery(n.Cpus, n.MemoryMiB, n.Features), n.GpuModel);
            }
        }

        return b.Build();
    }

    /// <summary>Stored quotas on partitions the fleet still has (a quota on a partition that is gone is logged and left out).</summary>
    private List<QuotaSpec> KnownQuotas(string tenant, string? json)
    {
        var quotas = Api.QuotasApi.FromJson(json);
        foreach (var q in quotas.Where(q => Fleet.FindPartition(q.Partition) is null))
        {
            LogQuotaSkipped(tenant, q.Partition);
        }

        return quotas.Where(q => Fleet.FindPartition(q.Partition) is not null).ToList();
    }

    internal static AllocationSpec ToSpec(AllocationRow a, double spent) =>
        new(a.Id, a.Project, a.Partition, a.ReleasedGpuHours, a.Start, a.End) { SpentGpuHours = spent };

    // ---- Submissions -----------------------------------------------------------------------------------------

    private async Task FlushSubmitsAsync(List<SubmitCommand> batch, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var accepted = new List<SubmitCommand>(batch.Count);
        var batchKeys = new Dictionary<(string, string), SubmitCommand>();
        var replays = new List<(SubmitCommand Cmd, SubmitCommand? Of)>();
        foreach (var cmd in batch)
        {
            var row = cmd.Row;
            if (row.IdempotencyKey is { } key)
            {
                if (_idempotency.TryGetValue((row.User, key), out var existing))
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

            row.Id = _nextId;
            row.SubmitTime = now;
            row.State = "pending";
            // Queued at once (the write below rolls it back if it fails): one check of the job, not two.
            var v = _engine.Submit(JobMapping.ToSpec(row));
            if (!v.Accepted)
            {
                cmd.Done.TrySetResult(new SubmitOutcome(null, false, v.Error));
                continue;
            }

            _nextId++;
            _active[row.Id] = row;
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
            var placed = _engine.Schedule(full: false);
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

                foreach (var (_, row) in starts)
                {
                    if (!fresh.Contains(row.Id))
                    {
                        db.Jobs.Update(row);
                    }
                }

                AddDeferred(db);
                await WriteSubmissionsAsync(db, jobs, events, ct);
                _deferredRows.Clear();
                _deferredEvents.Clear();
            }
            catch (Exception e)
            {
                // Roll back the engine: nothing of this batch was stored.
                LogSubmitWriteFailed(accepted.Count, e);
                foreach (var (st, row) in starts)
                {
                    _engine.StartFailed(st.JobId);
                    ResetToPending(row);
                }

                foreach (var cmd in accepted)
                {
                    _engine.Cancel(cmd.Row.Id);
                    _active.Remove(cmd.Row.Id);
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
            var row = cmd.Row;
            if (row.IdempotencyKey is { } key)
            {
                _idempotency[(row.User, key)] = row.Id;
            }

            cmd.Done.TrySetResult(new SubmitOutcome(Clone(row), false, null));
        }

        if (starts.Count > 0)
        {
            await RunStartsAsync(starts, ct);
            PublishStats();
        }

        _metrics.Submitted(accepted.Count);
        foreach (var (cmd, of) in replays)
        {
            var id = of?.Row.Id ?? cmd.Row.Id;
            JobRow? existing = _active.TryGetValue(id, out var live) ? Clone(live) : null;
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
    private async Task WriteSubmissionsAsync(GpucDb db, List<JobRow> jobs, List<EventRow> events, CancellationToken ct)
    {
        var inserts = new BulkInsert(db).Add(jobs).Add(events);
        if (_db.Provider == "postgres" && !db.ChangeTracker.HasChanges() && inserts.Commands == 1)
        {
            await inserts.ExecuteAsync(ct);
            return;
        }

        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await inserts.ExecuteAsync(ct);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
    }

    internal static JobRow Clone(JobRow r) => r.Clone();

    // ---- Scheduling ------------------------------------------------------------------------------------------

    private async Task ScheduleAsync(bool full, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var result = _engine.Schedule(full);
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
            _preempting.Add(p.JobId);
            try
            {
                await _backend.CancelAsync(p.JobId, p.Grace, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogBackendError("preempt", p.JobId, e);
            }
        }

        if (full || result.Started.Count > 0)
        {
            PublishStats();
        }

        if (full && sw.ElapsedMilliseconds > 500)
        {
            LogSlowCycle(sw.ElapsedMilliseconds, _engine.PendingCount);
        }
    }

    private async Task StartJobsAsync(List<JobStart> starts, CancellationToken ct)
    {
        // Assume: the engine holds the GPUs. Persist: write the starts in one transaction.
        var rows = PrepareStarts(starts);
        try
        {
            await using var db = _db.Create();
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            foreach (var (_, row) in rows)
            {
                db.Jobs.Update(row);
            }

            await db.SaveChangesAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Roll back: give the GPUs back and leave the jobs pending.
            LogStartWriteFailed(rows.Count, e);
            foreach (var (s, row) in rows)
            {
                _engine.StartFailed(s.JobId);
                ResetToPending(row);
            }

            return;
        }

        await RunStartsAsync(rows, ct);
    }

    /// <summary>Marks the rows of jobs the engine just placed as running (in memory; the caller writes them).</summary>
    private List<(JobStart Start, JobRow Row)> PrepareStarts(List<JobStart> starts)
    {
        var rows = new List<(JobStart Start, JobRow Row)>(starts.Count);
        foreach (var s in starts)
        {
            if (!_active.TryGetValue(s.JobId, out var row))
            {
                _engine.StartFailed(s.JobId);
                continue;
            }

            row.State = "running";
            row.StartTime = s.Time;
            row.Slots = JobMapping.FormatSlots(s.Placement, Fleet);
            row.Placement = s.Placement.Format(Fleet);
            row.HeldGpus = s.Placement.HeldGpuMilli / 1000.0;
            row.AllocationId = s.AllocationId;
            row.BackendId = null;
            rows.Add((s, row));
        }

        return rows;
    }

    /// <summary>
    /// Runs jobs whose start is on disk. A start refused for a reason in the job (its account, command or working directory)
    /// ends the job as failed with that reason and gives its GPUs back; a failure of the infrastructure gives the GPUs back
    /// and holds the job out of the queue for a back-off, up to <see cref="ServerOptions.MaxStartTries"/> tries.
    /// </summary>
    private async Task RunStartsAsync(List<(JobStart Start, JobRow Row)> rows, CancellationToken ct)
    {
        var started = new List<JobRow>(rows.Count);
        var failed = new List<JobRow>();
        var events = new List<EventRow>();
        foreach (var (s, row) in rows)
        {
            try
            {
                var runAs = await _accounts.ResolveAsync(row.User, row.Project, ct);
                var handle = await _backend.StartAsync(ToBackendJob(row, s.Placement) with { RunAs = runAs }, ct);
                row.BackendId = handle.ExternalId;
                row.StdoutPath = handle.StdoutPath;
                row.StderrPath = handle.StderrPath;
                started.Add(row);
                _startRetries.TryRemove(row.Id, out _);
                _metrics.Admitted(s.Time - row.SubmitTime);
            }
            catch (JobStartRejectedException e)
            {
                LogStartRejected(row.Id, e.Message);
                _engine.StartFailed(s.JobId);
                _engine.Cancel(s.JobId);
                FailUnstarted(row, "failed to start: " + e.Message);
                failed.Add(row);
                events.Add(Event("scheduler", "job.failed", $"job/{row.Id}", row.Project, row.Outcome));
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogBackendError("start", row.Id, e);
                _engine.StartFailed(s.JobId);
                ResetToPending(row);
                failed.Add(row);
                var failures = (_startRetries.TryGetValue(row.Id, out var r) ? r.Failures : 0) + 1;
                _engine.Cancel(s.JobId);
                if (failures >= _options.MaxStartTries)
                {
                    _startRetries.TryRemove(row.Id, out _);
                    FailUnstarted(row, $"failed to start: {failures} tries failed; the last: {e.Message}");
                    events.Add(Event("scheduler", "job.failed", $"job/{row.Id}", row.Project, row.Outcome));
                }
                else
                {
                    var wait = TimeSpan.FromTicks(Math.Min(_options.StartRetryMax.Ticks, _options.StartRetryMin.Ticks << Math.Min(failures - 1, 20)));
                    _startRetries[row.Id] = new StartRetry(failures, _time.GetUtcNow() + wait, e.Message);
                    events.Add(Event("scheduler", "job.start_failed", $"job/{row.Id}", row.Project, $"try {failures} of {_options.MaxStartTries}, next in {wait.TotalSeconds:0.#} s: {e.Message}"));
                }
            }
        }

        // The handles and the audit events ride with the next write (a crash before it is safe: on restart the
        // backend is asked again, and StartAsync is idempotent by job id).
        _deferredRows.AddRange(started);
        if (failed.Count > 0)
        {
            // Written as running a moment ago: put the pending or failed state on disk now.
            await using var db = _db.Create();
            foreach (var row in failed)
            {
                db.Jobs.Update(row);
            }

            db.Events.AddRange(events);
            await db.SaveChangesAsync(ct);
        }

        foreach (var row in started)
        {
            _deferredEvents.Add(Event("scheduler", "job.started", $"job/{row.Id}", row.Project, $"on {row.Placement}"));
        }
    }

    /// <summary>Ends a job that never ran: failed, no charge, out of the active set.</summary>
    private void FailUnstarted(JobRow row, string outcome)
    {
        ResetToPending(row);
        row.State = "failed";
        row.Outcome = outcome.Length > 2000 ? outcome[..2000] : outcome;
        row.EndTime = _time.GetUtcNow();
        _active.Remove(row.Id);
        _metrics.Outcome("failed");
    }

    /// <summary>Puts jobs whose start back-off has passed into the queue again; true when any went back.</summary>
    private bool ResubmitDueStarts()
    {
        if (_startRetries.IsEmpty)
        {
            return false;
        }

        var now = _time.GetUtcNow();
        var any = false;
        foreach (var (id, retry) in _startRetries)
        {
            if (retry.NextTry > now)
            {
                continue;
            }

            if (!_active.TryGetValue(id, out var row) || row.State != "pending")
            {
                _startRetries.TryRemove(id, out _);
                continue;
            }

            _startRetries[id] = retry with { NextTry = DateTimeOffset.MaxValue };
            if (_engine.GetJob(id) is null)
            {
                var r = _engine.Submit(JobMapping.ToSpec(row));
                if (!r.Accepted)
                {
                    _startRetries.TryRemove(id, out _);
                    FailUnstarted(row, "failed to start and could not be queued again: " + r.Error!.Message);
                    _deferredRows.Add(row);
                }
            }

            any = true;
        }

        return any;
    }

    private void AddDeferred(GpucDb db)
    {
        foreach (var row in _deferredRows.DistinctBy(r => r.Id))
        {
            if (db.Jobs.Local.FindEntry(row.Id) is null)
            {
                db.Jobs.Update(row);
            }
        }

        db.Events.AddRange(_deferredEvents);
    }

    private async Task FlushDeferredAsync(CancellationToken ct)
    {
        if (_deferredRows.Count == 0 && _deferredEvents.Count == 0)
        {
            return;
        }

        await using var db = _db.Create();
        db.ChangeTracker.AutoDetectChangesEnabled = false;
        AddDeferred(db);
        await db.SaveChangesAsync(ct);
        _deferredRows.Clear();
        _deferredEvents.Clear();
    }

    private static void ResetToPending(JobRow row)
    {
        row.State = "pending";
        row.StartTime = null;
        row.Slots = null;
        row.Placement = null;
        row.HeldGpus = 0;
        row.AllocationId = null;
        row.BackendId = null;
    }

    private BackendJob ToBackendJob(JobRow row, Placement placement)
    {
        var nodes = new List<AssignedNode>();
        var spec = JobMapping.ToSpec(row);
        var partition = Fleet.Partitions[placement.Partition];
        foreach (var (n, gpus) in placement.ByNode())
        {
            // Exactly the cores and memory this node gives the job (docs/scheduling.md): the backend passes or enforces them.
            var demand = ResourceDemand.PerNode(spec, partition, placement.Slots.Where(s => s.Node == n).Sum(s => s.Milli));
            var name = Fleet.Nodes[n].Name;
            var uuids = _discovered.TryGetValue(name, out var d)
                ? gpus.Select(g => d.Gpus.FirstOrDefault(x => x.Index == g)?.Uuid ?? "").ToList()
                : [];
            var share = placement.Slots.FirstOrDefault(s => s.Node == n) is { IsShare: true } slot ? slot.Milli / 1000.0 : (double?)null;
            nodes.Add(new AssignedNode(name, gpus, uuids, share)
            {
                Cpus = demand.Cpus > 0 ? demand.Cpus : null,
                MemoryMiB = demand.MemoryMiB > 0 ? demand.MemoryMiB : null,
            });
        }

        var env = new Dictionary<string, string>(JobMapping.Environment(row), StringComparer.Ordinal);
        return new BackendJob(row.Id, row.Name, row.Project, row.User, JobMapping.Command(row), row.WorkingDirectory, env, nodes,
            TimeSpan.FromSeconds(row.WalltimeSeconds), Path.Combine(_options.LogDirectory, row.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)), row.Checkpointable)
        {
            Attempt = row.Attempt,
            NotBefore = row.SubmitTime - TimeSpan.FromMinutes(1),
        };
    }

    // ---- Backend events and job ends ---------------------------------------------------------------------------

    private async Task<bool> PollBackendAsync(CancellationToken ct)
    {
        IReadOnlyList<BackendEvent> events;
        try
        {
            events = await _backend.PollAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            LogBackendError("poll", 0, e);
            return false;
        }

        foreach (var e in events)
        {
            switch (e.Kind)
            {
                case BackendEventKind.Started:
                    if (_active.TryGetValue(e.JobId, out var startedRow) && startedRow.State == "running" && _backendStarted.Add(e.JobId))
                    {
                        // The backend's own start (Slurm's StartTime, not when the engine placed it or this loop heard of
                        // it): what users see and what the charge runs from.
                        startedRow.StartTime = e.Time;
                        _deferredRows.Add(startedRow);
                    }

                    break;
                case BackendEventKind.NodeDown or BackendEventKind.NodeUp or BackendEventKind.NodeDraining when e.Node is not null:
                    var st = e.Kind == BackendEventKind.NodeDown ? NodeState.Down : e.Kind == BackendEventKind.NodeUp ? NodeState.Up : NodeState.Draining;
                    await ChangeNodeStateAsync(e.Node, st, e.Message ?? "reported by the backend", "backend", ct);
                    break;
                default:
                    if (!_active.TryGetValue(e.JobId, out var row) || row.State != "running")
                    {
                        break;
                    }

                    var outcome = e.Kind switch
                    {
                        _ when _preempting.Remove(e.JobId) => JobOutcome.Preempted,
                        _ when row.CancelRequested => JobOutcome.Cancelled,
                        BackendEventKind.Finished => e.ExitCode is null or 0 ? JobOutcome.Finished : JobOutcome.Failed,
                        BackendEventKind.Cancelled => JobOutcome.Cancelled,
                        BackendEventKind.WalltimeExceeded => JobOutcome.Walltime,
                        // The backend lost the run (not the job's fault): failed, and requeued if requeueable, keeping its place.
                        BackendEventKind.Lost => JobOutcome.NodeFailure,
                        _ => JobOutcome.Failed,
                    };
                    await EndJobAsync(e.JobId, outcome, e.Time, e.ExitCode, (e.Kind == BackendEventKind.Lost ? "lost: " : "") + (e.Message ?? (e.ExitCode is { } code ? $"exit code {code}" : "")), ct,
                        e.Kind == BackendEventKind.Lost ? "failed" : null);
                    break;
            }
        }

        return events.Count > 0;
    }

    /// <summary>Tells the engine a running job ended, then writes its end and its one ledger entry in one transaction.</summary>
    private async Task EndJobAsync(long id, JobOutcome outcome, DateTimeOffset at, int? exitCode, string why, CancellationToken ct, string? label = null)
    {
        var row = _active[id];
        // Charged from the backend's start where it reported one (row.StartTime, see PollBackendAsync), else the engine's.
        var end = _engine.Complete(id, outcome, at, _backendStarted.Remove(id) ? row.StartTime : null);
        await using var db = _db.Create();
        if (end.Charge is { } c)
        {
            db.Ledger.Add(new LedgerRow
            {
                JobId = id,
                Attempt = row.Attempt,
                AllocationId = c.AllocationId,
                Project = row.Project,
                User = row.User,
                Partition = c.Partition,
                HeldGpus = row.HeldGpus,
                Seconds = end.Start is { } s ? (end.End - s).TotalSeconds : 0,
                GpuHours = c.GpuHours,
                Amount = c.Amount,
                Time = end.End,
            });
        }

        row.ExitCode = exitCode;
        row.Outcome = (label ?? outcome.ToString().ToLowerInvariant()) + (why.Length > 0 ? ": " + why : "");
        if (end.Requeued)
        {
            ResetToPending(row);
            row.Attempt++;
            row.CancelRequested = false;
        }
        else
        {
            row.State = JobMapping.StateName(end.State);
            row.EndTime = end.End;
            _active.Remove(id);
            _metrics.Outcome(row.State);
        }

        AddDeferred(db);
        db.Jobs.Update(row);
        db.Events.Add(Event("scheduler", end.Requeued ? "job.requeued" : "job." + row.State, $"job/{id}", row.Project,
            $"{row.Outcome}; charged {end.Charge?.GpuHours ?? 0:0.####} GPU-hours"));
        await db.SaveChangesAsync(ct);
        _deferredRows.Clear();
        _deferredEvents.Clear();
    }

    /// <summary>Cancels a job: a pending one leaves the queue now; a running one is signalled and ends when the backend says so.</summary>
    public Task<bool> CancelAsync(long id, string actor) => RunAsync(async engine =>
    {
        if (!_active.TryGetValue(id, out var row))
        {
            return false;
        }

        await using var db = _db.Create();
        if (row.State == "pending")
        {
            if (engine.GetJob(id) is not null)
            {
                engine.Cancel(id); // a job held back after a failed start is not in the queue
            }

            _startRetries.TryRemove(id, out _);
            row.State = "cancelled";
            row.Outcome = "cancelled by " + actor;
            row.EndTime = _time.GetUtcNow();
            _active.Remove(id);
            _metrics.Outcome("cancelled");
        }
        else
        {
            row.CancelRequested = true;
        }

        db.Jobs.Update(row);
        db.Events.Add(Event(actor, "job.cancel", $"job/{id}", row.Project, row.State));
        await db.SaveChangesAsync();
        if (row.State == "running")
        {
            try
            {
                await _backend.CancelAsync(id, _options.CancelGrace, CancellationToken.None);
            }
            catch (Exception e)
            {
                LogBackendError("cancel", id, e);
            }
        }

        return true;
    });

    /// <summary>The engine's view of a live job (reason and estimated start while pending).</summary>
    public Task<JobView?> GetViewAsync(long id) => RunAsync(engine => Task.FromResult(engine.GetJob(id)));

    public Task ChangeNodeStateAsync(string node, NodeState state, string? reason, string actor) =>
        RunAsync(async _ =>
        {
            await ChangeNodeStateAsync(node, state, reason, actor, CancellationToken.None);
            if (_backend is INodeControl control)
            {
                // An operator's drain holds in the cluster manager too (Slurm: scontrol update state=drain), so that
                // nothing else schedules onto the node either; down is a drain there, not a kill.
                try
                {
                    if (state == NodeState.Up)
                    {
                        await control.ResumeNodeAsync(node, CancellationToken.None);
                    }
                    else
                    {
                        await control.DrainNodeAsync(node, reason ?? $"drained by {actor} in GpuCommons", CancellationToken.None);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogBackendError("node " + state.ToString().ToLowerInvariant(), 0, e);
                }
            }

            return true;
        });

    private async Task ChangeNodeStateAsync(string node, NodeState state, string? reason, string actor, CancellationToken ct)
    {
        var ends = _engine.SetNodeState(node, state);
        await using var db = _db.Create();
        var existing = await db.NodeStates.FindAsync([node], ct);
        if (existing is null)
        {
            db.NodeStates.Add(new NodeStateRow { Node = node, State = state.ToString().ToLowerInvariant(), Reason = reason });
        }
        else
        {
            existing.State = state.ToString().ToLowerInvariant();
            existing.Reason = reason;
        }

        db.Events.Add(Event(actor, "node." + state.ToString().ToLowerInvariant(), $"node/{node}", null, reason));
        await db.SaveChangesAsync(ct);
        var states = new Dictionary<string, (NodeState, string?)>(NodeStates, StringComparer.Ordinal) { [node] = (state, reason) };
        NodeStates = states;
        foreach (var end in ends)
        {
            // The engine already ended these; record them and stop what is left of them.
            if (_active.TryGetValue(end.JobId, out var row))
            {
                _backendStarted.Remove(row.Id);
                await using var db2 = _db.Create();
                if (end.Charge is { } c)
                {
                    db2.Ledger.Add(new LedgerRow { JobId = row.Id, Attempt = row.Attempt, AllocationId = c.AllocationId, Project = row.Project, User = row.User, Partition = c.Partition, HeldGpus = row.HeldGpus, Seconds = end.Start is { } s ? (end.End - s).TotalSeconds : 0, GpuHours = c.GpuHours, Amount = c.Amount, Time = end.End });
                }

                if (end.Requeued)
                {
                    ResetToPending(row);
                    row.Attempt++;
                }
                else
                {
                    row.State = JobMapping.StateName(end.State);
                    row.EndTime = end.End;
                    row.Outcome = "node failure";
                    _active.Remove(row.Id);
                }

                db2.Jobs.Update(row);
                await db2.SaveChangesAsync(ct);
                try
                {
                    await _backend.CancelAsync(row.Id, TimeSpan.Zero, ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogBackendError("cancel", row.Id, e);
                }
            }
        }
    }

    // ---- Tenancy changes at run time ---------------------------------------------------------------------------

    public void OnProjectAdded(string project, string orgType) => _projectClass[project] = orgType;

    /// <summary>Adds or updates an allocation in the engine (called on the loop after it is written).</summary>
    internal async Task UpsertAllocationAsync(AllocationRow row)
    {
        await using var db = _db.Create();
        var spent = await db.Ledger.Where(l => l.AllocationId == row.Id).SumAsync(l => (double?)l.GpuHours) ?? 0;
        _allocations[row.Id] = row;
        _engine.UpsertAllocation(ToSpec(row, spent));
    }

    /// <summary>Granted, spent, committed GPU-hours of every allocation, from the engine.</summary>
    public Task<Dictionary<string, (double Granted, double Spent, double Committed)>> AllocationUsageAsync() => RunAsync(engine =>
    {
        var d = new Dictionary<string, (double, double, double)>(StringComparer.Ordinal);
        foreach (var id in _allocations.Keys)
        {
            if (engine.GetAllocationUsage(id) is { } u)
            {
                d[id] = u;
            }
        }

        return Task.FromResult(d);
    });

    private void PublishStats()
    {
        var stats = _engine.GetStats();
        _metrics.GpusAllocated = stats.AllocatedGpus;
        _metrics.GpusTotal = stats.TotalGpus;
        _metrics.GpusUp = stats.UpGpus;
        _metrics.Running = stats.RunningJobs;
        _metrics.Cycles = _engine.Cycles;
        var byClass = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in _projectClass.Values.Distinct())
        {
            byClass[c.ToLowerInvariant()] = 0;
        }

        foreach (var row in _active.Values)
        {
            if (row.State == "pending")
            {
                var c = _projectClass.GetValueOrDefault(row.Project, "unknown").ToLowerInvariant();
                byClass[c] = byClass.GetValueOrDefault(c) + 1;
            }
        }

        _metrics.QueueByClass = byClass;
    }

    // ---- Alerts ------------------------------------------------------------------------------------------------

    private async Task CheckAlertsAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var alerts = new List<EventRow>();
        var changed = new List<AllocationRow>();
        foreach (var a in _allocations.Values)
        {
            var usage = _engine.GetAllocationUsage(a.Id);
            if (usage is null)
            {
                continue;
            }

            var (granted, spent, _) = usage.Value;
            var fraction = granted > 0 ? spent / granted : 0;
            var before = a.AlertsSent;
            void Raise(int bit, string what)
            {
                if ((a.AlertsSent & (1 << bit)) == 0)
                {
                    a.AlertsSent |= 1 << bit;
                    alerts.Add(Event("scheduler", "allocation.alert", $"allocation/{a.Id}", a.Project, what));
                }
            }

            if (fraction >= 0.5)
            {
                Raise(0, $"50% used ({spent:0.##} of {granted:0.##} GPU-hours)");
            }

            if (fraction >= 0.8)
            {
                Raise(1, $"80% used ({spent:0.##} of {granted:0.##} GPU-hours)");
            }

            if (fraction >= 1.0)
            {
                Raise(2, $"100% used ({spent:0.##} of {granted:0.##} GPU-hours): new jobs are not admitted");
            }

            if (a.End > now && a.End - now <= _options.ExpiryWarning)
            {
                Raise(3, $"expires at {a.End:u}");
            }

            if (a.End <= now)
            {
                Raise(4, $"expired at {a.End:u}");
            }

            if (a.AlertsSent != before)
            {
                changed.Add(a);
            }
        }

        if (alerts.Count == 0)
        {
            return;
        }

        await using (var db = _db.Create())
        {
            foreach (var a in changed)
            {
                db.Allocations.Update(a);
            }

            db.Events.AddRange(alerts);
            await db.SaveChangesAsync(ct);
        }

        _webhook?.Poke();
    }

    internal EventRow Event(string actor, string kind, string subject, string? project, string? detail) =>
        new() { Time = _time.GetUtcNow(), Actor = actor, Kind = kind, Subject = subject, Project = project, Detail = detail };

    // ---- Logging -----------------------------------------------------------------------------------------------

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "fleet from backend {Backend} ({Source}): {Nodes} nodes, {Gpus} GPUs, virtual={Virtual} {Note}")]
    private partial void LogFleet(string backend, string source, int nodes, int gpus, bool @virtual, string note);

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

    [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "job {JobId} rejected while restoring: {Reason}")]
    private partial void LogRestoreRejected(long jobId, string reason);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "reservation {Name} skipped: {Reason}")]
    private partial void LogReservationSkipped(string name, string reason);

    [LoggerMessage(EventId = 109, Level = LogLevel.Warning, Message = "full cycle took {Ms} ms with {Pending} pending")]
    private partial void LogSlowCycle(long ms, int pending);

    [LoggerMessage(EventId = 110, Level = LogLevel.Warning, Message = "webhook {Url} failed: {Reason}")]
    private partial void LogWebhookFailed(string url, string reason);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "quota of {Tenant} on partition {Partition} left out: the fleet has no such partition")]
    private partial void LogQuotaSkipped(string tenant, string partition);
}
