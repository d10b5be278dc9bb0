using System.Globalization;
using System.Text;

namespace GpuCommons.Backends.Slurm;

/// <summary>
/// The <c>sbatch</c> arguments and batch script for one job, pinned to the engine's placement: the nodes by
/// <c>--nodelist</c>, the GPU count per node by <c>--gpus-per-node</c>. Slurm then picks the GPU indices on each node
/// and sets <c>CUDA_VISIBLE_DEVICES</c>, <c>SLURM_JOB_GPUS</c> and <c>GPU_DEVICE_ORDINAL</c> itself; where the engine
/// gave whole nodes (every multi-node gang) the indices are exactly the engine's. The server's environment is kept out
/// of the job (<c>--export=NONE</c>); the job's own environment is exported by the script.
/// </summary>
public sealed record SlurmSubmission(string JobName, IReadOnlyList<string> Arguments, string Script, string StdoutPath, string StderrPath)
{
    /// <summary>Variables that Slurm sets per job and that the job's environment may not override.</summary>
    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
    };

    /// <summary>Builds the submission; throws <see cref="ArgumentException"/> for a job Slurm cannot be pinned to.</summary>
    public static SlurmSubmission Create(BackendJob job, SlurmBackendOptions options, string? partition)
    {
        ArgumentNullException.ThrowIfNull(job);
        if (job.Nodes.Count == 0)
        {
            throw new ArgumentException($"job {job.JobId} has no nodes assigned", nameof(job));
        }

        if (job.Command.Count == 0)
        {
            throw new ArgumentException($"job {job.JobId} has no command", nameof(job));
        }

        var perNode = job.Nodes[0].Gpus.Count;
        foreach (var n in job.Nodes)
        {
            if (n.Gpus.Count != perNode)
            {
                throw new ArgumentException(
                    $"job {job.JobId}: Slurm pins the same GPU count on every node, the placement has {string.Join(",", job.Nodes.Select(x => $"{x.Node}:{x.Gpus.Count}"))}",
                    nameof(job));
            }

            if (n.Node.Length == 0 || n.Node.Any(c => char.IsWhiteSpace(c) || c is ',' or '[' or ']'))
            {
                throw new ArgumentException($"job {job.JobId}: '{n.Node}' is not a node name", nameof(job));
            }
        }

        CheckContainer(job, options);
        var name = SlurmJobName.Format(options.JobNamePrefix, job.JobId, job.Attempt);
        var logDirectory = LogDirectoryFor(job, options);
        var stdout = Path.Combine(logDirectory, name + ".out");
        var stderr = Path.Combine(logDirectory, name + ".err");
        var minutes = Math.Max(1, (long)Math.Ceiling(job.Walltime.TotalMinutes));
        var args = new List<string>(20)
        {
            "--parsable",
            "--job-name=" + name,
            "--nodes=" + job.Nodes.Count.ToString(CultureInfo.InvariantCulture),
            "--ntasks-per-node=1",
            "--nodelist=" + string.Join(',', job.Nodes.Select(n => n.Node)),
            "--time=" + minutes.ToString(CultureInfo.InvariantCulture),
            "--output=" + stdout,
            "--error=" + stderr,
            "--export=NONE",
            "--no-requeue",
            "--comment=" + Sanitize($"gpuc job={job.JobId} project={job.Project} user={job.User}"),
        };
        if (perNode > 0)
        {
            args.Add("--gpus-per-node=" + perNode.ToString(CultureInfo.InvariantCulture));
        }

        // Exactly the cores and memory the engine placed on each node (one task per node): with CR_Core_Memory and no
        // DefMemPerCPU, a job that names no memory gets the whole node's and the next job pinned there never starts.
        var cpus = job.Nodes[0].Cpus;
        var mem = job.Nodes[0].MemoryMiB;
        if (job.Nodes.Any(n => n.Cpus != cpus || n.MemoryMiB != mem))
        {
            throw new ArgumentException($"job {job.JobId}: Slurm gives every node of a job the same cores and memory, the placement has {string.Join(",", job.Nodes.Select(x => $"{x.Node}:{x.Cpus}c/{x.MemoryMiB}M"))}", nameof(job));
        }

        if (cpus is { } c)
        {
            args.Add("--cpus-per-task=" + c.ToString(CultureInfo.InvariantCulture));
        }

        if (mem is { } m)
        {
            args.Add("--mem=" + m.ToString(CultureInfo.InvariantCulture) + "M");
        }

        if ((options.Partition ?? partition) is { } part)
        {
            args.Add("--partition=" + part);
        }

        args.Add("--account=" + AccountFor(job, options));
        if (job.Container is not null && options.ContainerMode == SlurmContainerMode.Oci)
        {
            // Slurm's own OCI support: the batch step runs in the job's own bundle (made from the image by the backend,
            // see SlurmOciBundle), through the runtime oci.conf names, as the user.
            args.Add("--container=" + BundleDirectoryFor(job, options));
        }

        // A container job's working directory is inside its container (--container-workdir, or the bundle's cwd).
        var hostDirectory = job.Container is null ? job.WorkingDirectory : null;
        if ((hostDirectory ?? (job.RunAs is null ? null : logDirectory)) is { } wd)
        {
            // A job with an identity and no working directory starts in its own spool directory, never in the server's.
            args.Add("--chdir=" + wd);
        }

        args.AddRange(options.ExtraSbatchArguments);
        return new SlurmSubmission(name, args, BuildScript(job, options, perNode, cpus, mem), stdout, stderr);
    }

    /// <summary>The job's own OCI bundle (its <c>config.json</c>) for <see cref="SlurmContainerMode.Oci"/>: beside its output.</summary>
    public static string BundleDirectoryFor(BackendJob job, SlurmBackendOptions options) =>
        Path.Combine(LogDirectoryFor(job, options), SlurmOciBundle.DirectoryName);

    /// <summary>The Slurm account a job is charged to: <see cref="SlurmBackendOptions.Account"/>, else the project's (<see cref="SlurmAccountName"/>).</summary>
    public static string AccountFor(BackendJob job, SlurmBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(options);
        return options.Account ?? SlurmAccountName.FromProject(job.Project, options.AccountPrefix);
    }

    /// <summary>
    /// Where the job's output goes: <see cref="BackendJob.LogDirectory"/> for a job without an identity; for one with
    /// <see cref="BackendJob.RunAs"/>, <c>JobSpoolDirectory/LOGIN/JOBID</c>, which the backend makes for the user.
    /// </summary>
    public static string LogDirectoryFor(BackendJob job, SlurmBackendOptions options)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(options);
        return job.RunAs is { } who
            ? Path.Combine(options.JobSpoolDirectory, who.User, job.JobId.ToString(CultureInfo.InvariantCulture))
            : job.LogDirectory;
    }

    private static string BuildScript(BackendJob job, SlurmBackendOptions options, int gpusPerNode, int? cpusPerNode, long? memoryMiBPerNode)
    {
        var sb = new StringBuilder(256);
        // A container's batch script runs inside the image, which may have no bash: POSIX sh, which every image has.
        sb.Append("#!").Append(job.Container is not null && options.ContainerMode == SlurmContainerMode.Oci ? "/bin/sh" : options.Shell).Append('\n');
        sb.Append("# GpuCommons job ").Append(job.JobId.ToString(CultureInfo.InvariantCulture)).Append(": ").Append(Sanitize(job.Name)).Append('\n');
        if (!job.Environment.ContainsKey("PATH"))
        {
            sb.Append("export PATH=").Append(Quote(options.DefaultPath)).Append('\n');
        }

        sb.Append("export GPUC_JOB_ID=").Append(job.JobId.ToString(CultureInfo.InvariantCulture)).Append('\n');
        if (job.ArrayTask is { } task)
        {
            // Each task is its own pinned job in Slurm (placed by the engine), so Slurm does not set these: the script does.
            foreach (var (k, v) in task.Variables())
            {
                sb.Append("export ").Append(k).Append('=').Append(v).Append('\n');
            }
        }

        if (job.RunAs is { } who)
        {
            // --export=NONE: the job's account, never the server's (Slurm also loads the user's own login environment).
            foreach (var (k, v) in new[] { ("HOME", who.Home), ("USER", who.User), ("LOGNAME", who.User) })
            {
                if (!job.Environment.ContainsKey(k))
                {
                    sb.Append("export ").Append(k).Append('=').Append(Quote(v)).Append('\n');
                }
            }
        }
        foreach (var (key, value) in job.Environment.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!IsName(key))
            {
                throw new ArgumentException($"job {job.JobId}: '{key}' is not an environment variable name", nameof(job));
            }

            if (Reserved.Contains(key) || key.StartsWith("SLURM_", StringComparison.Ordinal) || (job.ArrayTask is not null && key.StartsWith("GPUC_ARRAY_", StringComparison.Ordinal)))
            {
                continue; // Slurm sets these for the GPUs it allocated.
            }

            sb.Append("export ").Append(key).Append('=').Append(Quote(value)).Append('\n');
        }

        if (job.Container is null && job.WorkingDirectory is { } wd)
        {
            // Slurm runs a job whose --chdir it cannot enter in /tmp instead: fail rather than run elsewhere.
            sb.Append("cd -- ").Append(Quote(wd)).Append(" || exit 111\n"); // the shell's message names the directory and the reason
        }

        sb.Append("exec ");
        var pyxis = job.Container is not null && options.ContainerMode == SlurmContainerMode.Pyxis;
        if (job.Nodes.Count > 1 || pyxis)
        {
            // One task per node, each with its own GPUs; the batch shell runs on the first node only. A pyxis container
            // is made by srun, so a single-node container job goes through srun too.
            sb.Append("srun --export=ALL --ntasks-per-node=1 --kill-on-bad-exit=1");
            if (gpusPerNode > 0)
            {
                sb.Append(" --gpus-per-node=").Append(gpusPerNode.ToString(CultureInfo.InvariantCulture));
            }

            // The step takes the job's whole placement on each node: Slurm 22.05's srun no longer inherits
            // --cpus-per-task from the batch job, and would run each task on one core.
            if (cpusPerNode is { } c)
            {
                sb.Append(" --cpus-per-task=").Append(c.ToString(CultureInfo.InvariantCulture));
            }

            if (memoryMiBPerNode is { } m)
            {
                sb.Append(" --mem=").Append(m.ToString(CultureInfo.InvariantCulture)).Append('M');
            }

            if (pyxis)
            {
                AppendPyxis(sb, job.Container!, job.WorkingDirectory);
            }

            sb.Append(" -- ");
        }

        for (var i = 0; i < job.Command.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(' ');
            }

            sb.Append(Quote(job.Command[i]));
        }

        sb.Append('\n');
        return sb.ToString();
    }

    /// <summary>Refuses a container job this cluster cannot run, with the reason (the job fails; retrying would not help).</summary>
    private static void CheckContainer(BackendJob job, SlurmBackendOptions options)
    {
        if (job.Container is not { } c)
        {
            return;
        }

        switch (options.ContainerMode)
        {
            case SlurmContainerMode.None:
                throw new JobStartRejectedException($"Job {job.JobId}: this Slurm cluster runs no container jobs (SlurmBackendOptions.ContainerMode is None).");
            case SlurmContainerMode.Oci:
                if (!Path.IsPathFullyQualified(c.Image) || c.Image.Any(char.IsControl))
                {
                    throw new JobStartRejectedException($"Job {job.JobId}: Slurm's --container runs an unpacked OCI bundle, so the image must be the bundle's absolute path on the cluster's shared file system, not '{c.Image}'.");
                }

                foreach (var m in c.Mounts)
                {
                    if (!Path.IsPathFullyQualified(m.Source) || !Path.IsPathFullyQualified(m.Target) || (m.Source + m.Target).Any(char.IsControl))
                    {
                        throw new JobStartRejectedException($"Job {job.JobId}: container mounts need absolute paths ('{m.Source}' → '{m.Target}').");
                    }
                }

                break;
            case SlurmContainerMode.Pyxis:
                foreach (var m in c.Mounts)
                {
                    if (!Path.IsPathFullyQualified(m.Source) || !Path.IsPathFullyQualified(m.Target) || (m.Source + m.Target).Any(ch => ch is ',' or ':' || char.IsControl(ch)))
                    {
                        throw new JobStartRejectedException($"Job {job.JobId}: pyxis mounts need absolute paths without ',' or ':' ('{m.Source}' → '{m.Target}').");
                    }
                }

                break;
        }
    }

    /// <summary>
    /// pyxis's srun options: the image (a registry reference becomes enroot's <c>REGISTRY#PATH:TAG</c>; a squashfs file
    /// stays a path), the mounts and the working directory. enroot runs the container as the job's user, unprivileged,
    /// so a mount works only where the user can read it.
    /// </summary>
    private static void AppendPyxis(StringBuilder sb, ContainerSpec c, string? workingDirectory)
    {
        sb.Append(" --container-image=").Append(Quote(PyxisImage(c.Image)));
        if (c.Mounts.Count > 0)
        {
            sb.Append(" --container-mounts=").Append(Quote(string.Join(',', c.Mounts.Select(m => m.Source + ":" + m.Target + (m.ReadOnly ? ":ro" : "")))));
        }

        if (workingDirectory is { } wd)
        {
            sb.Append(" --container-workdir=").Append(Quote(wd));
        }
    }

    /// <summary>enroot's image syntax: <c>registry.example.org/team/img:tag</c> → <c>registry.example.org#team/img:tag</c>; paths and Docker Hub names unchanged.</summary>
    public static string PyxisImage(string image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.StartsWith('/') || image.Contains('#', StringComparison.Ordinal))
        {
            return image;
        }

        var slash = image.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0)
        {
            var first = image[..slash];
            if (first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal) || first == "localhost")
            {
                return first + "#" + image[(slash + 1)..];
            }
        }

        return image;
    }

    /// <summary>POSIX single-quoting: safe for any byte except NUL.</summary>
    public static string Quote(string s)
    {
        if (s.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("a NUL character cannot be passed to a job");
        }

        return "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    private static bool IsName(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_') && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    private static string Sanitize(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            sb.Append(char.IsControl(c) ? ' ' : c);
        }

        return sb.ToString();
    }
}
