using System.Globalization;
using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local;

/// <summary>
/// The cores and memory this machine gives jobs: the CPUs the server's process may run on (its affinity, which a
/// cpuset or container limits) and MemTotal from <c>/proc/meminfo</c>, lowered to the server's own cgroup memory
/// limit when it has one (v2 <c>memory.max</c>, v1 <c>memory.limit_in_bytes</c>). Null when unknown.
/// </summary>
internal static class MachineResources
{
    public static int? Cores() => JobCgroups.AllowedCpus() is { Length: > 0 } cpus ? cpus.Length : null;

    public static long? MemoryMiB()
    {
        long? total = null;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kib))
                    {
                        total = kib / 1024;
                    }

                    break;
                }
            }
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        if (total is null)
        {
            return null;
        }

        return CgroupLimitMiB() is { } limit && limit < total ? limit : total;
    }

    /// <summary>The memory limit of this process's cgroup in MiB (v2, then v1 hybrid); null when none or unreadable.</summary>
    internal static long? CgroupLimitMiB()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/cgroup"))
            {
                var f = line.Split(':', 3);
                if (f.Length != 3)
                {
                    continue;
                }

                var path = f[0] == "0" && f[1].Length == 0 ? Path.Combine("/sys/fs/cgroup", f[2].TrimStart('/'), "memory.max")
                    : f[1].Split(',').Contains("memory") ? Path.Combine("/sys/fs/cgroup/memory", f[2].TrimStart('/'), "memory.limit_in_bytes")
                    : null;
                if (path is not null && File.Exists(path)
                    && long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var bytes)
                    && bytes < long.MaxValue / 2)
                {
                    return bytes / (1024 * 1024);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }
}
