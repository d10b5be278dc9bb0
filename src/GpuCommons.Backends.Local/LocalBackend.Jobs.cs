using System.Diagnostics;
using System.Globalization;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local;

public sealed partial class LocalBackend
{
    // The wrapper: logs to files, traps the signals a job may be sent (so the wrapper outlives them; the job itself gets
    // the default dispositions back on exec), runs the command in the foreground and records its exit code atomically.
    // A foreground command keeps SIGINT/SIGQUIT (a background one in a non-interactive sh would ignore them).
    internal const string WrapperScript =
        """
        out=$1; err=$2; ec=$3; shift 3
        exec </dev/null >>"$out" 2>>"$err" || exit 125
        while [ "$1" = --cgroup ]; do
          printf '%s\n' "$$" >"$2" || { printf 'gpuc: could not put the job in its cgroup (%s)\n' "$2" >&2; exit 125; }
          shift 2
        done
        trap 'gpuc_signal=1' HUP INT TERM USR1 USR2
        "$@"
        gpuc_code=$?
        (umask 077; printf '%s\n' "$gpuc_code" >"$ec.tmp") && mv -f "$ec.tmp" "$ec"
        exit "$gpuc_code"
        """;

    private const string StopCancel = "cancel";
    private const string StopWalltime = "walltime";

    /// <inheritdoc />
    public async Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(job);
        ObjectDisposedException.ThrowIf(_disposed, this);
        Validate(job);
        var account = ResolveAccount(job);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var directory = JobDirectory(job.JobId);
            if (_jobs.TryGetValue(job.JobId, out var running))
            {
                if (!running.File.EndReported)
                {
                    return running.Handle;
                }

                _jobs.Remove(job.JobId);
            }

            var previous = JobFile.Load(Path.Combine(directory, "job.json"));
            if (previous is { EndReported: false, Pid: 0 } && !AdoptInterruptedLaunch(previous))
            {
                previous = null; // the earlier backend died before it launched anything: launch now
            }

            if (previous is not null && !previous.EndReported)
            {
                // Started before (by this or an earlier backend) and its end not yet reported: the same run, not a new one.
                var known = new LocalJob(previous, directory);
                _jobs[job.JobId] = known;
                return known.Handle;
            }

            if (previous is not null)
            {
                // A new run of a job whose earlier run ended (a requeue): keep the earlier run's state beside it.
                Directory.Move(directory, FormattableString.Invariant($"{directory}.run-{previous.StartTicks}-{previous.Pid}"));
            }

            var (gpus, uuids, cuda) = await ResolveGpusAsync(job, cancellationToken).ConfigureAwait(false);
            // A container job's working directory is a path inside its container (podman --workdir), and its container
            // holds only its own GPUs' devices: nothing to check on the host, nothing to mask.
            var workingDirectory = job.Container is null
                ? await ResolveWorkingDirectoryAsync(job, account, cancellationToken).ConfigureAwait(false)
                : job.WorkingDirectory ?? "";
            var masked = job.Container is null ? DevicesToMask(gpus) : [];
            if (masked.Count > 0)
            {
                EnsureDeviceMask();
            }

            PrivateFiles.CreateDirectory(directory);
            var id = job.JobId.ToString(CultureInfo.InvariantCulture);
            var file = new JobFile
            {
                JobId = job.JobId,
                Name = job.Name,
                Stdout = Path.GetFullPath(Path.Combine(job.LogDirectory, $"job-{id}.out")),
                Stderr = Path.GetFullPath(Path.Combine(job.LogDirectory, $"job-{id}.err")),
                ExitCodePath = Path.GetFullPath(Path.Combine(directory, "exitcode")),
                WalltimeSeconds = job.Walltime.TotalSeconds,
                Checkpointable = job.Checkpointable,
                Node = NodeName,
                Gpus = gpus,
                GpuUuids = uuids,
                CudaVisibleDevices = cuda,
                BootId = Posix.BootId,
                Uid = account.Switch ? account.Uid : null,
                Gid = account.Switch ? account.Gid : null,
                WorkingDirectory = workingDirectory,
                Container = job.Container is null ? null : ContainerName(job.JobId),
            };
            File.Delete(file.ExitCodePath);
            AssignResources(job, file);
            var container = job.Container is null ? null : await PrepareContainerAsync(job, file, account, directory, cancellationToken).ConfigureAwait(false);
            PrepareLogs(job, file, account);
            if (container is null)
            {
                CreateCgroups(file);
            }

