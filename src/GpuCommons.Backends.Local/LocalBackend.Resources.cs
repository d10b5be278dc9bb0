using System.Globalization;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local;

// The cores and memory the engine placed, enforced in the job's sandbox: disjoint core sets between running jobs, cgroups
// for processes (JobCgroups), podman's limits for containers. See docs/resources.md.
public sealed partial class LocalBackend
{
    private JobCgroups? _cgroups;
    private readonly List<string> _cgroupsToRemove = [];

    /// <summary>How this machine's cgroups are used (detected at the first job); tests set one.</summary>
    internal JobCgroups Cgroups
    {
        set => _cgroups = value;
        get
        {
            if (_cgroups is null)
            {
                _cgroups = JobCgroups.Detect(ContainerSuffix);
                _cgroups.Sweep(id => JobFile.Load(Path.Combine(JobDirectory(id), "job.json")) is { EndReported: false });
            }

            return _cgroups;
        }
    }

    /// <summary>
    /// Picks the job's cores (the lowest-numbered ones no running job of this backend holds, among those the backend may use)
    /// and records its cores and memory in <paramref name="file"/>. Throws <see cref="InvalidOperationException"/> (a start
    /// to retry) when fewer cores are free than the placement gives it.
    /// </summary>
    private void AssignResources(BackendJob job, JobFile file)
    {
        var placed = job.Nodes.Count > 0 ? job.Nodes[0] : null;
        if (placed?.Cpus is { } wanted && wanted > 0)
        {
            var allowed = JobCgroups.AllowedCpus();
            var held = new HashSet<int>();
            foreach (var other in _jobs.Values)
            {
                if (!other.File.EndReported && other.File.JobId != job.JobId && other.File.Cpus is { } list)
                {
                    held.UnionWith(JobCgroups.ParseList(list));
                }
            }

            var free = allowed.Where(c => !held.Contains(c)).ToList();
            if (free.Count < wanted)
            {
                throw new InvalidOperationException(FormattableString.Invariant(
                    $"Job {job.JobId}: it was placed with {wanted} cores, but only {free.Count} of this machine's {allowed.Length} ({JobCgroups.FormatList(allowed)}) are not held by other running jobs."));
            }

            file.Cpus = JobCgroups.FormatList(free.Take(wanted));
        }

        file.MemoryMiB = placed?.MemoryMiB is > 0 ? placed.MemoryMiB : null;
    }

    /// <summary>
    /// Makes the cgroups of a job that runs on the host and says in <see cref="JobFile.Limits"/> what they enforce, or
    /// why its cores and memory are not enforced (never silently).
    /// </summary>
    private void CreateCgroups(JobFile file)
    {
        if (file.Cpus is null && file.MemoryMiB is null)
        {
            file.Limits = "no cores or memory placed: the job shares the machine's";
            return;
        }

        var what = Wanted(file);
        if (!_options.EnforceCpuAndMemory)
        {
            file.Limits = $"{what} NOT enforced: LocalBackendOptions.EnforceCpuAndMemory is off";
            return;
        }

        var cg = Cgroups;
        try
        {
            var made = cg.Create(file.JobId, file.Cpus, file.MemoryMiB);
            file.Cgroups = [.. made.Directories];
            file.MemoryCgroup = made.MemoryDirectory;
            file.MemoryCgroupVersion = made.MemoryVersion;
            var missing = new List<string>();
            if (file.Cpus is { } cpus && cg.Cpuset is null)
            {
                missing.Add($"cores {cpus}");
            }

            if (file.MemoryMiB is { } mib && cg.Memory is null)
            {
                missing.Add(FormattableString.Invariant($"{mib} MiB memory"));
            }

            file.Limits = missing.Count == 0
                ? "enforced: " + made.Description
                : (made.Description.Length > 0 ? "enforced: " + made.Description + "; " : "") + $"{string.Join(" and ", missing)} NOT enforced: {cg.Problem}";
        }
        catch (CgroupException e)
        {
            file.Cgroups = [];
            file.Limits = $"{what} NOT enforced: the job's cgroup could not be made ({e.Message}){(ProcessUid != 0 ? "; the backend does not run as root" : "")}";
        }
    }

