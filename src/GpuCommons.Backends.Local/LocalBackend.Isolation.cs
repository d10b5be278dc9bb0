using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local;

// How a job is kept apart from the server and from other tenants: the account it runs as, its environment, its working
// directory, its log files and the GPU device files it can open. See README.md ("Tenants") for the model.
public sealed partial class LocalBackend
{
    // The longest argument or environment string the kernel takes (MAX_ARG_STRLEN, 32 pages, less the final NUL).
    private const int MaxArgumentBytes = (32 * 4096) - 1;

    // Runs as root in the job's own mount namespace: hides every device file listed (up to "--") behind the empty mode-0000
    // mask, then goes on with the rest of the command line (setpriv …). The mounts vanish with the job's last process.
    internal const string MaskScript =
        """
        gpuc_mount=$1; gpuc_mask=$2; shift 2
        while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
          "$gpuc_mount" -n --bind "$gpuc_mask" "$1" || { printf 'gpuc: could not hide GPU device %s from the job\n' "$1" >&2; exit 125; }
          shift
        done
        shift
        exec "$@"
        """;

    // Runs as the job's user, after the privilege drop: enters the working directory, takes the variables the job asked for
    // (passed as __GPUC_ENV_0, __GPUC_ENV_1 … so that nothing the job chose reaches the root part of the launch: no
    // LD_PRELOAD for the wrapper) and becomes the command.
    internal const string LaunchScript =
        """
        cd -- "$1" || { printf 'gpuc: the job cannot enter its working directory %s\n' "$1" >&2; exit 125; }
        shift
        unset OLDPWD
        umask 027
        __gpuc_i=0
        while eval "[ -n \"\${__GPUC_ENV_$__gpuc_i+set}\" ]"; do
          eval "__gpuc_v=\$__GPUC_ENV_$__gpuc_i"
          unset "__GPUC_ENV_$__gpuc_i"
          export "$__gpuc_v" || exit 125
          __gpuc_i=$((__gpuc_i + 1))
        done
        unset __gpuc_i __gpuc_v
        exec "$@"
        """;

    // Run as the job's user before the launch: whether it can enter the working directory (exit 3 with the reason if not).
    internal const string CheckDirectoryScript =
        """
        if [ ! -e "$1" ]; then echo "does not exist, or lies behind a directory the job's user cannot search"; exit 3; fi
        if [ ! -d "$1" ]; then echo "is not a directory"; exit 3; fi
        if ! cd -- "$1" 2>/dev/null; then echo "cannot be entered by the job's user (permission denied)"; exit 3; fi
        """;

    private const UnixFileMode JobLogMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;

    /// <summary>The account a job's command runs as; <paramref name="Switch"/> when the backend (root) drops to it.</summary>
    private sealed record JobAccount(int Uid, int Gid, string User, string Home, bool Switch);

    /// <summary>The account a job runs as, or <see cref="JobStartRejectedException"/> when it may not run as the one it names.</summary>
    private JobAccount ResolveAccount(BackendJob job)
    {
        if (job.RunAs is not { } runAs)
        {
            // Single-user mode: the server's own account.
            var own = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            return new JobAccount(ProcessUid, Posix.EffectiveGid, Environment.UserName, own, Switch: false);
        }

        if (runAs.Uid == 0)
        {
            throw new JobStartRejectedException($"Job {job.JobId}: jobs never run as root (user '{runAs.User}' maps to uid 0).");
        }

        if (runAs.Uid < 0 || runAs.Gid < 0)
        {
            throw new JobStartRejectedException(FormattableString.Invariant($"Job {job.JobId}: uid {runAs.Uid} / gid {runAs.Gid} of user '{runAs.User}' is not a valid account."));
        }

        if (runAs.Gid == 0)
        {
            throw new JobStartRejectedException($"Job {job.JobId}: jobs never run with the root group (project group '{runAs.Group}' maps to gid 0).");
        }

        // An account with no home (a uid with no passwd entry) gets its working directory as HOME.
        var home = runAs.Home is { Length: > 0 } h && Path.IsPathFullyQualified(h) ? h : "";
        if (ProcessUid == 0)
        {
            return new JobAccount(runAs.Uid, runAs.Gid, runAs.User, home, Switch: true);
        }

        if (runAs.Uid == ProcessUid)
        {
            // A server run by a researcher, for that researcher: the job runs as the server's own account.
            return new JobAccount(runAs.Uid, Posix.EffectiveGid, runAs.User, home, Switch: false);
        }

        throw new JobStartRejectedException(FormattableString.Invariant(
            $"Job {job.JobId}: it must run as user '{runAs.User}' (uid {runAs.Uid}), but the local backend runs as uid {ProcessUid}, not root, and cannot switch to another account. Run the server as root, or in single-user mode."));
    }

