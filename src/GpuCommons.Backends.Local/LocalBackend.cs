using GpuCommons.Backends.Local.Gpus;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local;

/// <summary>
/// Runs admitted jobs as processes on this machine (Linux). Each job runs in its own session and process group
/// (through <c>setsid</c>) under a small <c>sh</c> wrapper that sends stdout and stderr to the job's log files and writes
/// the command's exit code to a file, so the outcome survives a restart of the server. The job sees its GPUs in
/// <c>CUDA_VISIBLE_DEVICES</c> (UUIDs of real GPUs, indices of virtual ones) and <c>GPUC_*</c> variables.
/// A backend run as root runs each job as its <see cref="BackendJob.RunAs"/> account (through util-linux <c>setpriv</c>:
/// that uid, the project's gid as its only group, no capabilities, <c>no_new_privs</c>) with the device files of the
/// GPUs it was not given masked in a mount namespace of its own; every job gets a minimal environment, never the
/// server's. See README.md.
/// </summary>
/// <remarks>
/// <see cref="PollAsync"/> drives everything that happens over time — walltime, the signal-then-kill escalation of a
/// cancel, node health and GPU usage sampling — so the server should call it every second or few. Disposing the
/// backend leaves running jobs running: a new backend over the same <see cref="LocalBackendOptions.StateDirectory"/>
/// takes them back through <see cref="ReattachAsync"/>. Schedule times (start, walltime, grace, event times) come from
/// the injected <see cref="TimeProvider"/>; a job that ended while no backend watched it gets the time its exit-code file
/// was written.
/// </remarks>
public sealed partial class LocalBackend : IJobBackend
{
    private readonly LocalBackendOptions _options;
    private readonly TimeProvider _time;
    private readonly INvidiaSmi _nvidiaSmi;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Dictionary<long, LocalJob> _jobs = [];
    private readonly Dictionary<long, LocalJob> _ended = [];
    private readonly List<BackendEvent> _pending = [];
    private readonly string _jobsDirectory;
    private readonly FileStream _lock;
    private readonly string _deviceMaskPath;
    private GpuInventory? _inventory;
    private bool _disposed;

    /// <summary>Creates the backend; nothing runs until the first call.</summary>
    /// <param name="options">Settings; validated here.</param>
    /// <param name="timeProvider">The clock; <see cref="TimeProvider.System"/> when null.</param>
    /// <param name="nvidiaSmi">How nvidia-smi is run; the real one (<see cref="NvidiaSmiCommand"/>) when null.</param>
    public LocalBackend(LocalBackendOptions options, TimeProvider? timeProvider = null, INvidiaSmi? nvidiaSmi = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("The local backend runs jobs with Linux process groups and /proc; it needs Linux.");
        }

        options.Validate();
        _options = options;
        _time = timeProvider ?? TimeProvider.System;
        _nvidiaSmi = nvidiaSmi ?? new NvidiaSmiCommand(options.NvidiaSmiPath);
        NodeName = string.IsNullOrWhiteSpace(options.NodeName) ? Environment.MachineName : options.NodeName;
        ProcessUid = Posix.EffectiveUid;
        if (ProcessUid == 0)
        {
            options.ValidateIsolationTools();
        }