    private static string Wanted(JobFile file) =>
        string.Join(" and ", new[] { file.Cpus is { } c ? $"cores {c}" : null, file.MemoryMiB is { } m ? FormattableString.Invariant($"{m} MiB memory") : null }.Where(s => s is not null));

    /// <summary>podman's limits for a container job: its cores and its memory, with no swap beyond it.</summary>
    private void AddContainerLimits(List<string> args, JobFile file)
    {
        if (!_options.EnforceCpuAndMemory)
        {
            if (file.Cpus is not null || file.MemoryMiB is not null)
            {
                file.Limits = $"{Wanted(file)} NOT enforced: LocalBackendOptions.EnforceCpuAndMemory is off";
            }

            return;
        }

        if (file.Cpus is { } cpus)
        {
            args.AddRange(["--cpuset-cpus", cpus]);
        }

        if (file.MemoryMiB is { } mib)
        {
            var m = FormattableString.Invariant($"{mib}m");
            args.AddRange(["--memory", m, "--memory-swap", m]);
        }

        file.Limits = file.Cpus is null && file.MemoryMiB is null
            ? "no cores or memory placed: the container shares the machine's"
            : $"enforced by podman: {string.Join(", ", new[] { file.Cpus is { } c ? $"--cpuset-cpus {c}" : null, file.MemoryMiB is { } mm ? FormattableString.Invariant($"--memory {mm}m") : null }.Where(s => s is not null))}";
    }

    /// <summary>The line the job's stderr log starts with when its limits are not enforced.</summary>
    private static void NoteLimitsInLog(JobFile file)
    {
        if (file.Limits is { } limits && limits.Contains("NOT enforced", StringComparison.Ordinal))
        {
            File.AppendAllText(file.Stderr, $"gpuc: {limits}\n");
        }
    }

    /// <summary>
    /// At the job's end: kills whatever is left in its cgroups (processes that left its session too), says whether the kernel
    /// killed any for exceeding its memory, and removes the cgroups (later, while the last processes are still dying).
    /// </summary>
    private string? ReleaseCgroups(JobFile f, int? exitCode)
    {
        string? said = null;
        if (f.MemoryCgroup is { } memory && JobCgroups.OomKills(memory, f.MemoryCgroupVersion) is var kills and > 0)
        {
            said = FormattableString.Invariant($"out of memory: the job exceeded its memory limit of {f.MemoryMiB} MiB and the kernel killed {kills} of its processes");
        }
        else if (f.Container is not null && f.MemoryMiB is { } mib && exitCode == 137 && f.StopReason is null)
        {
            said = FormattableString.Invariant($"killed by SIGKILL (exit code 137), which is how a container that exceeds its memory limit of {mib} MiB ends");
        }

        foreach (var dir in f.Cgroups)
        {
            JobCgroups.KillAll(dir);
            // Killed processes leave the cgroup within milliseconds (the kernel's time, not the schedule's); past that,
            // the next polls retry.
            if (!SpinWait.SpinUntil(() => JobCgroups.TryRemove(dir), TimeSpan.FromMilliseconds(100)))
            {
                _cgroupsToRemove.Add(dir);
            }
        }

        return said;
    }

    /// <summary>Removes the cgroups of ended jobs whose last processes were still dying at their end.</summary>
    private void RetryCgroupRemoval()
    {
        _cgroupsToRemove.RemoveAll(dir =>
        {
            JobCgroups.KillAll(dir);
            return JobCgroups.TryRemove(dir);
        });
    }

    /// <summary>The job's cores and memory as it sees them in its environment.</summary>
    private static void AddResourceVariables(Dictionary<string, string> env, JobFile file)
    {
        if (file.Cpus is { } cpus)
        {
            env["GPUC_CPUS"] = JobCgroups.ParseList(cpus).Length.ToString(CultureInfo.InvariantCulture);
            env["GPUC_CPU_LIST"] = cpus;
        }

        if (file.MemoryMiB is { } mib)
        {
            env["GPUC_MEMORY_MIB"] = mib.ToString(CultureInfo.InvariantCulture);
        }
    }
}
