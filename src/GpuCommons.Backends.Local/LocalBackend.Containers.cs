using System.Diagnostics;
using System.Globalization;
using System.Text;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local;

// Container jobs (BackendJob.Container): podman, run by the backend, with the job's account as the container's user.
// See README.md ("Containers") for the model and why it is safe to run podman as root here.
public sealed partial class LocalBackend
{
    // Run as the job's user before the launch: whether it may bind PATH into its container (readable, enterable, writable
    // unless read-only). Prints the path with every symlink resolved (as the user resolves it), or exits 3 with the reason.
    internal const string CheckMountScript =
        """
        src=$1; rw=$2
        if [ ! -e "$src" ]; then echo "does not exist, or lies behind a directory the job's user cannot search"; exit 3; fi
        if [ ! -r "$src" ]; then echo "cannot be read by the job's user (permission denied)"; exit 3; fi
        if [ -d "$src" ] && ! cd -- "$src" 2>/dev/null; then echo "cannot be entered by the job's user (permission denied)"; exit 3; fi
        if [ "$rw" = 1 ] && [ ! -w "$src" ]; then echo "cannot be written by the job's user (mount it read-only)"; exit 3; fi
        readlink -f -- "$src" || { echo "cannot be resolved by the job's user"; exit 3; }
        """;

    // The shared NVIDIA control files every CUDA process opens, besides the nvidiaN file of each of its GPUs.
    private static readonly string[] NvidiaControlDevices = ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"];

    private const string CatatonitPath = "/usr/libexec/podman/catatonit";

    /// <summary>What a container job is launched with: podman's arguments before the command, and the container's name.</summary>
    private sealed record ContainerLaunch(string Name, List<string> Arguments);

    /// <summary>
    /// The container's name: one per job of this backend (a stale one from a run that lost its podman is replaced), with a
    /// hash of the state folder, since podman's names are the machine's and two backends may number jobs alike.
    /// </summary>
    internal string ContainerName(long jobId) => FormattableString.Invariant($"gpuc-job-{jobId}-{ContainerSuffix}");