    /// <summary>Checks what can be checked of a job without touching the machine; <see cref="JobStartRejectedException"/> when it can never start.</summary>
    private static void ValidateCommandAndEnvironment(BackendJob job)
    {
        if (job.Command is null || job.Command.Count == 0 || string.IsNullOrWhiteSpace(job.Command[0]))
        {
            throw new JobStartRejectedException($"Job {job.JobId}: the command is empty.");
        }

        if (job.WorkingDirectory is { } wd && (wd.Length == 0 || !Path.IsPathFullyQualified(wd)))
        {
            throw new JobStartRejectedException($"Job {job.JobId}: the working directory must be an absolute path, not '{wd}'.");
        }

        foreach (var arg in job.Command)
        {
            CheckString(job.JobId, "an argument of the command", arg);
        }

        CheckString(job.JobId, "the working directory", job.WorkingDirectory ?? "");
        foreach (var (key, value) in job.Environment)
        {
            if (!IsVariableName(key))
            {
                throw new JobStartRejectedException($"Job {job.JobId}: '{key}' is not a valid environment variable name (letters, digits and '_', not starting with a digit).");
            }

            if (key.StartsWith("__GPUC", StringComparison.OrdinalIgnoreCase))
            {
                throw new JobStartRejectedException($"Job {job.JobId}: environment variable names starting with '__GPUC' are reserved for the backend ('{key}').");
            }

            CheckString(job.JobId, $"environment variable {key}", key + "=" + value);
        }
    }