            NoteLimitsInLog(file);

            // Recorded before the launch: a backend that dies between the launch and the record below leaves this, and
            // its successor finds the wrapper by its command line instead of launching the job a second time.
            file.StartedAt = _time.GetUtcNow();
            new LocalJob(file, directory).Save();

            _envDefaultSignal ??= await ProbeEnvDefaultSignalAsync(cancellationToken).ConfigureAwait(false);
            var psi = BuildStartInfo(job, file, account, workingDirectory, masked, container);
            var process = new Process { StartInfo = psi };
            try
            {
                process.Start();
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                process.Dispose();
                File.Delete(Path.Combine(directory, "job.json")); // nothing was launched
                ReleaseCgroups(file, null);
                if (e.NativeErrorCode == E2big)
                {
                    throw new JobStartRejectedException($"Job {job.JobId}: its command line and environment are larger than the kernel takes (E2BIG).", e);
                }

                throw new InvalidOperationException($"Job {job.JobId}: could not start '{psi.FileName}': {e.Message}", e);
            }

            file.StartedAt = _time.GetUtcNow();
            file.Pid = process.Id;
            var stat = await SessionLeaderStatAsync(process, CancellationToken.None).ConfigureAwait(false);
            file.StartTicks = stat?.StartTime ?? 0;
            var local = new LocalJob(file, directory) { Process = process, SeenAlive = stat is not null };
            local.Save();
            _jobs[job.JobId] = local;
            return local.Handle;
        }
        finally
        {
            _gate.Release();
        }
    }

    private static string WrapperName(long jobId) => FormattableString.Invariant($"gpuc-job-{jobId}");

    /// <summary>
    /// A record written just before a launch and never completed: finds the wrapper (by its name and exit-code path in
    /// <c>/proc/PID/cmdline</c>) and completes the record. True when the job was launched (running, or ended with an
    /// exit code), false when nothing was launched.
    /// </summary>
    private bool AdoptInterruptedLaunch(JobFile file)
    {
        if (Posix.FindSessionLeaderWithArguments(Posix.EffectiveUid, WrapperName(file.JobId), file.ExitCodePath) is { } leader)
        {
            file.Pid = leader.Pid;
            file.StartTicks = leader.StartTime;
            file.BootId = Posix.BootId;
            file.Save(Path.Combine(Path.GetDirectoryName(file.ExitCodePath)!, "job.json"));
            return true;
        }

        return File.Exists(file.ExitCodePath);
    }

    private const int E2big = 7;

    // A fault in the job itself (its command, environment, walltime, account) is a JobStartRejectedException: starting it
    // again would fail the same way. A wrong placement or a missing log directory is the caller's mistake (ArgumentException).
    private void Validate(BackendJob job)
    {
        ValidateCommandAndEnvironment(job);
        ValidateContainer(job);
        if (job.Walltime <= TimeSpan.Zero)
        {
            throw new JobStartRejectedException($"Job {job.JobId}: walltime must be positive, not {job.Walltime}.");
        }

        if (string.IsNullOrWhiteSpace(job.LogDirectory))
        {
            throw new ArgumentException($"Job {job.JobId}: no log directory.", nameof(job));
        }

        foreach (var node in job.Nodes)
        {
            if (!string.Equals(node.Node, NodeName, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Job {job.JobId} is placed on node '{node.Node}', but this local backend runs node '{NodeName}' only.", nameof(job));
            }
        }

        if (job.Nodes.Count > 1)
        {
            throw new ArgumentException($"Job {job.JobId} lists node '{NodeName}' {job.Nodes.Count} times; the local backend runs one node.", nameof(job));
        }
    }

    private async Task<(int[] Gpus, string[] Uuids, string CudaVisibleDevices)> ResolveGpusAsync(BackendJob job, CancellationToken cancellationToken)
    {
        if (job.Nodes.Count == 0 || job.Nodes[0].Gpus.Count == 0)
        {
            return ([], [], "");
        }

        var assigned = job.Nodes[0];
        var inventory = await InventoryAsync(cancellationToken).ConfigureAwait(false);
        var gpus = assigned.Gpus.ToArray();
        if (gpus.Distinct().Count() != gpus.Length)
        {
            throw new ArgumentException($"Job {job.JobId}: GPU indices {string.Join(",", gpus)} repeat.", nameof(job));
        }

        var uuids = new string[gpus.Length];
        for (var i = 0; i < gpus.Length; i++)
        {
            var gpu = inventory.Gpus.FirstOrDefault(g => g.Index == gpus[i])
                ?? throw new ArgumentException($"Job {job.JobId}: node '{NodeName}' has no GPU {gpus[i]} (it has {inventory.Gpus.Count}).", nameof(job));
            if (assigned.GpuUuids.Count == gpus.Length && !string.Equals(assigned.GpuUuids[i], gpu.Uuid, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Job {job.JobId}: GPU {gpus[i]} of '{NodeName}' is {gpu.Uuid}, not {assigned.GpuUuids[i]}.", nameof(job));
            }

            uuids[i] = gpu.Uuid;
        }

        var cuda = inventory.Virtual
            ? string.Join(',', gpus.Select(g => g.ToString(CultureInfo.InvariantCulture)))
            : string.Join(',', uuids);
        return (gpus, uuids, cuda);
    }

    private const string EnvPath = "/usr/bin/env";
    private bool? _envDefaultSignal;

    // GNU env ≥ 8.31 can reset a signal to its default before exec; busybox env cannot.
    private static async Task<bool> ProbeEnvDefaultSignalAsync(CancellationToken cancellationToken)
    {
        if (!File.Exists(EnvPath))
        {
            return false;
        }

        var psi = new ProcessStartInfo(EnvPath) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("--default-signal=PIPE");
        psi.ArgumentList.Add("true");
        try
        {
            using var probe = Process.Start(psi);
            if (probe is null)
            {
                return false;
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            await probe.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            return probe.ExitCode == 0;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    // setsid (not a group leader when .NET forks it) calls setsid() and execs sh, so the process .NET started becomes the
    // leader of a new session and process group with its own PID. Wait (briefly, in real time: this is the kernel's
    // timing, not the schedule's) until it has, so that a cancel right after start reaches the whole group.
    private static async Task<Posix.ProcStat?> SessionLeaderStatAsync(Process process, CancellationToken cancellationToken)
    {
        Posix.ProcStat? stat = null;
        for (var attempt = 0; attempt < 500; attempt++)
        {
            stat = Posix.ReadStat(process.Id);
            if (stat is null || stat.Value.IsZombie || stat.Value.Session == process.Id)
            {
                return stat;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(2), cancellationToken).ConfigureAwait(false);
        }

        return stat;
    }

    /// <inheritdoc />
    public async Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (grace < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(grace), grace, "The grace period must not be negative.");
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var job = TrackedOrStored(jobId);
            if (job is null || job.File.EndReported || !IsAlive(job, out _))
            {
                return;
            }

            var now = _time.GetUtcNow();
            if (job.File.StopReason is null)
            {
                BeginStop(job, StopCancel, grace, now);
            }
            else if (job.File.StopReason == StopCancel && job.File.NextSignalAt > now + grace)
            {
                job.File.NextSignalAt = now + grace;
            }

            job.Save();
        }
        finally
        {
            _gate.Release();
        }
    }

    private LocalJob? TrackedOrStored(long jobId)
    {
        if (_jobs.TryGetValue(jobId, out var job))
        {
            return job;
        }

        var directory = JobDirectory(jobId);
        var file = JobFile.Load(Path.Combine(directory, "job.json"));
        if (file is null || file.EndReported)
        {
            return null;
        }

        job = new LocalJob(file, directory);
        _jobs[jobId] = job;
        return job;
    }

    // Checkpointable: SIGUSR1 (checkpoint now), SIGTERM one grace later, SIGKILL TerminateGrace after that.
    // Others: SIGTERM, SIGKILL one grace later. A job that survives SIGKILL (uninterruptible sleep) gets it again.
    private void BeginStop(LocalJob job, string reason, TimeSpan grace, DateTimeOffset now)
    {
        job.File.StopReason = reason;
        job.File.StopGraceSeconds = grace.TotalSeconds;
        job.File.StopStage = 0;
        SignalNextStage(job, now);
    }

    private void SignalNextStage(LocalJob job, DateTimeOffset now)
    {
        var grace = TimeSpan.FromSeconds(job.File.StopGraceSeconds);
        (int Signal, TimeSpan Wait)[] stages = job.File.Checkpointable
            ? [(Posix.SigUsr1, grace), (Posix.SigTerm, _options.TerminateGrace), (Posix.SigKill, TimeSpan.FromSeconds(5))]
            : [(Posix.SigTerm, grace), (Posix.SigKill, TimeSpan.FromSeconds(5))];
        var stage = Math.Min(job.File.StopStage, stages.Length - 1);
        // A stopped job gets SIGCONT after SIGTERM, so that it can act on it.
        _ = stages[stage].Signal == Posix.SigTerm
            ? Posix.SignalJob(job.File.Pid, Posix.SigTerm, Posix.SigCont)
            : Posix.SignalJob(job.File.Pid, stages[stage].Signal);
        if (stages[stage].Signal == Posix.SigKill)
        {
            // Killing podman leaves its container running (conmon holds it): remove it too.
            RemoveContainer(job.File.Container);
        }

        job.File.StopStage = stage + 1;
        job.File.NextSignalAt = now + stages[stage].Wait;
    }

    /// <summary>Whether the job's wrapper (the session leader) still runs; <paramref name="why"/> says why not.</summary>
    private static bool IsAlive(LocalJob job, out string? why)
    {
        why = null;
        var f = job.File;
        if (f.Pid <= 0 || f.StartTicks == 0)
        {
            why = "the job's process was gone before its start could be recorded";
            return false;
        }

        if (!string.Equals(f.BootId, Posix.BootId, StringComparison.Ordinal) && !Posix.BootId.StartsWith(f.BootId, StringComparison.Ordinal))
        {
            why = "the machine rebooted since the job started";
            return false;
        }

        if (job.Process is { HasExited: true })
        {
            why = "the job's process exited";
            return false;
        }

        var stat = Posix.ReadStat(f.Pid);
        if (stat is null)
        {
            why = FormattableString.Invariant($"process {f.Pid} no longer exists");
            return false;
        }

        if (stat.Value.StartTime != f.StartTicks)
        {
            why = FormattableString.Invariant($"PID {f.Pid} now belongs to another process (start time {stat.Value.StartTime}, the job's was {f.StartTicks})");
            return false;
        }

        if (stat.Value.IsZombie)
        {
            why = "the job's process exited";
            return false;
        }

        return true;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var events = new List<BackendEvent>();
        await CheckNodeHealthAsync(events, cancellationToken).ConfigureAwait(false);
        await SampleGpuUsageAsync(cancellationToken).ConfigureAwait(false);

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            events.AddRange(_pending);
            _pending.Clear();
            RetryCgroupRemoval();
            var now = _time.GetUtcNow();
            List<long>? done = null;
            foreach (var job in _jobs.Values.OrderBy(j => j.File.JobId))
            {
                var f = job.File;
                var dirty = false;
                if (!f.StartReported)
                {
                    events.Add(new BackendEvent(BackendEventKind.Started, f.JobId, f.StartedAt, Node: f.Node,
                        Message: FormattableString.Invariant($"pid {f.Pid}, CUDA_VISIBLE_DEVICES={f.CudaVisibleDevices}{(f.Limits is { } limits ? "; " + limits : "")}")));
                    f.StartReported = true;
                    dirty = true;
                }

                if (IsAlive(job, out var why))
                {
                    job.SeenAlive = true;
                    if (f.StopReason is null && f.WalltimeSeconds > 0 && now - f.StartedAt >= TimeSpan.FromSeconds(f.WalltimeSeconds))
                    {
                        BeginStop(job, StopWalltime, _options.WalltimeGrace, now);
                        dirty = true;
                    }
                    else if (f.StopReason is not null && f.NextSignalAt is { } next && now >= next)
                    {
                        SignalNextStage(job, now);
                        dirty = true;
                    }
                }
                else if (job.Process is { } process && !process.HasExited && !File.Exists(f.ExitCodePath))
                {
                    // Gone from /proc but .NET has not yet recorded the wrapper's exit status (the reaping thread is a
                    // moment behind): decide at the next poll, with the status.
                }
                else
                {
                    events.Add(EndEvent(job, why, now));
                    f.EndReported = true;
                    dirty = true;
                    (done ??= []).Add(f.JobId);
                }

                if (dirty)
                {
                    job.Save();
                }
            }

            foreach (var id in done ?? [])
            {
                var job = _jobs[id];
                _jobs.Remove(id);
                job.Process?.Dispose();
                job.Process = null;
                _ended[id] = job;
            }

            TrimEnded();
            return events;
        }
        finally
        {
            _gate.Release();
        }
    }

    private void TrimEnded()
    {
        // Keep the last sample of recently ended jobs for GetGpuUsageAsync; drop the oldest beyond 1,000.
        if (_ended.Count <= 1000)
        {
            return;
        }

        foreach (var id in _ended.Keys.Order().Take(_ended.Count - 1000).ToList())
        {
            _ended.Remove(id);
        }
    }

    private BackendEvent EndEvent(LocalJob job, string? why, DateTimeOffset now)
    {
        var f = job.File;
        int? exitCode = ReadExitCode(f.ExitCodePath);
        string? message = null;
        if (exitCode is null && job.Process is { HasExited: true } p)
        {
            exitCode = p.ExitCode;
            message = FormattableString.Invariant($"the job's wrapper ended with status {p.ExitCode} before it could record the command's exit code (killed by a signal?)");
        }

        // Whatever the job left behind in its group or session goes with it (only while the leader's PID is not reused).
        Posix.SignalJobIfOurs(f.Pid, f.StartTicks, Posix.SigKill);
        RemoveContainer(f.Container);
        var memory = ReleaseCgroups(f, exitCode);

        var time = now;
        if (!job.SeenAlive && File.Exists(f.ExitCodePath))
        {
            var written = new DateTimeOffset(File.GetLastWriteTimeUtc(f.ExitCodePath), TimeSpan.Zero);
            time = written < f.StartedAt ? f.StartedAt : written < now ? written : now;
        }

        var kind = f.StopReason switch
        {
            StopCancel => BackendEventKind.Cancelled,
            StopWalltime => BackendEventKind.WalltimeExceeded,
            _ when exitCode == 0 => BackendEventKind.Finished,
            _ when exitCode is not null => BackendEventKind.Failed,
            _ => BackendEventKind.Lost,
        };
        var summary = kind switch
        {
            BackendEventKind.Lost => $"no exit code: {why}",
            BackendEventKind.WalltimeExceeded => FormattableString.Invariant($"walltime of {TimeSpan.FromSeconds(f.WalltimeSeconds):c} reached"),
            BackendEventKind.Cancelled => "cancelled",
            BackendEventKind.Failed => FormattableString.Invariant($"exit code {exitCode}"),
            _ => null,
        };
        if (f.StopReason is not null && f.StopStage > 0)
        {
            summary += job.File.Checkpointable
                ? FormattableString.Invariant($" (signals sent: {string.Join(", ", new[] { "SIGUSR1", "SIGTERM", "SIGKILL" }.Take(f.StopStage))})")
                : FormattableString.Invariant($" (signals sent: {string.Join(", ", new[] { "SIGTERM", "SIGKILL" }.Take(f.StopStage))})");
        }

        message = summary is null ? message : message is null ? summary : summary + "; " + message;
        message = memory is null ? message : message is null ? memory : message + "; " + memory;
        return new BackendEvent(kind, f.JobId, time, exitCode, f.Node, message);
    }

    private static int? ReadExitCode(string path)
    {
        try
        {
            var text = File.ReadAllText(path).Trim();
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var code) ? code : null;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(handle);
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_jobs.TryGetValue(jobId, out var tracked))
            {
                return true;
            }

            var directory = JobDirectory(jobId);
            var file = JobFile.Load(Path.Combine(directory, "job.json"));
            if (handle.ExternalId.Length == 0 && file is { EndReported: false, Pid: 0 } && !AdoptInterruptedLaunch(file))
            {
                file = null;
            }

            if (handle.ExternalId.Length == 0 && file is null)
            {
                // A server that placed the job but never got a handle asks whether it runs: it does not.
                _pending.Add(new BackendEvent(BackendEventKind.Lost, jobId, _time.GetUtcNow(), Node: NodeName, Message: "never launched"));
                return false;
            }

            // An empty ExternalId asks by job id: whatever this backend's state folder knows about the job's last run.
            if (file is null || (handle.ExternalId.Length > 0 && !string.Equals(file.ExternalId, handle.ExternalId, StringComparison.Ordinal)))
            {
                if (!JobFile.TryParseExternalId(handle.ExternalId, out var pid, out var ticks, out var boot))
                {
                    _pending.Add(new BackendEvent(BackendEventKind.Lost, jobId, _time.GetUtcNow(), Node: NodeName,
                        Message: $"the handle '{handle.ExternalId}' is not a local backend handle (pid:starttime:boot)"));
                    return false;
                }

                // No state of ours for this run (another state directory?): the handle alone identifies the process.
                file = new JobFile
                {
                    JobId = jobId, Pid = pid, StartTicks = ticks, BootId = boot, StartedAt = _time.GetUtcNow(),
                    WalltimeSeconds = 0, Stdout = handle.StdoutPath ?? "", Stderr = handle.StderrPath ?? "",
                    ExitCodePath = Path.Combine(directory, "exitcode"), Node = NodeName,
                };
            }

            if (file.EndReported)
            {
                // The end was reported, but the server asks for the job again: it did not keep that report (it stopped
                // before saving it). Report it again: ends are delivered at least once, never lost.
                var ended = new LocalJob(file, directory);
                IsAlive(ended, out var gone);
                var again = EndEvent(ended, gone, _time.GetUtcNow());
                _pending.Add(again);
                _ended[jobId] = ended;
                return again.Kind != BackendEventKind.Lost;
            }

            file.StartReported = true;
            var job = new LocalJob(file, directory);
            if (IsAlive(job, out var why) || File.Exists(file.ExitCodePath))
            {
                // Running: watch it again. Ended with a recorded exit code: the next poll reports the outcome.
                _jobs[jobId] = job;
                job.Save();
                return true;
            }

            _pending.Add(new BackendEvent(BackendEventKind.Lost, jobId, _time.GetUtcNow(), Node: file.Node, Message: $"no exit code: {why}"));
            file.EndReported = true;
            job.Save();
            return false;
        }
        finally
        {
            _gate.Release();
        }
    }
}