    private string ContainerSuffix => _containerSuffix ??= Convert.ToHexStringLower(
        System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(_options.StateDirectory))))[..8];

    private string? _containerSuffix;

    /// <summary>Checks a container job's image and mounts without touching the machine; <see cref="JobStartRejectedException"/> when it can never start.</summary>
    private static void ValidateContainer(BackendJob job)
    {
        if (job.Container is not { } c)
        {
            return;
        }

        if (string.IsNullOrWhiteSpace(c.Image) || c.Image.Any(ch => char.IsWhiteSpace(ch) || char.IsControl(ch)) || c.Image.StartsWith('-'))
        {
            throw new JobStartRejectedException($"Job {job.JobId}: '{c.Image}' is not a container image reference.");
        }

        foreach (var m in c.Mounts)
        {
            foreach (var (what, path) in new[] { ("source", m.Source), ("target", m.Target) })
            {
                if (string.IsNullOrEmpty(path) || !Path.IsPathFullyQualified(path) || path.Contains(',', StringComparison.Ordinal) || path.Any(char.IsControl))
                {
                    throw new JobStartRejectedException($"Job {job.JobId}: the mount {what} '{path}' must be an absolute path without commas or control characters.");
                }
            }
        }

        foreach (var (key, value) in job.Environment)
        {
            if (value.Contains('\n', StringComparison.Ordinal) || value.Contains('\r', StringComparison.Ordinal))
            {
                throw new JobStartRejectedException($"Job {job.JobId}: environment variable {key} of a container job may not hold a line break.");
            }
        }
    }

    /// <summary>
    /// Everything a container job needs before its launch: its mounts and local image checked (and resolved) as the job's
    /// user, its environment written to a private file podman reads, its devices, and podman's arguments.
    /// </summary>
    private async Task<ContainerLaunch> PrepareContainerAsync(BackendJob job, JobFile file, JobAccount account, string directory, CancellationToken cancellationToken)
    {
        var spec = job.Container!;
        var podman = _options.ResolvedPodmanPath;
        if (!File.Exists(podman))
        {
            throw new InvalidOperationException($"Job {job.JobId} runs in a container, but podman is not installed at '{podman}' (LocalBackendOptions.PodmanPath; Debian: apt-get install podman runc).");
        }

        var mounts = new List<(string Source, string Target, bool ReadOnly)>();
        foreach (var m in spec.Mounts)
        {
            var resolved = await CheckAsUserAsync(CheckMountScript, [m.Source, m.ReadOnly ? "0" : "1"], account, cancellationToken).ConfigureAwait(false);
            if (resolved.Why is { } why)
            {
                throw new JobStartRejectedException(FormattableString.Invariant(
                    $"Job {job.JobId}: the mount source '{m.Source}' {why} (user '{account.User}', uid {account.Uid}, gid {account.Gid})."));
            }

            mounts.Add((resolved.Output, m.Target, m.ReadOnly));
        }

        var image = spec.Image;
        if (LocalImagePath(image) is { } archive)
        {
            // A local archive or layout is read by podman (root): the job's user must be able to read it.
            var resolved = await CheckAsUserAsync(CheckMountScript, [archive.Path, "0"], account, cancellationToken).ConfigureAwait(false);
            if (resolved.Why is { } why)
            {
                throw new JobStartRejectedException(FormattableString.Invariant(
                    $"Job {job.JobId}: the image '{archive.Path}' {why} (user '{account.User}', uid {account.Uid}, gid {account.Gid})."));
            }

            image = archive.Transport + resolved.Output;
        }

        var name = ContainerName(job.JobId);
        var envFile = Path.Combine(directory, "container.env");
        PrivateFiles.WriteAllText(envFile, ContainerEnvironment(job, file, account, mounts));

        var args = new List<string> { podman, "--runtime", _options.ContainerRuntime, "run", "--rm", "--replace", "--name", name };
        args.AddRange(["--pull", LocalImagePath(spec.Image) is null ? _options.ContainerPull : "missing"]);
        if (account.Switch)
        {
            // Root podman, the job's account inside: no capabilities, no way to gain any, the project's gid only.
            args.AddRange(["--user", FormattableString.Invariant($"{account.Uid}:{account.Gid}"), "--userns", "host"]);
        }
        else if (ProcessUid != 0)
        {
            // Rootless podman (single-user mode on a workstation): the user stays itself inside.
            args.AddRange(["--userns", "keep-id"]);
        }

        args.AddRange(["--cap-drop", "all", "--security-opt", "no-new-privileges", "--network", _options.ContainerNetwork]);
        args.AddRange(["--ulimit", Ulimit("nofile", "Max open files", _options.ContainerOpenFiles)]);
        args.AddRange(["--ulimit", Ulimit("nproc", "Max processes", _options.ContainerProcesses)]);
        args.AddRange(["--log-driver", "none", "--env-file", envFile]);
        AddContainerLimits(args, file);
        if (File.Exists(CatatonitPath))
        {
            args.Add("--init"); // PID 1 forwards SIGTERM/SIGUSR1 to the command (a bare PID 1 ignores them)
        }

        if (job.WorkingDirectory is { } wd)
        {
            args.AddRange(["--workdir", wd]);
        }

        foreach (var (source, target, readOnly) in mounts)
        {
            args.AddRange(["--mount", $"type=bind,src={source},dst={target}{(readOnly ? ",ro=true" : "")}"]);
        }

        foreach (var device in ContainerDevices(file))
        {
            args.AddRange(["--device", device]);
        }

        args.Add(image);
        return new ContainerLaunch(name, args);
    }

    /// <summary><c>oci-archive:/x.tar</c>, <c>oci:/dir</c>, <c>docker-archive:/x.tar</c>, <c>dir:/d</c>: the transport and the host path.</summary>
    internal static (string Transport, string Path)? LocalImagePath(string image)
    {
        foreach (var transport in new[] { "oci-archive:", "oci:", "docker-archive:", "dir:" })
        {
            if (image.StartsWith(transport, StringComparison.Ordinal))
            {
                var path = image[transport.Length..];
                return (transport, path);
            }
        }

        return null;
    }

    /// <summary><c>NAME=N:N</c>: the lower of the setting and the backend's own hard limit (raising past it is refused).</summary>
    private static string Ulimit(string name, string procName, long wanted)
    {
        var limit = wanted;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (line.StartsWith(procName, StringComparison.Ordinal))
                {
                    var parts = line[procName.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var hard))
                    {
                        limit = Math.Min(limit, hard);
                    }
                }
            }
        }
        catch (IOException)
        {
        }

        return FormattableString.Invariant($"{name}={limit}:{limit}");
    }

    /// <summary>The job's GPUs: CDI names where an NVIDIA CDI spec exists, else the device files of its GPUs and the control files.</summary>
    private List<string> ContainerDevices(JobFile file)
    {
        var devices = new List<string>();
        if (file.Gpus.Length == 0)
        {
            return devices;
        }

        var cdi = _options.ContainerUseCdi ?? new[] { "/etc/cdi", "/var/run/cdi" }.Any(d => Directory.Exists(d) && Directory.EnumerateFiles(d, "nvidia*").Any());
        if (cdi && file.GpuUuids.All(u => u.StartsWith("GPU-", StringComparison.Ordinal)))
        {
            devices.AddRange(file.GpuUuids.Select(u => "nvidia.com/gpu=" + u));
            return devices;
        }

        foreach (var index in file.Gpus)
        {
            var path = Path.Combine(_options.GpuDeviceDirectory, FormattableString.Invariant($"nvidia{index}"));
            if (File.Exists(path))
            {
                devices.Add(FormattableString.Invariant($"{path}:/dev/nvidia{index}"));
            }
        }

        if (devices.Count > 0)
        {
            foreach (var control in NvidiaControlDevices)
            {
                var path = Path.Combine(_options.GpuDeviceDirectory, control);
                if (File.Exists(path))
                {
                    devices.Add($"{path}:/dev/{control}");
                }
            }
        }

        return devices;
    }

    /// <summary>
    /// The container's environment file (<c>KEY=VALUE</c> lines; 0600, the backend's): the job's variables over the fixed
    /// ones, as for a job without a container, less host paths that mean nothing inside (log paths), and with the image's
    /// own <c>PATH</c> unless the job sets one. It never travels on podman's command line, which other users can read.
    /// </summary>
    private string ContainerEnvironment(BackendJob job, JobFile file, JobAccount account, List<(string Source, string Target, bool ReadOnly)> mounts)
    {
        var home = account.Home.Length > 0 && mounts.Any(m => m.Target == account.Home) ? account.Home : job.WorkingDirectory ?? "/tmp";
        var env = JobEnvironment(job, file, account, home);
        env.Remove("PATH");
        env.Remove("GPUC_LOG_DIR");
        env.Remove("GPUC_STDOUT");
        env.Remove("GPUC_STDERR");
        env["HOME"] = home;
        env["GPUC_CONTAINER_IMAGE"] = job.Container!.Image;
        foreach (var (key, value) in job.Environment.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (env.ContainsKey(key) && (key.StartsWith("GPUC_", StringComparison.Ordinal) || key.StartsWith("CUDA_", StringComparison.Ordinal)))
            {
                continue;
            }

            env[key] = value;
        }

        var sb = new StringBuilder();
        foreach (var (key, value) in env)
        {
            sb.Append(key).Append('=').Append(value).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>Removes a container job's container (and kills what runs in it): after its podman was killed, or at its end.</summary>
    private void RemoveContainer(string? name)
    {
        if (name is null)
        {
            return;
        }

        var psi = new ProcessStartInfo(_options.ResolvedPodmanPath) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = "/" };
        foreach (var arg in new[] { "--runtime", _options.ContainerRuntime, "rm", "--force", "--ignore", "--time", "0", name })
        {
            psi.ArgumentList.Add(arg);
        }

        try
        {
            var process = Process.Start(psi);
            if (process is not null)
            {
                _ = process.StandardOutput.ReadToEndAsync();
                _ = process.StandardError.ReadToEndAsync();
                _ = process.WaitForExitAsync().ContinueWith(_ => process.Dispose(), TaskScheduler.Default);
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // podman is gone: nothing of it can still run.
        }
    }

    /// <summary>
    /// Runs <paramref name="script"/> as the job's user (setpriv when the backend switches accounts), with a clean
    /// environment and 30 s to answer: its trimmed output, or the reason when it exits 3. Any other failure is the
    /// machine's, not the job's. Mounts, images and working directories are all checked this way, so the job's own
    /// permissions decide, never the server's.
    /// </summary>
    private async Task<(string Output, string? Why)> CheckAsUserAsync(string script, string[] arguments, JobAccount account, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo { UseShellExecute = false, WorkingDirectory = "/", RedirectStandardOutput = true, RedirectStandardError = true };
        if (account.Switch)
        {
            psi.FileName = _options.ResolvedSetprivPath;
            AddPrivilegeDrop(psi.ArgumentList, account);
            psi.ArgumentList.Add(_options.ShellPath);
        }
        else
        {
            psi.FileName = _options.ShellPath;
        }

        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add("gpuc-check");
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment.Clear();
        psi.Environment["PATH"] = _options.JobPath;
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"Could not start '{psi.FileName}' to check '{arguments.FirstOrDefault()}' as uid {account.Uid}: {e.Message}", e);
        }

        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill();
            throw new InvalidOperationException($"Checking '{arguments.FirstOrDefault()}' as uid {account.Uid} took over 30 s (a hung file system?).");
        }

        var said = (await stdout.ConfigureAwait(false)).Trim();
        var error = (await stderr.ConfigureAwait(false)).Trim();
        return process.ExitCode switch
        {
            0 => (said, null),
            3 => ("", said),
            var code => throw new InvalidOperationException(FormattableString.Invariant($"Checking '{arguments.FirstOrDefault()}' as uid {account.Uid} failed with exit code {code}: {error}")),
        };
    }
}
