using System.Collections.Concurrent;
using System.Globalization;
using GpuCommons.Backends.Slurm.Parsing;
using GpuCommons.Core.Fleet;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace GpuCommons.Backends.Slurm;

/// <summary>
/// Runs GpuCommons jobs on a Slurm cluster through its command-line tools. The engine decides placement; each job is
/// submitted pinned there (<c>--nodelist</c>, <c>--gpus-per-node</c>) under the name <c>gpuc-&lt;id&gt;</c>, which makes
/// submission idempotent: before the first submission after a start, every job in Slurm named like ours is indexed
/// (<c>squeue</c> + <c>sacct</c>), and a job found there is adopted instead of submitted again. Slurm is the truth for
/// what runs: <see cref="PollAsync"/> turns <c>squeue</c>/<c>sacct</c> state into events and never guesses a state
/// from output it could not read.
/// </summary>
public sealed class SlurmBackend : IJobBackend, INodeControl
{
    private readonly SlurmBackendOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<long, TrackedJob> _jobs = [];
    private readonly HashSet<string> _uncertain = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim[] _startLocks;
    private readonly SemaphoreSlim _indexLock = new(1, 1);
    private readonly Dictionary<string, NodeState> _nodeStates = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _nodePartition = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Account, string Login), bool> _associations = new();
    private readonly ConcurrentDictionary<string, int> _uids = new(StringComparer.Ordinal);
    private NameIndex? _index;
    private bool _nodeBaseline;

    public SlurmBackend(SlurmBackendOptions? options = null, ISlurmCommandRunner? runner = null, TimeProvider? time = null, ILogger<SlurmBackend>? logger = null)
    {
        _options = options ?? new SlurmBackendOptions();
        _options.Validate();
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        Client = new SlurmClient(runner ?? new ProcessSlurmCommandRunner(_options.BinDirectory, _time, _options.CommandNiceness), _options, _time, _logger);
        _startLocks = new SemaphoreSlim[64];
        for (var i = 0; i < _startLocks.Length; i++)
        {
            _startLocks[i] = new SemaphoreSlim(1, 1);
        }
    }

    public string Name => "slurm";

    /// <inheritdoc />
    public string RunScope => "slurm:" + _options.JobNamePrefix;

    public SlurmBackendOptions Options => _options;

    public SlurmClient Client { get; }

    /// <summary>Whether slurmctld answers; drives back-off. The server may skip starts while it is unavailable.</summary>
    public SlurmHealth Health => Client.Health;

    /// <summary>What the last successful poll read from Slurm.</summary>
    public SlurmSnapshot? LastSnapshot { get; private set; }

    /// <summary>The Slurm job id of a job this backend tracks.</summary>
    public long? SlurmJobIdOf(long jobId)
    {
        lock (_lock)
        {
            return _jobs.TryGetValue(jobId, out var t) ? t.SlurmId : null;
        }
    }

    public async Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken)
    {
        var parsed = await Client.NodesAsync(cancellationToken).ConfigureAwait(false);
        var nodes = new List<DiscoveredNode>();
        foreach (var group in parsed.Rows.GroupBy(r => r.Name, StringComparer.Ordinal))
        {
            var rows = group.ToList();
            var main = rows.FirstOrDefault(r => r.DefaultPartition) ?? rows[0];
            var model = main.GpuType ?? "GPU";
            var state = SlurmNodeStates.Categorize(main.State);
            var gpus = new List<DiscoveredGpu>(main.Gpus);
            for (var i = 0; i < main.Gpus; i++)
            {
                gpus.Add(new DiscoveredGpu(i, $"slurm:{main.Name}:gpu{i}", model, 0));
            }

            nodes.Add(new DiscoveredNode(main.Name, main.Partition, model, gpus, SlurmNodeStates.Word(state), main.Reason)
            {
                Cpus = main.Cpus,
                MemoryMiB = main.MemoryMiB,
                Features = main.Features,
            });
            lock (_lock)
            {
                _nodePartition[main.Name] = main.Partition;
                _nodeStates[main.Name] = state;
            }
        }

        lock (_lock)
        {
            _nodeBaseline = true;
        }

        var note = "from sinfo: GPU counts and types from GRES, CPUs, RealMemory and features; Slurm reports no GPU UUIDs or GPU memory";
        if (!parsed.Clean)
        {
            note += $"; {parsed.Errors.Count} unreadable sinfo line(s) skipped: {parsed.Errors[0]}";
        }

        return new DiscoveredFleet("slurm", nodes, VirtualGpus: false, note);
    }

    public async Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        RefuseForbiddenIdentity(job);
        var gate = _startLocks[(int)(job.JobId & 63)];
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            bool uncertain;
            string name;
            lock (_lock)
            {
                if (_jobs.TryGetValue(job.JobId, out var known))
                {
                    if (known.EndReported && job.Attempt <= known.Attempt)
                    {
                        // Its end was reported and the server starts it again (a requeue that did not count attempts):
                        // a new run under the next attempt's name.
                        job = job with { Attempt = known.Attempt + 1 };
                    }
                    else if (known.Attempt == job.Attempt)
                    {
                        return known.Handle;
                    }
                }

                name = SlurmJobName.Format(_options.JobNamePrefix, job.JobId, job.Attempt);
                uncertain = _uncertain.Contains(name);
            }

            // 1. An earlier sbatch of this job ended without a clear answer: ask Slurm by name first.
            if (uncertain)
            {
                var found = await LookUpByNameAsync(name, cancellationToken).ConfigureAwait(false);
                if (found is not null && await CancelIfHeldByAnotherAsync(found, cancellationToken).ConfigureAwait(false))
                {
                    found = null;
                }

                if (found is not null && !(job.NotBefore is { } nb && found.Submit is { } sub && sub < nb))
                {
                    return Adopt(job, name, found);
                }

                lock (_lock)
                {
                    _uncertain.Remove(name);
                }
            }

            // 2. After a (re)start of this process: everything named like ours, indexed once.
            var index = await EnsureIndexAsync(cancellationToken).ConfigureAwait(false);
            var existing = index.TakeFor(job.JobId, job.Attempt, name, job.NotBefore);
            if (existing is not null && !await CancelIfHeldByAnotherAsync(existing, cancellationToken).ConfigureAwait(false))
            {
                return Adopt(job, existing.Name, existing);
            }

            // 3. Submit, as the job's own account when it names one.
            var partition = await PartitionOfAsync(job.Nodes.Count > 0 ? job.Nodes[0].Node : null, cancellationToken).ConfigureAwait(false);
            SlurmSubmission submission;
            var fence = Fenced ? _options.StartFence : null;
            try
            {
                submission = SlurmSubmission.Create(job, _options, partition);
                if (fence is not null)
                {
                    submission = submission with { Arguments = [.. submission.Arguments.Take(1), "--hold", .. submission.Arguments.Skip(1)] };
                }
            }
            catch (ArgumentException e)
            {
                throw Rejected(job, $"cannot be submitted to Slurm: {e.Message}", e);
            }

            var login = await PrepareIdentityAsync(job, cancellationToken).ConfigureAwait(false);
            if (job.RunAs is null)
            {
                TryCreateDirectory(job.LogDirectory);
            }

            await EnsureAssociationAsync(job, login, cancellationToken).ConfigureAwait(false);
            if (job.Container is not null && _options.ContainerMode == SlurmContainerMode.Oci)
            {
                await WriteBundleAsync(job, cancellationToken).ConfigureAwait(false);
            }

            long slurmId;
            try
            {
                if (_options.CheckWorkingDirectory && job.Container is null && job.WorkingDirectory is { } wd
                    && !await Client.CanEnterAsync(wd, login, cancellationToken, job.RunAs?.Group).ConfigureAwait(false))
                {
                    throw Rejected(job, $"{login ?? "the server's account"} cannot enter its working directory '{wd}' (it does not exist, is not a directory, or is not searchable for that account)");
                }

                slurmId = await Client.SubmitAsync(submission, cancellationToken, login, job.RunAs?.Group).ConfigureAwait(false);
            }
            catch (SlurmException e) when (e.IsTransient)
            {
                lock (_lock)
                {
                    _uncertain.Add(name);
                }

                Log.SubmitUncertain(_logger, job.JobId, e.Message);
                throw;
            }
            catch (SlurmException e) when (e.Kind == SlurmFailureKind.JobRejected)
            {
                throw Rejected(job, $"Slurm refused it: {e.Message}", e);
            }
            catch (SlurmException e)
            {
                Log.SubmitRefused(_logger, job.JobId, e.Message);
                throw;
            }
            catch (OperationCanceledException)
            {
                // Cancelled while sbatch ran: it may have reached slurmctld.
                lock (_lock)
                {
                    _uncertain.Add(name);
                }

                throw;
            }

            if (fence is not null)
            {
                // Submitted held: it runs only if this server still leads now. Otherwise it is withdrawn (the next leader
                // cancels a held job it finds, too, should this server stop right here).
                if (!await fence(cancellationToken).ConfigureAwait(false))
                {
                    Log.StartFenced(_logger, job.JobId, slurmId, name);
                    await Client.CancelAsync(slurmId, name, null, CancellationToken.None).ConfigureAwait(false);
                    throw new SlurmStartFencedException($"start of job {job.JobId} withdrawn: this server no longer leads (Slurm job {slurmId} cancelled while held)");
                }

                try
                {
                    await Client.ReleaseAsync(slurmId, cancellationToken).ConfigureAwait(false);
                }
                catch (SlurmException e)
                {
                    // Held, or cancelled meanwhile by a new leader: the next start looks it up by name.
                    lock (_lock)
                    {
                        _uncertain.Add(name);
                    }

                    Log.SubmitUncertain(_logger, job.JobId, "release failed: " + e.Message);
                    throw;
                }
            }

            var tracked = new TrackedJob(job.JobId, job.Attempt, slurmId, name, job.Nodes.Select(n => n.Node).ToArray(), _time.GetUtcNow(),
                submission.StdoutPath, submission.StderrPath) { Login = login };
            lock (_lock)
            {
                _jobs[job.JobId] = tracked;
            }

            Log.Submitted(_logger, job.JobId, slurmId, name, string.Join(',', tracked.Nodes));
            return tracked.Handle;
        }
        finally
        {
            gate.Release();
        }
    }

    public async Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken)
    {
        TrackedJob? t;
        lock (_lock)
        {
            _jobs.TryGetValue(jobId, out t);
        }

        if (t is null)
        {
            // Not started by this process: cancel whatever Slurm runs under this job's names.
            var index = await EnsureIndexAsync(cancellationToken).ConfigureAwait(false);
            var rows = index.ActiveFor(jobId);
            foreach (var row in rows)
            {
                Log.Cancelling(_logger, jobId, row.SlurmJobId, null, 0);
                await Client.CancelAsync(row.SlurmJobId, row.Name, null, cancellationToken).ConfigureAwait(false);
            }

            string[] names;
            lock (_lock)
            {
                names = _uncertain.Where(n => SlurmJobName.TryParse(_options.JobNamePrefix, n, out var id, out _) && id == jobId).ToArray();
            }

            foreach (var n in names)
            {
                await Client.CancelAsync(null, n, null, cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        string? signal = null;
        lock (_lock)
        {
            t.CancelRequested = true;
            if (grace > TimeSpan.Zero && t.LastState is { } s && s.IsActive())
            {
                signal = _options.CheckpointSignal;
                t.KillAt = _time.GetUtcNow() + grace;
            }
        }

        Log.Cancelling(_logger, jobId, t.SlurmId, signal, signal is null ? 0 : grace.TotalSeconds);
        await CancelAsOwnerAsync(t, signal, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// scancel as the job's own account (Slurm logs who cancelled, and a user may cancel only their own jobs); when that
    /// fails for a reason other than an unreachable controller (the account was removed meanwhile), as the server.
    /// </summary>
    private async Task CancelAsOwnerAsync(TrackedJob t, string? signal, CancellationToken ct)
    {
        if (t.Login is { } login)
        {
            try
            {
                await Client.CancelAsync(t.SlurmId, t.Name, signal, ct, login).ConfigureAwait(false);
                return;
            }
            catch (SlurmException e) when (!e.IsTransient)
            {
                Log.CancelAsUserFailed(_logger, t.JobId, login, e.Message);
            }
        }

        await Client.CancelAsync(t.SlurmId, t.Name, signal, ct).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken)
    {
        var events = new List<BackendEvent>();
        if (!Health.MayTry())
        {
            return events;
        }

        try
        {
            await KillDueAsync(cancellationToken).ConfigureAwait(false);
            var nodes = await Client.NodesAsync(cancellationToken).ConfigureAwait(false);
            var queue = await Client.QueueAsync(cancellationToken).ConfigureAwait(false);
            NodeEvents(nodes.Rows, events);

            TrackedJob[] open;
            lock (_lock)
            {
                open = _jobs.Values.Where(j => !j.EndReported).ToArray();
            }

            var bySlurm = new Dictionary<long, SlurmJobRow>(queue.Rows.Count);
            foreach (var r in queue.Rows)
            {
                bySlurm[r.SlurmJobId] = r;
            }

            // Jobs that ended or that the controller no longer holds: the accounting record has the exit code.
            var needFinal = new List<long>();
            foreach (var t in open)
            {
                if (!bySlurm.TryGetValue(t.SlurmId, out var r) || r.State.IsTerminal())
                {
                    needFinal.Add(t.SlurmId);
                }
            }

            var (final, finalComplete) = await FinalRecordsAsync(needFinal, bySlurm, cancellationToken).ConfigureAwait(false);
            var errors = new List<SlurmParseError>(queue.Errors);
            errors.AddRange(nodes.Errors);
            var now = _time.GetUtcNow();
            foreach (var t in open)
            {
                JobEvents(t, bySlurm.GetValueOrDefault(t.SlurmId), final.GetValueOrDefault(t.SlurmId), queue.Clean && finalComplete, now, events);
            }

            LastSnapshot = new SlurmSnapshot(now, queue.Rows, final.Values.ToList(), nodes.Rows, errors);
        }
        catch (SlurmException e) when (e.IsTransient)
        {
            // Logged by the client; back-off is in Health. Nothing is guessed: jobs keep their last known state.
        }

        return events;
    }

    public async Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handle);
        if (!long.TryParse(handle.ExternalId, NumberStyles.None, CultureInfo.InvariantCulture, out var slurmId))
        {
            return false;
        }

        lock (_lock)
        {
            if (_jobs.TryGetValue(jobId, out var known) && known.SlurmId == slurmId)
            {
                return true;
            }
        }

        var index = await EnsureIndexAsync(cancellationToken).ConfigureAwait(false);
        var row = index.BySlurmId(slurmId);
        if (row is null || !SlurmJobName.TryParse(_options.JobNamePrefix, row.Name, out var id, out var attempt) || id != jobId)
        {
            return false;
        }

        var t = new TrackedJob(jobId, attempt, slurmId, row.Name, row.Nodes.ToArray(), row.Submit ?? _time.GetUtcNow(), handle.StdoutPath, handle.StderrPath)
        {
            LastState = row.State,
            // Its start is reported again, with Slurm's own start time: the server that started it may have died before
            // it heard of the start, and the charge runs from Slurm's start, not from when that server placed the job.
            StartReported = false,
        };
        lock (_lock)
        {
            _jobs[jobId] = t;
        }

        index.Take(row.Name);
        return true;
    }

    public async Task DrainNodeAsync(string node, string reason, CancellationToken cancellationToken)
    {
        var r = "gpuc: " + (string.IsNullOrWhiteSpace(reason) ? "drained by operator" : reason.Replace('\n', ' '));
        await Client.UpdateNodeAsync(node, "drain", r, cancellationToken).ConfigureAwait(false);
        Log.NodeUpdated(_logger, node, "drain", r);
    }

    public async Task ResumeNodeAsync(string node, CancellationToken cancellationToken)
    {
        await Client.UpdateNodeAsync(node, "resume", null, cancellationToken).ConfigureAwait(false);
        Log.NodeUpdated(_logger, node, "resume", null);
    }

    /// <summary>Sets a node down in Slurm (its jobs fail); for operators and tests.</summary>
    public async Task SetNodeDownAsync(string node, string reason, CancellationToken cancellationToken)
    {
        var r = "gpuc: " + reason.Replace('\n', ' ');
        await Client.UpdateNodeAsync(node, "down", r, cancellationToken).ConfigureAwait(false);
        Log.NodeUpdated(_logger, node, "down", r);
    }

    /// <summary>Forgets the name index so that the next submission re-reads Slurm (as after a restart).</summary>
    public void InvalidateIndex()
    {
        lock (_lock)
        {
            _index = null;
        }
    }

    public ValueTask DisposeAsync()
    {
        _indexLock.Dispose();
        foreach (var s in _startLocks)
        {
            s.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>With a start fence, every start is released right after its sbatch; one still held is ours only by name.</summary>
    private bool Fenced => _options.StartFence is not null && !_options.ExtraSbatchArguments.Any(a => a is "--hold" or "-H");

    /// <summary>
    /// A pending job of this name held by its submitter: a start whose server lost the lease (or died) between sbatch and
    /// release. It never ran; it is cancelled here, and the caller submits its own.
    /// </summary>
    private async Task<bool> CancelIfHeldByAnotherAsync(SlurmJobRow row, CancellationToken ct)
    {
        if (!Fenced || row.State != SlurmJobState.Pending || row.Reason is not { } reason || !reason.StartsWith("JobHeld", StringComparison.Ordinal))
        {
            return false;
        }

        Log.HeldCancelled(_logger, row.SlurmJobId, row.Name);
        await Client.CancelAsync(row.SlurmJobId, row.Name, null, ct).ConfigureAwait(false);
        return true;
    }

    private BackendHandle Adopt(BackendJob job, string name, SlurmJobRow row)
    {
        var logDirectory = SlurmSubmission.LogDirectoryFor(job, _options);
        var stdout = Path.Combine(logDirectory, name + ".out");
        var stderr = Path.Combine(logDirectory, name + ".err");
        var attempt = SlurmJobName.TryParse(_options.JobNamePrefix, name, out _, out var a) ? a : job.Attempt;
        var t = new TrackedJob(job.JobId, attempt, row.SlurmJobId, name, job.Nodes.Select(n => n.Node).ToArray(), row.Submit ?? _time.GetUtcNow(), stdout, stderr)
        {
            Login = job.RunAs?.User,
        };
        lock (_lock)
        {
            _jobs[job.JobId] = t;
            _uncertain.Remove(name);
        }

        Log.Adopted(_logger, job.JobId, row.SlurmJobId, name, row.State.ToString());
        return t.Handle;
    }

    private async Task<SlurmJobRow?> LookUpByNameAsync(string name, CancellationToken ct)
    {
        var q = await Client.QueueAsync(ct, name).ConfigureAwait(false);
        var rows = q.Rows.Where(r => r.Name == name).ToList();
        if (rows.Count == 0 && _options.UseAccounting)
        {
            var a = await Client.AccountingSinceAsync(_time.GetUtcNow() - _options.AccountingLookback, ct, name).ConfigureAwait(false);
            rows = a.Rows.Where(r => r.Name == name).ToList();
            ThrowIfUnsure(a.Errors, name);
        }

        ThrowIfUnsure(q.Errors, name);
        return rows.OrderByDescending(r => r.SlurmJobId).FirstOrDefault();
    }

    private void ThrowIfUnsure(IReadOnlyList<SlurmParseError> errors, string? name)
    {
        // A line we could not read might be one of our jobs: submitting now could submit it twice.
        foreach (var e in errors)
        {
            if (name is null ? e.Text.Contains(_options.JobNamePrefix, StringComparison.Ordinal) : e.Text.Contains(name, StringComparison.Ordinal))
            {
                throw new SlurmException($"cannot tell whether a job named like ours exists: {e}", false, e.Command);
            }
        }
    }

    private async Task<NameIndex> EnsureIndexAsync(CancellationToken ct)
    {
        lock (_lock)
        {
            if (_index is not null)
            {
                return _index;
            }
        }

        await _indexLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            lock (_lock)
            {
                if (_index is not null)
                {
                    return _index;
                }
            }

            var q = await Client.QueueAsync(ct).ConfigureAwait(false);
            ThrowIfUnsure(q.Errors, null);
            var rows = new Dictionary<long, SlurmJobRow>();
            if (_options.UseAccounting)
            {
                var a = await Client.AccountingSinceAsync(_time.GetUtcNow() - _options.AccountingLookback, ct).ConfigureAwait(false);
                ThrowIfUnsure(a.Errors, null);
                foreach (var r in a.Rows)
                {
                    if (SlurmJobName.TryParse(_options.JobNamePrefix, r.Name, out _, out _))
                    {
                        rows[r.SlurmJobId] = r;
                    }
                }
            }

            foreach (var r in q.Rows)
            {
                if (SlurmJobName.TryParse(_options.JobNamePrefix, r.Name, out _, out _))
                {
                    rows[r.SlurmJobId] = r; // the controller's view is newer than accounting's
                }
            }

            var index = new NameIndex(_options.JobNamePrefix, rows.Values);
            lock (_lock)
            {
                // Jobs this process already tracks are not candidates for adoption.
                foreach (var t in _jobs.Values)
                {
                    index.Take(t.Name);
                }

                _index = index;
            }

            return index;
        }
        finally
        {
            _indexLock.Release();
        }
    }

    private async Task<string?> PartitionOfAsync(string? node, CancellationToken ct)
    {
        if (_options.Partition is not null || node is null)
        {
            return _options.Partition;
        }

        lock (_lock)
        {
            if (_nodePartition.TryGetValue(node, out var p))
            {
                return p;
            }
        }

        await DiscoverAsync(ct).ConfigureAwait(false);
        lock (_lock)
        {
            return _nodePartition.GetValueOrDefault(node);
        }
    }

    private async Task KillDueAsync(CancellationToken ct)
    {
        TrackedJob[] due;
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            due = _jobs.Values.Where(j => j.KillAt is { } k && k <= now && !j.EndReported).ToArray();
        }

        foreach (var t in due)
        {
            await CancelAsOwnerAsync(t, null, ct).ConfigureAwait(false);
            lock (_lock)
            {
                t.KillAt = null;
            }
        }
    }

    /// <summary>Final records (exit code, start, end) for ended or vanished jobs: sacct, else scontrol for what the controller still holds.</summary>
    private async Task<(Dictionary<long, SlurmJobRow> Rows, bool Complete)> FinalRecordsAsync(List<long> ids, Dictionary<long, SlurmJobRow> queue, CancellationToken ct)
    {
        var result = new Dictionary<long, SlurmJobRow>();
        if (ids.Count == 0)
        {
            return (result, true);
        }

        var complete = true;
        if (_options.UseAccounting)
        {
            try
            {
                var a = await Client.AccountingAsync(ids, ct).ConfigureAwait(false);
                complete = a.Clean;
                foreach (var r in a.Rows)
                {
                    result[r.SlurmJobId] = r;
                }
            }
            catch (SlurmException e) when (e.IsTransient || e.Command?.StartsWith("sacct", StringComparison.Ordinal) == true)
            {
                complete = false; // slurmdbd down: no verdict on vanished jobs this pass
            }
        }

        // Ended in the controller but not (yet) final in accounting: the controller still has the exit code.
        var fromController = ids.Where(id => queue.TryGetValue(id, out var q) && q.State.IsTerminal()
            && (!result.TryGetValue(id, out var a) || !a.State.IsTerminal())).ToList();
        if (fromController.Count > 0)
        {
            var c = await Client.ControllerJobsAsync(fromController, ct).ConfigureAwait(false);
            foreach (var r in c.Rows)
            {
                if (r.State.IsTerminal())
                {
                    result[r.SlurmJobId] = r;
                }
            }
        }

        return (result, complete);
    }

    /// <summary>Polls an ended job waits for Slurm's end time before its end is reported at the poll's own time.</summary>
    private const int MaxEndWaits = 20;

    private void JobEvents(TrackedJob t, SlurmJobRow? queued, SlurmJobRow? final, bool verdictSafe, DateTimeOffset now, List<BackendEvent> events)
    {
        if (queued is null && (final is null || !final.State.IsTerminal()))
        {
            // Not in the controller, and no final accounting record: sacct may still say RUNNING for a job slurmctld lost.
            if (!verdictSafe)
            {
                return;
            }

            lock (_lock)
            {
                t.Missed++;
                if (t.Missed < _options.LostAfterMissedPolls)
                {
                    return;
                }

                t.EndReported = true;
            }

            Log.JobLost(_logger, t.JobId, t.SlurmId);
            // Never seen running (never submitted: its server stopped first, or gone before a poll saw it start): nothing
            // shows it ran.
            ReportNoRun(t, now, "was never seen running", events);

            events.Add(new BackendEvent(BackendEventKind.Lost, t.JobId, now, Message: $"Slurm job {t.SlurmId} ({t.Name}) is in neither squeue nor sacct"));
            return;
        }

        t.Missed = 0;
        var state = final is not null && final.State.IsTerminal() ? final.State : (queued ?? final)!.State;
        var row = final is not null && final.State.IsTerminal() ? final : queued ?? final!;
        var start = row.Start ?? queued?.Start;
        var nodes = row.Nodes.Count > 0 ? row.Nodes : queued?.Nodes ?? [];

        // Reported once Slurm gives its start time (a job just placed may show as active before squeue has one): the charge
        // runs from it, never from when this poll happened to look.
        if (!t.StartReported && start is not null && (state.IsActive() || state.IsTerminal()))
        {
            t.StartReported = true;
            var msg = $"Slurm job {t.SlurmId} on {string.Join(',', nodes)}";
            events.Add(new BackendEvent(BackendEventKind.Started, t.JobId, start.Value, Node: nodes.FirstOrDefault(), Message: msg));
            Log.JobEvent(_logger, t.JobId, t.SlurmId, BackendEventKind.Started, msg);
        }

        lock (_lock)
        {
            t.LastState = state;
        }

        if (!state.IsTerminal() || row.ExitCode is null && row.Source == "squeue")
        {
            return; // not ended, or ended without an exit code yet: wait for accounting, never guess
        }

        if (row.End is null && _options.UseAccounting && t.EndWaits++ < MaxEndWaits)
        {
            return; // ended, but no end time yet: the charge runs to Slurm's end, not to when this poll looked
        }

        var exit = row.ExitCode is int e && e != 0 ? e : row.Signal is int sig && sig != 0 ? 128 + sig : row.ExitCode ?? 0;
        var (kind, message) = state switch
        {
            SlurmJobState.Completed => (BackendEventKind.Finished, "completed"),
            SlurmJobState.Cancelled => (BackendEventKind.Cancelled, "cancelled in Slurm"),
            SlurmJobState.Preempted => (BackendEventKind.Cancelled, "preempted by Slurm"),
            SlurmJobState.Timeout => (BackendEventKind.WalltimeExceeded, "killed at its time limit"),
            SlurmJobState.Deadline => (BackendEventKind.WalltimeExceeded, "killed at its deadline"),
            SlurmJobState.NodeFail => (BackendEventKind.Failed, "node failure"),
            SlurmJobState.OutOfMemory => (BackendEventKind.Failed, "out of memory"),
            SlurmJobState.BootFail => (BackendEventKind.Failed, "node boot failure"),
            SlurmJobState.Revoked => (BackendEventKind.Lost, "revoked (federation)"),
            _ => (BackendEventKind.Failed, "failed"),
        };
        if (t.CancelRequested && kind is BackendEventKind.Failed or BackendEventKind.Finished)
        {
            (kind, message) = (BackendEventKind.Cancelled, $"cancelled by GpuCommons ({message} after the signal)");
        }

        string? node = null;
        if (state == SlurmJobState.NodeFail)
        {
            lock (_lock)
            {
                node = nodes.FirstOrDefault(n => _nodeStates.GetValueOrDefault(n) != NodeState.Up) ?? nodes.FirstOrDefault();
            }

            message += node is null ? "" : " on " + node;
        }

        var end = row.End ?? now;
        if (start is null)
        {
            // It never ran in Slurm (ended while pending or held).
            ReportNoRun(t, end, "never ran", events);
        }

        var text = $"Slurm job {t.SlurmId} {state.ToString().ToUpperInvariant()}: {message}; exit {exit}; {start:o} – {end:o}";
        lock (_lock)
        {
            t.EndReported = true;
            t.KillAt = null;
        }

        events.Add(new BackendEvent(kind, t.JobId, end, exit, node ?? nodes.FirstOrDefault(), text));
        Log.JobEvent(_logger, t.JobId, t.SlurmId, kind, text);
    }

    /// <summary>
    /// A job that ends (or is lost) with no start reported, because Slurm shows no run of it: reported as starting
    /// <paramref name="at"/> its end, so that its run lasts 0 s and is charged nothing, as sacct counts it (a charge would
    /// otherwise run from when the engine placed it).
    /// </summary>
    private static void ReportNoRun(TrackedJob t, DateTimeOffset at, string why, List<BackendEvent> events)
    {
        if (t.StartReported)
        {
            return;
        }

        t.StartReported = true;
        events.Add(new BackendEvent(BackendEventKind.Started, t.JobId, at, Message: $"Slurm job {t.SlurmId} {why}"));
    }

    private void NodeEvents(IReadOnlyList<SlurmNodeRow> rows, List<BackendEvent> events)
    {
        var now = _time.GetUtcNow();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in rows)
        {
            if (!seen.Add(r.Name))
            {
                continue;
            }

            if (SlurmNodeStates.IsUndetermined(r.State))
            {
                continue;
            }

            var state = SlurmNodeStates.Categorize(r.State);
            NodeState? before;
            bool baseline;
            lock (_lock)
            {
                before = _nodeStates.TryGetValue(r.Name, out var b) ? b : null;
                baseline = _nodeBaseline;
                _nodeStates[r.Name] = state;
                _nodePartition.TryAdd(r.Name, r.Partition);
            }

            if (before == state || (before is null && (state == NodeState.Up || baseline)))
            {
                continue;
            }

            var kind = state switch
            {
                NodeState.Down => BackendEventKind.NodeDown,
                NodeState.Draining => BackendEventKind.NodeDraining,
                _ => BackendEventKind.NodeUp,
            };
            Log.NodeChanged(_logger, r.Name, r.State, r.Reason);
            events.Add(new BackendEvent(kind, 0, now, Node: r.Name, Message: $"{r.State}{(r.Reason is null ? "" : ": " + r.Reason)}"));
        }

        lock (_lock)
        {
            _nodeBaseline = true;
        }
    }

    private JobStartRejectedException Rejected(BackendJob job, string reason, Exception? inner = null)
    {
        var message = $"job {job.JobId} {reason}";
        Log.StartRejected(_logger, job.JobId, message);
        return inner is null ? new JobStartRejectedException(message) : new JobStartRejectedException(message, inner);
    }

    /// <summary>Never as root, never as the server's own account (that is single-user mode, where <see cref="BackendJob.RunAs"/> is null).</summary>
    private void RefuseForbiddenIdentity(BackendJob job)
    {
        if (job.RunAs is not { } who)
        {
            return;
        }

        if (who.Uid == 0 || who.User == "root")
        {
            throw Rejected(job, $"would run as root (account '{who.User}', uid {who.Uid}): GpuCommons never runs a job as uid 0");
        }

        if (who.Uid == SlurmUserSwitch.ServerUid)
        {
            throw Rejected(job, $"would run as the GpuCommons server's own account (uid {who.Uid}): refused");
        }

        if (who.Gid == 0)
        {
            throw Rejected(job, $"would run with group root (gid 0) as its primary group: refused");
        }

        if (who.User.Length == 0 || who.User.StartsWith('-') || who.User.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '/' or ':'))
        {
            throw Rejected(job, $"names the account '{who.User}', which is not a valid login name");
        }
    }

    /// <summary>
    /// For a job with an identity: checks its login on this host (uid as the server maps it) and makes its spool directory
    /// (SPOOL/LOGIN/JOBID, the user's and the project group's, 0750). Returns the login to submit as, or null.
    /// </summary>
    private async Task<string?> PrepareIdentityAsync(BackendJob job, CancellationToken ct)
    {
        if (job.RunAs is not { } who)
        {
            return null;
        }

        var mode = SlurmUserSwitch.Resolve(_options.SubmitAs);
        if (mode == SlurmSubmitMode.Self)
        {
            throw new SlurmException($"job {job.JobId} runs as '{who.User}', but SubmitAs=Self submits only as the server's own account; set SubmitAs to Runuser or Sudo", false);
        }

        if (!_uids.TryGetValue(who.User, out var uid))
        {
            var found = await Client.UidOfAsync(who.User, ct).ConfigureAwait(false);
            if (found is null)
            {
                throw Rejected(job, $"runs as '{who.User}', but no such account exists on the Slurm submit host (getent passwd {who.User} finds nothing)");
            }

            uid = _uids.GetOrAdd(who.User, found.Value);
        }

        if (uid != who.Uid)
        {
            throw Rejected(job, $"runs as '{who.User}' with uid {who.Uid}, but that account has uid {uid} on the Slurm submit host");
        }

        var dir = SlurmSubmission.LogDirectoryFor(job, _options);
        var userDir = Path.GetDirectoryName(dir)!;
        var owner = who.Uid.ToString(CultureInfo.InvariantCulture) + ":" + who.Gid.ToString(CultureInfo.InvariantCulture);
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("jobs with an identity need a POSIX submit host");
        }

        if (mode == SlurmSubmitMode.Runuser)
        {
            // Root makes every level: the spool and the user's level root-owned 0711 (traversable, not listable, nothing a
            // tenant can rename), the job's own level 0750 for the user and the project's group.
            const UnixFileMode Traverse = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
            const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute;
            foreach (var level in new[] { _options.JobSpoolDirectory, userDir })
            {
                if (!Directory.Exists(level))
                {
                    Directory.CreateDirectory(level, Traverse);
                    File.SetUnixFileMode(level, Traverse);
                }
            }

            if (new DirectoryInfo(dir) is { Exists: true, LinkTarget: not null })
            {
                throw new SlurmException($"job {job.JobId}: its spool directory {dir} is a symbolic link; refusing to use it", false);
            }

            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.SetUnixFileMode(dir, Private);
            await Client.RunHelperAsync("chown", ["-h", owner, dir], null, ct).ConfigureAwait(false);
        }
        else
        {
            // sudo: the server cannot chown; the user makes the directory (the spool must be 1733, see README), and the
            // server checks that the user's level belongs to the user (a tenant could have made another's in advance).
            await Client.RunHelperAsync("install", ["-d", "-m", "0750", "-g", who.Gid.ToString(CultureInfo.InvariantCulture), dir], who.User, ct).ConfigureAwait(false);
            await Client.RunHelperAsync("install", ["-d", "-m", "0711", userDir], who.User, ct).ConfigureAwait(false);
            var stat = await Client.StatAsync([userDir, dir], ct).ConfigureAwait(false);
            if (stat.Any(s => s.Uid != who.Uid || s.Type != "directory"))
            {
                throw new SlurmException($"job {job.JobId}: spool directories {userDir}, {dir} are not directories owned by uid {who.Uid} ({string.Join("; ", stat)}); refusing to write its output there", false);
            }
        }

        return who.User;
    }

    /// <summary>
    /// Writes the job's own OCI bundle (<see cref="SlurmOciBundle"/>) from its image, for <c>sbatch --container</c>. With an
    /// identity it belongs to the job's user (0700 and 0600): a rootless runtime reads it as the user, and no other tenant
    /// can read the job's mounts or working directory from it.
    /// </summary>
    private async Task WriteBundleAsync(BackendJob job, CancellationToken ct)
    {
        var image = job.Container!.Image;
        if (!Directory.Exists(image))
        {
            throw Rejected(job, $"names the container image '{image}', which is not a directory on the Slurm submit host (an unpacked OCI bundle or root file system on the cluster's shared file system)");
        }

        var site = Path.Combine(image, "config.json");
        string config;
        string rootfs;
        IReadOnlyList<SlurmOciBundle.ImageEntry> entries;
        try
        {
            var siteConfig = File.Exists(site) ? await File.ReadAllTextAsync(site, ct).ConfigureAwait(false) : null;
            rootfs = SlurmOciBundle.RootFileSystem(image, siteConfig);
            if (!Directory.Exists(rootfs))
            {
                throw new ArgumentException($"the image's root file system {rootfs} is not a directory");
            }

            entries = SlurmOciBundle.ImageEntries(rootfs);
            config = SlurmOciBundle.BuildConfig(job, image, siteConfig, entries);
        }
        catch (ArgumentException e)
        {
            throw Rejected(job, $"cannot run in its container: {e.Message}", e);
        }

        var dir = SlurmSubmission.BundleDirectoryFor(job, _options);
        if (job.RunAs is not { } who)
        {
            Directory.CreateDirectory(dir);
            await File.WriteAllTextAsync(Path.Combine(dir, "config.json"), config, ct).ConfigureAwait(false);
            var own = Path.Combine(dir, "rootfs");
            Directory.CreateDirectory(own);
            foreach (var e in entries.Where(e => e.LinkTarget is not null && !Path.Exists(Path.Combine(own, e.Name))))
            {
                File.CreateSymbolicLink(Path.Combine(own, e.Name), e.LinkTarget!);
            }

            return;
        }

        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("jobs with an identity need a POSIX submit host");
        }

        // Made by the server in a private place, then installed into the job's spool directory as the user.
        var staging = Path.Combine(Path.GetTempPath(), "gpuc-bundle-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(staging, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherExecute);
        try
        {
            var file = Path.Combine(staging, "config.json");
            await File.WriteAllTextAsync(file, config, ct).ConfigureAwait(false);
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            await Client.RunHelperAsync("install", ["-d", "-m", "0700", dir], who.User, ct).ConfigureAwait(false);
            await Client.RunHelperAsync("install", ["-m", "0600", file, Path.Combine(dir, "config.json")], who.User, ct).ConfigureAwait(false);
            var own = Path.Combine(dir, "rootfs");
            await Client.RunHelperAsync("install", ["-d", "-m", "0700", own], who.User, ct).ConfigureAwait(false);
            foreach (var e in entries.Where(e => e.LinkTarget is not null))
            {
                await Client.RunHelperAsync("ln", ["-sfn", "--", e.LinkTarget!, Path.Combine(own, e.Name)], who.User, ct).ConfigureAwait(false);
            }
        }
        finally
        {
            Directory.Delete(staging, true);
        }
    }

    /// <summary>Creates the association (project account, login) once per pair, when <see cref="SlurmBackendOptions.ManageAssociations"/>.</summary>
    private async Task EnsureAssociationAsync(BackendJob job, string? login, CancellationToken ct)
    {
        if (!_options.ManageAssociations || !_options.UseAccounting || (login is null && SlurmUserSwitch.ServerUid != 0))
        {
            return;
        }

        var user = login ?? "root";
        var account = SlurmSubmission.AccountFor(job, _options);
        if (_associations.ContainsKey((account, user)))
        {
            return;
        }

        await Client.EnsureAssociationAsync(account, user, ct).ConfigureAwait(false);
        _associations[(account, user)] = true;
        Log.AssociationReady(_logger, user, account);
    }

    private static void TryCreateDirectory(string dir)
    {
        try
        {
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The directory may live on the compute nodes' shared file system only; Slurm reports it if it is missing.
        }
    }

    private sealed class TrackedJob(long jobId, int attempt, long slurmId, string name, string[] nodes, DateTimeOffset submitted, string? stdout, string? stderr)
    {
        public long JobId { get; } = jobId;
        public int Attempt { get; } = attempt;
        public long SlurmId { get; } = slurmId;
        public string Name { get; } = name;
        public string[] Nodes { get; } = nodes;
        public DateTimeOffset Submitted { get; } = submitted;
        public BackendHandle Handle { get; } = new(jobId, slurmId.ToString(CultureInfo.InvariantCulture), stdout, stderr);
        public SlurmJobState? LastState { get; set; }
        public bool StartReported { get; set; }
        public bool EndReported { get; set; }
        public int Missed { get; set; }
        public int EndWaits { get; set; }
        public bool CancelRequested { get; set; }
        public DateTimeOffset? KillAt { get; set; }

        /// <summary>The account the job was submitted as (null: the server's); it is cancelled as that account.</summary>
        public string? Login { get; init; }
    }

    /// <summary>Jobs in Slurm named like ours, read once after start; a job is taken out when it is adopted or tracked.</summary>
    private sealed class NameIndex
    {
        private readonly string _prefix;
        private readonly Dictionary<long, List<(int Attempt, SlurmJobRow Row)>> _byJob = [];
        private readonly Dictionary<long, SlurmJobRow> _bySlurm = [];
        private readonly Lock _lock = new();

        public NameIndex(string prefix, IEnumerable<SlurmJobRow> rows)
        {
            _prefix = prefix;
            foreach (var r in rows)
            {
                _bySlurm[r.SlurmJobId] = r;
                if (!SlurmJobName.TryParse(prefix, r.Name, out var id, out var attempt))
                {
                    continue;
                }

                if (!_byJob.TryGetValue(id, out var list))
                {
                    _byJob[id] = list = [];
                }

                list.Add((attempt, r));
            }
        }

        /// <summary>The newest Slurm job under <paramref name="name"/>, removed from the index.</summary>
        public SlurmJobRow? Take(string name, DateTimeOffset? notBefore = null)
        {
            if (!SlurmJobName.TryParse(_prefix, name, out var id, out var attempt))
            {
                return null;
            }

            lock (_lock)
            {
                if (!_byJob.TryGetValue(id, out var list))
                {
                    return null;
                }

                SlurmJobRow? best = null;
                foreach (var (a, r) in list)
                {
                    if (a == attempt && !Older(r, notBefore) && (best is null || r.SlurmJobId > best.SlurmJobId))
                    {
                        best = r;
                    }
                }

                list.RemoveAll(x => x.Attempt == attempt);
                return best;
            }
        }

        /// <summary>
        /// What to adopt for a start of (<paramref name="jobId"/>, <paramref name="attempt"/>): a live Slurm job of this
        /// attempt or a later one (a later attempt that is still running is never submitted again), else the newest
        /// job under <paramref name="name"/>. Taken out of the index.
        /// </summary>
        public SlurmJobRow? TakeFor(long jobId, int attempt, string name, DateTimeOffset? notBefore = null)
        {
            lock (_lock)
            {
                if (!_byJob.TryGetValue(jobId, out var list))
                {
                    return null;
                }

                (int Attempt, SlurmJobRow Row)? live = null;
                foreach (var x in list)
                {
                    if (x.Attempt >= attempt && !x.Row.State.IsTerminal() && !Older(x.Row, notBefore) && (live is null || x.Attempt > live.Value.Attempt))
                    {
                        live = x;
                    }
                }

                if (live is { } l)
                {
                    list.RemoveAll(x => x.Attempt == l.Attempt);
                    return l.Row;
                }
            }

            return Take(name, notBefore);
        }

        private static bool Older(SlurmJobRow row, DateTimeOffset? notBefore) => notBefore is { } nb && row.Submit is { } sub && sub < nb;

        public SlurmJobRow? BySlurmId(long id)
        {
            lock (_lock)
            {
                return _bySlurm.GetValueOrDefault(id);
            }
        }

        public List<SlurmJobRow> ActiveFor(long jobId)
        {
            lock (_lock)
            {
                return _byJob.TryGetValue(jobId, out var list)
                    ? list.Where(x => !x.Row.State.IsTerminal()).Select(x => x.Row).ToList()
                    : [];
            }
        }
    }
}
