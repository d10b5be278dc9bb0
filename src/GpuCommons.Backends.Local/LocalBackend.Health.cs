using GpuCommons.Backends.Local.Gpus;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local;

public sealed partial class LocalBackend
{
    private const string NodeUp = "up";
    private const string NodeDrain = "drain";
    private const string NodeDown = "down";

    private GpuInventory? _baseline;
    private string _nodeState;
    private string? _nodeReason;
    private bool _nodeStateReported;
    private string? _gpuProblem;
    private DateTimeOffset? _lastHealthCheck;
    private DateTimeOffset? _lastUsageSample;

    private string DrainPath => Path.Combine(_options.StateDirectory, "drain");

    /// <summary>The node's state as last seen: <c>up</c>, <c>drain</c> or <c>down</c>, with the reason.</summary>
    public (string State, string? Reason) NodeState => (_nodeState, _nodeReason);

    private string? ReadDrainFile()
    {
        if (!File.Exists(DrainPath))
        {
            return null;
        }

        try
        {
            var text = File.ReadAllText(DrainPath).Trim();
            return text.Length == 0 ? "drained by an operator" : text;
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    // Node health: the drain file (operator) every poll; the GPUs (nvidia-smi) every HealthCheckInterval, compared with
    // the GPUs found at discovery. A GPU gone, or nvidia-smi failing where it worked, takes the node down.
    private async Task CheckNodeHealthAsync(List<BackendEvent> events, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var baseline = _baseline;
        if (baseline is { Virtual: false } && (_lastHealthCheck is null || now - _lastHealthCheck >= _options.HealthCheckInterval))
        {
            _lastHealthCheck = now;
            _gpuProblem = await GpuProblemAsync(baseline, cancellationToken).ConfigureAwait(false);
        }

        var drain = ReadDrainFile();
        var (state, reason) = _gpuProblem is not null ? (NodeDown, _gpuProblem) : drain is not null ? (NodeDrain, drain) : (NodeUp, (string?)null);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (state == _nodeState && reason == _nodeReason && _nodeStateReported)
            {
                return;
            }

            var wasReported = _nodeStateReported;
            var changed = state != _nodeState;
            _nodeState = state;
            _nodeReason = reason;
            _nodeStateReported = true;
            if (!changed && wasReported)
            {
                return;
            }

            var kind = state switch
            {
                NodeDown => BackendEventKind.NodeDown,
                NodeDrain => BackendEventKind.NodeDraining,
                _ => BackendEventKind.NodeUp,
            };
            events.Add(new BackendEvent(kind, 0, now, Node: NodeName, Message: reason));
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<string?> GpuProblemAsync(GpuInventory baseline, CancellationToken cancellationToken)
    {
        NvidiaSmiResult? result;
        try
        {
            result = await GpuDiscovery.QueryGpusAsync(_nvidiaSmi, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return $"nvidia-smi could not be run: {e.Message}";
        }

        if (result is null)
        {
            return "nvidia-smi is gone (it found the GPUs at start)";
        }

        if (result.ExitCode != 0)
        {
            return $"nvidia-smi failed with exit code {result.ExitCode}: {result.Summary}";
        }

        IReadOnlyList<NvidiaSmiGpu> gpus;
        try
        {
            gpus = result.Stdout.Trim().StartsWith("No devices were found", StringComparison.OrdinalIgnoreCase)
                ? []
                : NvidiaSmiParser.ParseQueryGpu(result.Stdout, NvidiaSmiParser.QueryGpuFields);
        }
        catch (NvidiaSmiFormatException e)
        {
            return $"the GPUs cannot be checked: {e.Message}";
        }

        var present = gpus.Select(g => g.Uuid).ToHashSet(StringComparer.Ordinal);
        var missing = baseline.Gpus.Where(g => !present.Contains(g.Uuid)).ToList();
        if (missing.Count > 0)
        {
            return $"{missing.Count} of {baseline.Gpus.Count} GPUs no longer reported by nvidia-smi: "
                + string.Join(", ", missing.Select(g => FormattableString.Invariant($"{g.Index} ({g.Uuid})")));
        }

        return null;
    }

    /// <summary>
    /// The job's GPUs now (from nvidia-smi: utilisation, memory, and which processes on them belong to the job) while it
    /// runs; the last sample taken while it ran once it has ended; null for a job this backend does not know.
    /// </summary>
    public async Task<JobGpuUsage?> GetGpuUsageAsync(long jobId, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        LocalJob? job;
        bool running;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            running = _jobs.TryGetValue(jobId, out job);
            if (!running && !_ended.TryGetValue(jobId, out job))
            {
                // Ended before this backend started: the last sample an earlier backend kept on disk, if any.
                var kept = LocalJob.LoadUsage(JobDirectory(jobId));
                return kept is null ? null : kept with { Live = false };
            }
        }
        finally
        {
            _gate.Release();
        }

        if (!running)
        {
            var last = job!.LastActiveUsage ?? job.LastUsage;
            return last is null ? null : last with { Live = false };
        }

        // Callers that show a job record every second or so share one nvidia-smi run.
        if (job!.LastUsage is { } recent && _time.GetUtcNow() - recent.Time < TimeSpan.FromSeconds(2))
        {
            return recent;
        }

        try
        {
            var samples = await SampleAsync([job], cancellationToken).ConfigureAwait(false);
            return samples.Count == 0 ? null : samples[0];
        }
        catch (Exception e) when (e is NvidiaSmiFormatException or IOException or InvalidOperationException)
        {
            // Telemetry is best effort: say why there is no fresh sample, with the last one if any.
            var last = job.LastUsage ?? new JobGpuUsage(jobId, _time.GetUtcNow(), "nvidia-smi", []);
            return last with { Live = false, Note = "nvidia-smi could not be read: " + e.Message };
        }
    }

    private async Task SampleGpuUsageAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (_options.GpuUsageSampleInterval <= TimeSpan.Zero || (_lastUsageSample is { } last && now - last < _options.GpuUsageSampleInterval))
        {
            return;
        }

        List<LocalJob> running;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            running = [.. _jobs.Values.Where(j => j.File.Gpus.Length > 0 && !j.File.EndReported)];
        }
        finally
        {
            _gate.Release();
        }

        if (running.Count == 0 || _inventory is null || _inventory.Virtual)
        {
            return;
        }

        _lastUsageSample = now;
        try
        {
            await SampleAsync(running, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NvidiaSmiFormatException or IOException or InvalidOperationException)
        {
            // Sampling is best effort; node health reports a GPU that stopped answering.
        }
    }

    private async Task<List<JobGpuUsage>> SampleAsync(IReadOnlyList<LocalJob> jobs, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var inventory = await InventoryAsync(cancellationToken).ConfigureAwait(false);
        var results = new List<JobGpuUsage>(jobs.Count);
        if (inventory.Virtual)
        {
            foreach (var job in jobs)
            {
                var gpus = job.File.Gpus.Select((g, i) => new GpuUsageSample(job.File.Node, g, job.File.GpuUuids.ElementAtOrDefault(i) ?? "", _options.VirtualGpuModel, null, null, _options.VirtualGpuMemoryMiB, [])).ToList();
                var usage = new JobGpuUsage(job.File.JobId, now, "virtual", gpus, Note: "virtual GPUs: no telemetry");
                job.LastUsage = usage;
                results.Add(usage);
            }

            return results;
        }

        var gpuResult = await GpuDiscovery.QueryGpusAsync(_nvidiaSmi, cancellationToken).ConfigureAwait(false);
        var appsResult = await _nvidiaSmi.RunAsync(NvidiaSmiParser.QueryComputeAppsArguments, cancellationToken).ConfigureAwait(false);
        if (gpuResult is not { ExitCode: 0 })
        {
            return results;
        }

        var telemetry = NvidiaSmiParser.ParseQueryGpu(gpuResult.Stdout, NvidiaSmiParser.QueryGpuFields);
        var apps = appsResult is { ExitCode: 0 } && appsResult.Stdout.Trim().Length > 0
            ? NvidiaSmiParser.ParseComputeApps(appsResult.Stdout, NvidiaSmiParser.ComputeAppFields)
            : [];
        foreach (var job in jobs)
        {
            var usage = BuildUsage(job.File, telemetry, apps, now);
            job.LastUsage = usage;
            if (usage.Gpus.Any(g => g.Processes.Any(p => p.InJob) || g.UtilizationPercent > 0))
            {
                job.LastActiveUsage = usage;
                job.SaveUsage(usage);
            }

            results.Add(usage);
        }

        return results;
    }

    /// <summary>Builds a job's usage from one nvidia-smi sample: its GPUs' totals and the processes on them (marked when in the job's session).</summary>
    internal static JobGpuUsage BuildUsage(JobFile job, IReadOnlyList<NvidiaSmiGpu> telemetry, IReadOnlyList<NvidiaSmiProcess> apps, DateTimeOffset now)
    {
        var gpus = new List<GpuUsageSample>(job.GpuUuids.Length);
        foreach (var uuid in job.GpuUuids)
        {
            var t = telemetry.FirstOrDefault(g => string.Equals(g.Uuid, uuid, StringComparison.Ordinal));
            var processes = apps.Where(a => string.Equals(a.GpuUuid, uuid, StringComparison.Ordinal))
                .Select(a => new GpuProcessSample(a.Pid, a.ProcessName, a.UsedMemoryMiB, BelongsTo(a.Pid, job)))
                .ToList();
            gpus.Add(new GpuUsageSample(job.Node, t?.Index ?? -1, uuid, t?.Name ?? "", t?.UtilizationGpuPercent, t?.MemoryUsedMiB, t?.MemoryTotalMiB, processes));
        }

        return new JobGpuUsage(job.JobId, now, "nvidia-smi", gpus);
    }

    private static bool BelongsTo(int pid, JobFile job) =>
        Posix.ReadStat(pid) is { } st && (st.Session == job.Pid || st.ProcessGroup == job.Pid) && job.Pid > 0;
}