    private static void CheckString(long jobId, string what, string value)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            throw new JobStartRejectedException($"Job {jobId}: {what} contains a NUL character.");
        }

        var bytes = Encoding.UTF8.GetByteCount(value);
        if (bytes > MaxArgumentBytes)
        {
            throw new JobStartRejectedException(FormattableString.Invariant(
                $"Job {jobId}: {what} is {bytes} bytes long; the kernel takes at most {MaxArgumentBytes} bytes for one argument or variable."));
        }
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex VariableName();

    private static bool IsVariableName(string key) => VariableName().IsMatch(key);

    /// <summary>
    /// The directory the job starts in, checked as the job's user: the one it names, else its user's home if the user can
    /// enter it, else a new scratch directory of its own. <see cref="JobStartRejectedException"/> when the one it names
    /// cannot be entered.
    /// </summary>
    private async Task<string> ResolveWorkingDirectoryAsync(BackendJob job, JobAccount account, CancellationToken cancellationToken)
    {
        if (job.WorkingDirectory is { } wd)
        {
            var why = await CheckDirectoryAsync(wd, account, cancellationToken).ConfigureAwait(false);
            return why is null
                ? wd
                : throw new JobStartRejectedException(FormattableString.Invariant($"Job {job.JobId}: the working directory '{wd}' {why} (user '{account.User}', uid {account.Uid}, gid {account.Gid})."));
        }

        if (account.Home.Length > 0 && Path.IsPathFullyQualified(account.Home) && await CheckDirectoryAsync(account.Home, account, cancellationToken).ConfigureAwait(false) is null)
        {
            return account.Home;
        }

        Directory.CreateDirectory(_options.ScratchDirectory);
        var scratch = Posix.CreateUniqueDirectory(Path.Combine(_options.ScratchDirectory, FormattableString.Invariant($"gpuc-job-{job.JobId}-")));
        if (account.Switch)
        {
            Posix.Chown(scratch, account.Uid, account.Gid);
        }

        return scratch;
    }

    /// <summary>Null when the job's user can enter <paramref name="directory"/>, else why not.</summary>
    private async Task<string?> CheckDirectoryAsync(string directory, JobAccount account, CancellationToken cancellationToken) =>
        (await CheckAsUserAsync(CheckDirectoryScript, [directory], account, cancellationToken).ConfigureAwait(false)).Why;

    /// <summary>setpriv's arguments for the job's account: its uid, the project's gid as the only group, no capabilities, no_new_privs.</summary>
    private static void AddPrivilegeDrop(IList<string> args, JobAccount account)
    {
        var uid = account.Uid.ToString(CultureInfo.InvariantCulture);
        var gid = account.Gid.ToString(CultureInfo.InvariantCulture);
        foreach (var arg in new[] { "--reuid", uid, "--regid", gid, "--groups", gid, "--no-new-privs", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--" })
        {
            args.Add(arg);
        }
    }

    /// <summary>
    /// The job's log directory (0700, the backend's) and its two log files, created before the launch and given to the job's
    /// user and project group (0640), or 0600 when the job runs as the backend's own account.
    /// </summary>
    private static void PrepareLogs(BackendJob job, JobFile file, JobAccount account)
    {
        PrivateFiles.CreateDirectory(job.LogDirectory);
        foreach (var path in new[] { file.Stdout, file.Stderr })
        {
            using (PrivateFiles.Open(path, FileMode.Append, PrivateFiles.FileMode))
            {
            }

            if (account.Switch)
            {
                Posix.Chown(path, account.Uid, account.Gid);
                PrivateFiles.SetMode(path, JobLogMode);
            }
            else
            {
                PrivateFiles.SetMode(path, PrivateFiles.FileMode);
            }
        }
    }

    [GeneratedRegex("^nvidia([0-9]+)$")]
    private static partial Regex GpuDeviceName();

    /// <summary>
    /// The device files of the node's GPUs a job was not given (<c>nvidiaN</c> in <see cref="LocalBackendOptions.GpuDeviceDirectory"/>,
    /// N the GPU index), when this backend hides them: as root, with <see cref="LocalBackendOptions.IsolateGpuDevices"/>.
    /// </summary>
    private List<string> DevicesToMask(int[] gpus)
    {
        var masked = new List<string>();
        if (ProcessUid != 0 || !_options.IsolateGpuDevices || !Directory.Exists(_options.GpuDeviceDirectory))
        {
            return masked;
        }

        foreach (var path in Directory.EnumerateFileSystemEntries(_options.GpuDeviceDirectory))
        {
            var match = GpuDeviceName().Match(Path.GetFileName(path));
            if (match.Success && !Directory.Exists(path)
                && int.TryParse(match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                && !gpus.Contains(index))
            {
                masked.Add(path);
            }
        }

        masked.Sort(StringComparer.Ordinal);
        return masked;
    }

    /// <summary>The file mounted over hidden devices: empty, the backend's (root), mode 0000, so that opening it is EACCES.</summary>
    private void EnsureDeviceMask()
    {
        var info = new FileInfo(_deviceMaskPath);
        if (info.Exists && info.Length == 0 && !OperatingSystem.IsWindows() && info.UnixFileMode == UnixFileMode.None && info.LinkTarget is null)
        {
            return;
        }

        File.Delete(_deviceMaskPath);
        using (PrivateFiles.Open(_deviceMaskPath, FileMode.CreateNew, UnixFileMode.None))
        {
        }

        PrivateFiles.SetMode(_deviceMaskPath, UnixFileMode.None);
    }

    private ProcessStartInfo BuildStartInfo(BackendJob job, JobFile file, JobAccount account, string workingDirectory, List<string> masked, ContainerLaunch? container)
    {
        if (container is not null)
        {
            return BuildContainerStartInfo(job, file, container);
        }

        // The root part (wrapper, mask) starts in "/": the job's user enters its working directory itself, after the drop.
        var psi = new ProcessStartInfo(_options.ResolvedSetsidPath) { UseShellExecute = false, WorkingDirectory = "/" };
        var args = psi.ArgumentList;
        if (_envDefaultSignal == true)
        {
            // .NET ignores SIGPIPE, and a server started under nohup or in the background of a script ignores SIGHUP,
            // SIGINT and SIGQUIT; children inherit ignored signals and a shell cannot undo that. Give the job every
            // signal's default back.
            args.Add(EnvPath);
            args.Add("--default-signal");
        }

        args.Add(_options.ShellPath);
        args.Add("-c");
        args.Add(WrapperScript);
        args.Add(WrapperName(job.JobId));
        args.Add(file.Stdout);
        args.Add(file.Stderr);
        args.Add(file.ExitCodePath);
        foreach (var cgroup in file.Cgroups)
        {
            // The wrapper (root) moves itself in before anything of the job runs: every process of the job starts inside.
            args.Add("--cgroup");
            args.Add(Path.Combine(cgroup, "cgroup.procs"));
        }

        if (masked.Count > 0)
        {
            args.Add(_options.ResolvedUnsharePath);
            args.Add("--mount");
            args.Add("--propagation");
            args.Add("private");
            args.Add("--");
            args.Add(_options.ShellPath);
            args.Add("-c");
            args.Add(MaskScript);
            args.Add("gpuc-mask-devices");
            args.Add(_options.ResolvedMountPath);
            args.Add(_deviceMaskPath);
            foreach (var device in masked)
            {
                args.Add(device);
            }

            args.Add("--");
        }

        if (account.Switch)
        {
            args.Add(_options.ResolvedSetprivPath);
            AddPrivilegeDrop(args, account);
        }

        args.Add(_options.ShellPath);
        args.Add("-c");
        args.Add(LaunchScript);
        args.Add("gpuc-launch");
        args.Add(workingDirectory);
        if (job.Command.Count == 1 && job.Command[0].AsSpan().IndexOfAny(" \t\n;&|<>()$`\\\"'*?[]#~=%") >= 0)
        {
            // One string with shell syntax in it ("python train.py > x"): run it as a shell command line.
            args.Add(_options.ShellPath);
            args.Add("-c");
        }

        foreach (var arg in job.Command)
        {
            args.Add(arg);
        }

        var env = psi.Environment;
        env.Clear();
        var fixedVariables = JobEnvironment(job, file, account, workingDirectory);
        foreach (var (key, value) in fixedVariables)
        {
            env[key] = value;
        }

        // What the job asked for reaches the job only (see LaunchScript); the CUDA_* and GPUC_* variables set above win.
        var n = 0;
        foreach (var (key, value) in job.Environment.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (fixedVariables.ContainsKey(key) && (key.StartsWith("GPUC_", StringComparison.Ordinal) || key.StartsWith("CUDA_", StringComparison.Ordinal) || key.StartsWith("SLURM_ARRAY_", StringComparison.Ordinal)))
            {
                continue;
            }

            env["__GPUC_ENV_" + n.ToString(CultureInfo.InvariantCulture)] = key + "=" + value;
            n++;
        }

        return psi;
    }

    /// <summary>The wrapper around <c>podman run</c>: the container gets the job's environment from its env file, podman only a PATH.</summary>
    private ProcessStartInfo BuildContainerStartInfo(BackendJob job, JobFile file, ContainerLaunch container)
    {
        var psi = new ProcessStartInfo(_options.ResolvedSetsidPath) { UseShellExecute = false, WorkingDirectory = "/" };
        var args = psi.ArgumentList;
        if (_envDefaultSignal == true)
        {
            args.Add(EnvPath);
            args.Add("--default-signal");
        }

        foreach (var a in new[] { _options.ShellPath, "-c", WrapperScript, WrapperName(job.JobId), file.Stdout, file.Stderr, file.ExitCodePath })
        {
            args.Add(a);
        }

        foreach (var a in container.Arguments)
        {
            args.Add(a);
        }

        if (job.Command.Count == 1 && job.Command[0].AsSpan().IndexOfAny(" \t\n;&|<>()$`\\\"'*?[]#~=%") >= 0)
        {
            args.Add("/bin/sh");
            args.Add("-c");
        }

        foreach (var arg in job.Command)
        {
            args.Add(arg);
        }

        var env = psi.Environment;
        env.Clear();
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        env["LANG"] = SafeLang(Environment.GetEnvironmentVariable("LANG"));
        if (ProcessUid != 0)
        {
            // Rootless podman finds its store and runtime directory through these.
            foreach (var name in new[] { "HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME" })
            {
                if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } value)
                {
                    env[name] = value;
                }
            }
        }

        return psi;
    }

    /// <summary>The variables every job gets (nothing of the server's own environment): see README.md.</summary>
    private Dictionary<string, string> JobEnvironment(BackendJob job, JobFile file, JobAccount account, string workingDirectory)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = _options.JobPath,
            ["HOME"] = account.Home.Length > 0 ? account.Home : workingDirectory,
            ["USER"] = account.User,
            ["LOGNAME"] = account.User,
            ["LANG"] = SafeLang(Environment.GetEnvironmentVariable("LANG")),
            ["CUDA_VISIBLE_DEVICES"] = file.CudaVisibleDevices,
            ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID",
            ["GPUC_JOB_ID"] = job.JobId.ToString(CultureInfo.InvariantCulture),
            ["GPUC_JOB_NAME"] = job.Name,
            ["GPUC_PROJECT"] = job.Project,
            ["GPUC_USER"] = job.User,
            ["GPUC_NODE"] = NodeName,
            ["GPUC_NODELIST"] = NodeName,
            ["GPUC_NUM_NODES"] = "1",
            ["GPUC_GPUS"] = file.Gpus.Length.ToString(CultureInfo.InvariantCulture),
            ["GPUC_GPU_INDICES"] = string.Join(',', file.Gpus.Select(g => g.ToString(CultureInfo.InvariantCulture))),
            ["GPUC_GPU_UUIDS"] = string.Join(',', file.GpuUuids),
            ["GPUC_WALLTIME_SECONDS"] = ((long)Math.Ceiling(job.Walltime.TotalSeconds)).ToString(CultureInfo.InvariantCulture),
            ["GPUC_CHECKPOINTABLE"] = job.Checkpointable ? "1" : "0",
            ["GPUC_LOG_DIR"] = Path.GetFullPath(job.LogDirectory),
            ["GPUC_STDOUT"] = file.Stdout,
            ["GPUC_STDERR"] = file.Stderr,
        };
        AddResourceVariables(env, file);
        if (job.Nodes.Count == 1 && job.Nodes[0].Share is { } share)
        {
            env["GPUC_GPU_SHARE"] = share.ToString(CultureInfo.InvariantCulture);
        }

        if (job.ArrayTask is { } task)
        {
            foreach (var (k, v) in task.Variables())
            {
                env[k] = v;
            }
        }

        return env;
    }

    [GeneratedRegex("^[A-Za-z]{1,8}(_[A-Za-z]{2,3})?(\\.[A-Za-z0-9-]{1,16})?(@[A-Za-z0-9]{1,16})?$")]
    private static partial Regex LocaleName();

    /// <summary>The server's <c>LANG</c> when it is a plain locale name (<c>en_US.UTF-8</c>, <c>C</c>), else <c>C.UTF-8</c>.</summary>
    internal static string SafeLang(string? lang) => lang is { Length: > 0 } && LocaleName().IsMatch(lang) ? lang : "C.UTF-8";
}
