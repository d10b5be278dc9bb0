using GpuCommons.Backends.Local.Gpus;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>A temporary state and log folder, backends over it, and polling helpers with generous timeouts.</summary>
internal sealed class TestBackend : IAsyncDisposable
{
    public const string Node = "testnode";

    /// <summary>How long a test waits for something a real process does (the machine may be loaded).</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    private readonly List<LocalBackend> _backends = [];
    private readonly List<BackendHandle> _handles = [];

    public TestBackend(INvidiaSmi? nvidiaSmi = null, Action<LocalBackendOptions>? configure = null, TimeProvider? time = null)
    {
        Time = time ?? TimeProvider.System;
        Root = Path.Combine(Path.GetTempPath(), "gpuc-local-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
        NvidiaSmi = nvidiaSmi;
        Configure = configure;
        Backend = NewBackend();
    }

    public string Root { get; }

    public string StateDirectory => Path.Combine(Root, "state");

    public string LogDirectory => Path.Combine(Root, "logs");

    public INvidiaSmi? NvidiaSmi { get; }

    public TimeProvider Time { get; }

    public Action<LocalBackendOptions>? Configure { get; }

    public LocalBackend Backend { get; private set; }

    public LocalBackendOptions Options() 
    {
        var o = new LocalBackendOptions
        {
            StateDirectory = StateDirectory,
            NodeName = Node,
            GpuMode = NvidiaSmi is null ? LocalGpuMode.Virtual : LocalGpuMode.Auto,
            VirtualGpuCount = 4,
            WalltimeGrace = TimeSpan.FromSeconds(2),
            TerminateGrace = TimeSpan.FromSeconds(2),
            HealthCheckInterval = TimeSpan.Zero,
        };
        Configure?.Invoke(o);
        return o;
    }

    /// <summary>A new backend over the same state folder (a server restart: the previous one is disposed first).</summary>
    public async Task<LocalBackend> NewBackendAsync()
    {
        await Backend.DisposeAsync();
        return NewBackend();
    }

    private LocalBackend NewBackend()
    {
        var backend = new LocalBackend(Options(), Time, NvidiaSmi ?? FakeNvidiaSmi.NotInstalled());
        _backends.Add(backend);
        Backend = backend;
        return backend;
    }

    public BackendJob Job(long id, string script, int[]? gpus = null, TimeSpan? walltime = null, bool checkpointable = false, IReadOnlyDictionary<string, string>? env = null) =>
        new(id, $"test-{id}", "proj", "alice", ["/bin/sh", "-c", script], null, env ?? new Dictionary<string, string>(),
            gpus is null ? [] : [new AssignedNode(Node, gpus, [])], walltime ?? TimeSpan.FromMinutes(10), LogDirectory, checkpointable);

    /// <summary>A job of <paramref name="who"/>, with a log folder of its own (as the server gives each job).</summary>
    public BackendJob JobAs(long id, PosixIdentity who, string script, int[]? gpus = null, IReadOnlyDictionary<string, string>? env = null) =>
        Job(id, script, gpus, env: env) with { RunAs = who, User = who.User, Project = who.Group, LogDirectory = Path.Combine(LogDirectory, id.ToString(System.Globalization.CultureInfo.InvariantCulture)) };

    public static string Out(BackendHandle handle) => File.ReadAllText(handle.StdoutPath!);

    public static string Err(BackendHandle handle) => File.ReadAllText(handle.StderrPath!);

    public async Task<BackendHandle> StartAsync(BackendJob job)
    {
        var handle = await Backend.StartAsync(job, CancellationToken.None);
        _handles.Add(handle);
        return handle;
    }

    public static int LeaderPid(BackendHandle handle)
    {
        JobFile.TryParseExternalId(handle.ExternalId, out var pid, out _, out _).ShouldBeTrue(handle.ExternalId);
        return pid;
    }

    /// <summary>Polls until <paramref name="until"/> holds for the events seen so far; fails after <see cref="Patience"/>.</summary>
    public async Task<List<BackendEvent>> PollUntilAsync(Func<List<BackendEvent>, bool> until, LocalBackend? backend = null)
    {
        backend ??= Backend;
        var events = new List<BackendEvent>();
        var deadline = TimeProvider.System.GetTimestamp() + (long)(Patience.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (true)
        {
            events.AddRange(await backend.PollAsync(CancellationToken.None));
            if (until(events))
            {
                return events;
            }

            if (TimeProvider.System.GetTimestamp() > deadline)
            {
                throw new TimeoutException("Waited " + Patience + " for events; saw: " + string.Join("; ", events));
            }

            await Task.Delay(50);
        }
    }

    public Task<List<BackendEvent>> PollUntilEndAsync(long jobId, LocalBackend? backend = null) =>
        PollUntilAsync(e => e.Any(x => x.JobId == jobId && x.Kind is not (BackendEventKind.Started or BackendEventKind.NodeUp or BackendEventKind.NodeDown or BackendEventKind.NodeDraining)), backend);

    /// <summary>Waits until <paramref name="condition"/> holds (for things outside the backend: files, /proc).</summary>
    public static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var deadline = TimeProvider.System.GetTimestamp() + (long)(Patience.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (!condition())
        {
            if (TimeProvider.System.GetTimestamp() > deadline)
            {
                throw new TimeoutException($"Waited {Patience} for {what}.");
            }

            await Task.Delay(50);
        }
    }

    public string Stdout(long id) => File.ReadAllText(Path.Combine(LogDirectory, $"job-{id}.out"));

    public string Stderr(long id) => File.ReadAllText(Path.Combine(LogDirectory, $"job-{id}.err"));

    public async ValueTask DisposeAsync()
    {
        foreach (var b in _backends)
        {
            await b.DisposeAsync();
        }

        foreach (var handle in _handles)
        {
            // Leave nothing behind, whatever the test did (and never touch a PID that is no longer the job's).
            try
            {
                JobFile.TryParseExternalId(handle.ExternalId, out var pid, out var ticks, out _);
                Posix.SignalJobIfOurs(pid, ticks, Posix.SigKill);
            }
            catch (IOException)
            {
            }
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
