using System.Globalization;

namespace GpuCommons.Backends.Slurm.Tests.Integration;

/// <summary>Helpers shared by the integration tests: unique job ids per run, a fast-retrying backend, event waits.</summary>
internal static class SlurmTestKit
{
    private static long _nextId = (TimeProvider.System.GetUtcNow().ToUnixTimeSeconds() % 10_000_000) * 1000;

    public static string LogRoot { get; } = Path.Combine(Path.GetTempPath(), "gpuc-slurm-it");

    public static long NextId() => Interlocked.Increment(ref _nextId);

    public static SlurmBackendOptions Options() => new()
    {
        CommandTimeout = TimeSpan.FromSeconds(5),
        InitialBackoff = TimeSpan.FromMilliseconds(200),
        MaxBackoff = TimeSpan.FromSeconds(2),
    };

    public static SlurmBackend Backend(SlurmBackendOptions? options = null, ISlurmCommandRunner? runner = null) =>
        new(options ?? Options(), runner);

    public static BackendJob Job(long id, string[] nodes, int gpusPerNode, string script, TimeSpan? walltime = null,
        IReadOnlyDictionary<string, string>? env = null, int attempt = 0, bool checkpointable = false) =>
        new(id, $"it-{id}", "proj", "root", ["/bin/bash", "-c", script], null, env ?? new Dictionary<string, string>(),
            nodes.Select(n => new AssignedNode(n, Enumerable.Range(0, gpusPerNode).ToArray(), [])
            {
                Cpus = Math.Max(1, CpusPerGpu * gpusPerNode),
                MemoryMiB = Math.Max(MemoryMiBPerGpu / 4, MemoryMiBPerGpu * gpusPerNode),
            }).ToArray(),
            walltime ?? TimeSpan.FromMinutes(3), LogRoot, checkpointable, attempt);

    /// <summary>
    /// What the engine places per GPU on the CI Slurm (its partition's default share: 32 cores and 16,000 MiB for 8 GPUs
    /// per node). The CI Slurm has no DefMemPerCPU, so a job placed without memory would take the whole node's.
    /// </summary>
    public const int CpusPerGpu = 4;

    public const long MemoryMiBPerGpu = 2000;

    /// <summary>Polls until <paramref name="until"/> holds for the events seen so far (which are appended to <paramref name="seen"/>).</summary>
    public static async Task<List<BackendEvent>> PollUntilAsync(SlurmBackend backend, List<BackendEvent> seen, Func<List<BackendEvent>, bool> until, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        while (!until(seen))
        {
            if (cts.IsCancellationRequested)
            {
                throw new TimeoutException($"condition not met after {timeout.TotalSeconds:0} s; events: {string.Join("; ", seen.Select(Describe))}; last Slurm error: {backend.Health.LastError}");
            }

            seen.AddRange(await backend.PollAsync(default));
            if (!until(seen))
            {
                await Task.Delay(300);
            }
        }

        return seen;
    }

    public static bool Has(this List<BackendEvent> events, long jobId, BackendEventKind kind) => events.Any(e => e.JobId == jobId && e.Kind == kind);

    public static bool Ended(this List<BackendEvent> events, long jobId) =>
        events.Any(e => e.JobId == jobId && e.Kind is BackendEventKind.Finished or BackendEventKind.Failed or BackendEventKind.Cancelled
            or BackendEventKind.WalltimeExceeded or BackendEventKind.Lost);

    public static string Describe(BackendEvent e) =>
        $"{e.Kind} job={e.JobId} node={e.Node} exit={e.ExitCode?.ToString(CultureInfo.InvariantCulture)} {e.Message}";

    public static string Output(BackendHandle h) => File.Exists(h.StdoutPath) ? File.ReadAllText(h.StdoutPath!) : "";

    public static int CountInSlurm(string name)
    {
        var (_, q) = LocalSlurm.Run("squeue", "-h", "-t", "all", "--name=" + name, "-o", "%i");
        var (_, a) = LocalSlurm.Run("sacct", "-n", "-X", "-P", "--name=" + name, "-S", "now-1hour", "--format=JobIDRaw");
        return q.Split('\n', StringSplitOptions.RemoveEmptyEntries).Concat(a.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Distinct().Count();
    }
}