        PrivateFiles.CreateDirectory(options.StateDirectory);
        _lock = LockStateDirectory(options.StateDirectory);
        _jobsDirectory = Path.Combine(options.StateDirectory, "jobs");
        PrivateFiles.CreateDirectory(_jobsDirectory);
        _deviceMaskPath = Path.Combine(options.StateDirectory, "device-mask");
        RunScope = "local:" + Environment.MachineName + ":" + Path.GetFullPath(options.StateDirectory);
        _nodeState = ReadDrainFile() is null ? NodeUp : NodeDrain;
        _nodeReason = ReadDrainFile();
        _nodeStateReported = _nodeState == NodeUp;
    }

    public string Name => "local";

    /// <inheritdoc />
    public string RunScope { get; }

    /// <summary>The one node this backend runs.</summary>
    public string NodeName { get; }

    /// <summary>
    /// The uid this backend runs as (read at construction). Root runs each job as the account in
    /// <see cref="BackendJob.RunAs"/>; any other account runs jobs as itself only. Tests set it to play a backend that is
    /// not root.
    /// </summary>
    internal int ProcessUid { get; set; }

    /// <summary>The options it was created with.</summary>
    public LocalBackendOptions Options => _options;

    /// <inheritdoc />
    public async Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var known = _baseline is not null;
        var inventory = await InventoryAsync(cancellationToken).ConfigureAwait(false);
        if (known && !inventory.Virtual)
        {
            // The node's GPUs are those found at the first discovery; a later failure of nvidia-smi or a missing GPU makes
            // the node down (with the reason), it never turns the node into one with virtual GPUs.
            _lastHealthCheck = _time.GetUtcNow();
            _gpuProblem = await GpuProblemAsync(inventory, cancellationToken).ConfigureAwait(false);
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var model = inventory.Gpus.Count > 0 ? inventory.Gpus[0].Model : _options.VirtualGpuModel;
            // The state as of now; the transition itself is reported (once) by the next poll.
            var drain = ReadDrainFile();
            var (state, reason) = _gpuProblem is not null ? (NodeDown, _gpuProblem) : drain is not null ? (NodeDrain, drain) : (NodeUp, (string?)null);
            var node = new DiscoveredNode(NodeName, _options.Partition, model, inventory.Gpus, state, reason)
            {
                Cpus = MachineResources.Cores(),
                MemoryMiB = MachineResources.MemoryMiB(),
            };
            return new DiscoveredFleet("local:" + inventory.Source, [node], inventory.Virtual, inventory.Note);
        }
        finally
        {
            _gate.Release();
        }
    }

    private Task<GpuInventory> DiscoverGpusAsync(CancellationToken cancellationToken) =>
        GpuDiscovery.DiscoverAsync(_nvidiaSmi, _options.GpuMode, _options.VirtualGpuCount, _options.VirtualGpuModel, _options.VirtualGpuMemoryMiB, NodeName, cancellationToken);

    private string KeptGpusPath => Path.Combine(_options.StateDirectory, "gpus.json");

    /// <summary>
    /// The node's GPUs, found once: the real GPUs kept in <c>STATE/gpus.json</c> by an earlier backend (so that a
    /// machine whose GPUs vanished while the server was down comes back as a node that is down, not as one with
    /// virtual GPUs; delete the file after a hardware change), else what discovery finds now (and real GPUs are kept).
    /// </summary>
    private async Task<GpuInventory> InventoryAsync(CancellationToken cancellationToken)
    {
        if (_inventory is { } known)
        {
            return known;
        }

        GpuInventory inventory;
        if (_options.GpuMode != LocalGpuMode.Virtual && GpuKeeping.Load(KeptGpusPath) is { Count: > 0 } kept)
        {
            inventory = new GpuInventory(kept, false, "nvidia-smi", null, []);
            _lastHealthCheck = _time.GetUtcNow();
            _gpuProblem = await GpuProblemAsync(inventory, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            inventory = await DiscoverGpusAsync(cancellationToken).ConfigureAwait(false);
            if (!inventory.Virtual)
            {
                GpuKeeping.Save(KeptGpusPath, inventory.Gpus);
            }
        }

        _inventory ??= inventory;
        _baseline ??= inventory;
        return _inventory;
    }

    /// <summary>Drains the node (operator action): running jobs go on, the next poll reports <see cref="BackendEventKind.NodeDraining"/>.</summary>
    public Task DrainAsync(string reason, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        cancellationToken.ThrowIfCancellationRequested();
        PrivateFiles.WriteAllText(DrainPath, reason.Trim() + "\n");
        return Task.CompletedTask;
    }

    /// <summary>Returns a drained node to service; the next poll reports <see cref="BackendEventKind.NodeUp"/> if nothing else is wrong.</summary>
    public Task ResumeAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        File.Delete(DrainPath);
        return Task.CompletedTask;
    }

    /// <summary>Leaves jobs running (a later backend re-attaches to them) and releases this backend's handles.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            _disposed = true;
            RetryCgroupRemoval();
            foreach (var job in _jobs.Values)
            {
                job.Process?.Dispose();
                job.Process = null;
            }

            _jobs.Clear();
            _ended.Clear();
            await _lock.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    // One backend per state folder: two would each watch, signal and report the same jobs. An exclusive lock on
    // STATE/lock (released by the kernel if the process dies) keeps a second one out.
    private static FileStream LockStateDirectory(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, "lock");
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            var pid = System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
            stream.Write(pid);
            stream.Flush();
            PrivateFiles.SetMode(path, PrivateFiles.FileMode);
            return stream;
        }
        catch (IOException e)
        {
            throw new InvalidOperationException(
                $"The local backend state folder '{stateDirectory}' is in use by another backend (see {path}); one server per data folder.", e);
        }
    }

    private string JobDirectory(long jobId) => Path.Combine(_jobsDirectory, jobId.ToString(System.Globalization.CultureInfo.InvariantCulture));
}
