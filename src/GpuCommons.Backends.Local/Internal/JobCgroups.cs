using System.Globalization;
using System.Text;

namespace GpuCommons.Backends.Local.Internal;

/// <summary>One cgroup controller a job's limit is enforced with: its cgroup version and the directory job cgroups are made in.</summary>
/// <param name="Version">1 (a v1 hierarchy of its own) or 2 (the unified hierarchy).</param>
/// <param name="Base">The existing cgroup directory under which the backend's own <c>gpucommons</c> cgroup is made.</param>
internal sealed record CgroupController(int Version, string Base);

/// <summary>The cgroups of one job: the directories made for it and what they enforce, as recorded in its state file.</summary>
internal sealed record JobCgroup(IReadOnlyList<string> Directories, string? MemoryDirectory, int MemoryVersion, string Description);

/// <summary>
/// Enforces a job's cores and memory with the kernel's cgroups, per controller: cgroup v2 (<c>cpuset.cpus</c>,
/// <c>memory.max</c>) where the unified hierarchy offers the controller, else the controller's v1 hierarchy
/// (<c>cpuset.cpus</c>, <c>memory.limit_in_bytes</c>). Job cgroups live in a <c>gpucommons</c> cgroup made under the
/// backend's own cgroup (v1, and v2 when the backend sits at the root), or beside it (v2 otherwise: a v2 cgroup that holds
/// processes cannot hand controllers to children), so that they stay inside whatever limits the backend itself has.
/// Their files belong to root (mode 0644): the job's user can read its limits and cannot change them or leave the cgroup.
/// </summary>
internal sealed class JobCgroups
{
    private const string OwnName = "gpucommons";
    private readonly string _suffix;

    private JobCgroups(CgroupController? cpuset, CgroupController? memory, string? problem, string suffix)
    {
        Cpuset = cpuset;
        Memory = memory;
        Problem = problem;
        _suffix = suffix;
    }

    /// <summary>Where cores are enforced; null when no hierarchy offers cpuset (see <see cref="Problem"/>).</summary>
    public CgroupController? Cpuset { get; }

    /// <summary>Where memory is enforced; null when no hierarchy offers memory (see <see cref="Problem"/>).</summary>
    public CgroupController? Memory { get; }

    /// <summary>Why a controller is missing; null when both are there.</summary>
    public string? Problem { get; }

    /// <summary>Reads this machine's mounts and this process's cgroups.</summary>
    public static JobCgroups Detect(string suffix)
    {
        string mounts, self;
        try
        {
            mounts = File.ReadAllText("/proc/self/mounts");
            self = File.ReadAllText("/proc/self/cgroup");
        }
        catch (IOException e)
        {
            return new JobCgroups(null, null, "cannot read /proc/self/mounts or /proc/self/cgroup: " + e.Message, suffix);
        }

        return Detect(mounts, self, ReadOrNull, suffix);
    }

    /// <summary>
    /// Picks each controller's hierarchy from the text of <c>/proc/self/mounts</c> and <c>/proc/self/cgroup</c>;
    /// <paramref name="read"/> reads a cgroup file (null when missing). v2 wins where its <c>cgroup.controllers</c> lists
    /// the controller for the place job cgroups would go.
    /// </summary>
    public static JobCgroups Detect(string mounts, string selfCgroup, Func<string, string?> read, string suffix)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        ArgumentNullException.ThrowIfNull(selfCgroup);
        ArgumentNullException.ThrowIfNull(read);
        string? v2Mount = null;
        var v1Mounts = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in mounts.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split(' ');
            if (f.Length < 4)
            {
                continue;
            }

            var point = Unescape(f[1]);
            if (f[2] == "cgroup2")
            {
                v2Mount ??= point;
            }
            else if (f[2] == "cgroup")
            {
                foreach (var option in f[3].Split(','))
                {
                    if (option is "cpuset" or "memory")
                    {
                        v1Mounts.TryAdd(option, point);
                    }
                }
            }
        }

        string? v2Path = null;
        var v1Paths = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in selfCgroup.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split(':', 3);
            if (f.Length != 3)
            {
                continue;
            }

            if (f[0] == "0" && f[1].Length == 0)
            {
                v2Path = f[2];
            }
            else
            {
                foreach (var c in f[1].Split(','))
                {
                    v1Paths.TryAdd(c, f[2]);
                }
            }
        }

        string? v2Base = null;
        HashSet<string> v2Controllers = [];
        if (v2Mount is not null && v2Path is not null)
        {
            var own = Join(v2Mount, v2Path);
            var atRoot = v2Path.Trim('/').Length == 0;
            // At the root the backend enables the controllers itself; elsewhere its own cgroup's cgroup.controllers lists
            // what its parent hands down, which a sibling cgroup gets too.
            v2Base = atRoot ? own : Path.GetDirectoryName(own.TrimEnd('/'))!;
            v2Controllers = [.. (read(Path.Combine(own, "cgroup.controllers")) ?? "").Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries)];
        }

        var problems = new List<string>();
        CgroupController? Pick(string controller)
        {
            if (v2Base is not null && v2Controllers.Contains(controller))
            {
                return new CgroupController(2, v2Base);
            }

            if (v1Mounts.TryGetValue(controller, out var mount))
            {
                return new CgroupController(1, Join(mount, v1Paths.GetValueOrDefault(controller, "/")));
            }

            problems.Add(v2Mount is null
                ? $"no cgroup hierarchy offers the {controller} controller (no cgroup v2 mount, no v1 {controller} mount)"
                : $"no cgroup hierarchy offers the {controller} controller (the cgroup v2 hierarchy at {v2Mount} does not hand it to this process, and no v1 {controller} hierarchy is mounted)");
            return null;
        }

        var cpuset = Pick("cpuset");
        var memory = Pick("memory");
        return new JobCgroups(cpuset, memory, problems.Count == 0 ? null : string.Join("; ", problems), suffix);
    }

    /// <summary>
    /// Makes the job's cgroups with its cores (<paramref name="cpus"/>, a kernel CPU list such as <c>2-3</c>) and memory
    /// limit; either may be null (not limited). Throws <see cref="CgroupException"/> with the reason when the kernel refuses.
    /// </summary>
    public JobCgroup Create(long jobId, string? cpus, long? memoryMiB)
    {
        var name = FormattableString.Invariant($"job-{jobId}-{_suffix}");
        var dirs = new List<string>();
        var said = new List<string>();
        string? memoryDir = null;
        try
        {
            if (cpus is not null && Cpuset is { } cs)
            {
                var dir = Prepare(cs, "cpuset", name, dirs);
                if (cs.Version == 1)
                {
                    // A v1 cpuset takes no task until both its CPUs and memory nodes are set.
                    Write(dir, "cpuset.mems", (ReadOrNull(Path.Combine(Path.GetDirectoryName(dir)!, "cpuset.mems")) ?? "0").Trim());
                }

                Write(dir, "cpuset.cpus", cpus);
                dirs.Add(dir);
                said.Add($"cores {cpus} (cgroup v{cs.Version} cpuset.cpus)");
            }

            if (memoryMiB is { } mib && Memory is { } mem)
            {
                var dir = Prepare(mem, "memory", name, dirs);
                var bytes = (mib * 1024 * 1024).ToString(CultureInfo.InvariantCulture);
                if (mem.Version == 2)
                {
                    Write(dir, "memory.max", bytes);
                    TryWrite(dir, "memory.swap.max", "0");
                }
                else
                {
                    Write(dir, "memory.limit_in_bytes", bytes);
                    TryWrite(dir, "memory.memsw.limit_in_bytes", bytes); // no swap beyond the limit, where swap is accounted
                }

                if (!dirs.Contains(dir))
                {
                    dirs.Add(dir);
                }

                memoryDir = dir;
                said.Add(FormattableString.Invariant($"{mib} MiB memory (cgroup v{mem.Version} {(mem.Version == 2 ? "memory.max" : "memory.limit_in_bytes")})"));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            foreach (var dir in dirs)
            {
                TryRemove(dir);
            }

            throw new CgroupException(e.Message, e);
        }

        return new JobCgroup(dirs, memoryDir, Memory?.Version ?? 0, string.Join(", ", said));
    }

    private static string Prepare(CgroupController c, string controller, string name, List<string> made)
    {
        var own = Path.Combine(c.Base, OwnName);
        if (!Directory.Exists(own))
        {
            if (c.Version == 2)
            {
                EnableController(c.Base, controller);
            }

            Directory.CreateDirectory(own);
        }

        // The server runs with umask 077: a job (its researcher's account) must still reach its own cgroup to read its
        // limits, without listing the others'.
        EnsureMode(own, TraverseOnly);

        if (c.Version == 2)
        {
            EnableController(own, controller);
        }
        else if (controller == "cpuset" && string.IsNullOrWhiteSpace(ReadOrNull(Path.Combine(own, "cpuset.cpus"))))
        {
            // A new v1 cpuset is empty: give the backend's cgroup all of its parent's CPUs and memory nodes.
            Write(own, "cpuset.cpus", (ReadOrNull(Path.Combine(c.Base, "cpuset.effective_cpus")) ?? ReadOrNull(Path.Combine(c.Base, "cpuset.cpus")) ?? "").Trim());
            Write(own, "cpuset.mems", (ReadOrNull(Path.Combine(c.Base, "cpuset.effective_mems")) ?? ReadOrNull(Path.Combine(c.Base, "cpuset.mems")) ?? "").Trim());
        }

        var dir = Path.Combine(own, name);
        if (made.Contains(dir))
        {
            return dir; // v2: one cgroup for both controllers
        }

        if (Directory.Exists(dir))
        {
            // Left by an earlier run of the same job whose processes are gone (a live one is never started twice).
            KillAll(dir);
            TryRemove(dir);
        }

        Directory.CreateDirectory(dir);
        EnsureMode(dir, Readable);
        return dir;
    }

    private const UnixFileMode TraverseOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    private const UnixFileMode Readable = TraverseOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private static void EnsureMode(string dir, UnixFileMode mode)
    {
        if (!OperatingSystem.IsWindows() && File.GetUnixFileMode(dir) != mode)
        {
            File.SetUnixFileMode(dir, mode);
        }
    }

    private static void EnableController(string dir, string controller)
    {
        var enabled = ReadOrNull(Path.Combine(dir, "cgroup.subtree_control")) ?? "";
        if (!enabled.Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).Contains(controller))
        {
            Write(dir, "cgroup.subtree_control", "+" + controller);
        }
    }

    /// <summary>Kills every process left in the job's cgroups (whatever session or process group it moved to).</summary>
    public static int KillAll(string directory)
    {
        var killed = 0;
        foreach (var line in (ReadOrNull(Path.Combine(directory, "cgroup.procs")) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && pid > 1 && Posix.Kill(pid, Posix.SigKill))
            {
                killed++;
            }
        }

        return killed;
    }

    /// <summary>How many processes the kernel killed in the cgroup for exceeding its memory limit (v1 memory.oom_control, v2 memory.events).</summary>
    public static long OomKills(string memoryDirectory, int version)
    {
        var text = ReadOrNull(Path.Combine(memoryDirectory, version == 2 ? "memory.events" : "memory.oom_control")) ?? "";
        foreach (var line in text.Split('\n'))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length == 2 && f[0] == "oom_kill" && long.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                return n;
            }
        }

        return 0;
    }

    /// <summary>Removes an empty cgroup; false while processes remain in it (they are dying) or it cannot be removed.</summary>
    public static bool TryRemove(string directory)
    {
        try
        {
            Directory.Delete(directory);
            return true;
        }
        catch (DirectoryNotFoundException)
        {
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>
    /// Removes what earlier backends left in their <c>gpucommons</c> cgroups under this backend's name suffix (a crash or a
    /// reboot between a job's end and its cleanup): only empty ones go, a cgroup with processes stays.
    /// </summary>
    public void Sweep(Func<long, bool> running)
    {
        foreach (var c in new[] { Cpuset, Memory })
        {
            var own = c is null ? null : Path.Combine(c.Base, OwnName);
            if (own is null || !Directory.Exists(own))
            {
                continue;
            }

            try
            {
                foreach (var dir in Directory.EnumerateDirectories(own, "job-*-" + _suffix))
                {
                    var parts = Path.GetFileName(dir).Split('-');
                    if (parts.Length == 3 && long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var id) && !running(id))
                    {
                        TryRemove(dir);
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    /// <summary>The CPUs this process may run on (<c>Cpus_allowed_list</c> of <c>/proc/self/status</c>), in order.</summary>
    public static int[] AllowedCpus()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
            {
                return ParseList(line["Cpus_allowed_list:".Length..].Trim());
            }
        }

        return [.. Enumerable.Range(0, Environment.ProcessorCount)];
    }

    /// <summary>A kernel CPU list (<c>0-3,8,10-11</c>) as numbers.</summary>
    public static int[] ParseList(string list)
    {
        var cpus = new SortedSet<int>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var dash = part.IndexOf('-', StringComparison.Ordinal);
            var lo = int.Parse(dash < 0 ? part : part[..dash], NumberStyles.None, CultureInfo.InvariantCulture);
            var hi = dash < 0 ? lo : int.Parse(part[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture);
            for (var i = lo; i <= hi; i++)
            {
                cpus.Add(i);
            }
        }

        return [.. cpus];
    }

    /// <summary>CPU numbers as a kernel CPU list, ranges joined: 0,1,2,5 → <c>0-2,5</c>.</summary>
    public static string FormatList(IEnumerable<int> cpus) => GpuCommons.Backends.IntegerRanges.Format(cpus);

    private static void Write(string dir, string file, string value)
    {
        try
        {
            File.WriteAllText(Path.Combine(dir, file), value);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"writing '{value}' to {Path.Combine(dir, file)} failed: {e.Message}", e);
        }
    }

    private static void TryWrite(string dir, string file, string value)
    {
        if (File.Exists(Path.Combine(dir, file)))
        {
            try
            {
                File.WriteAllText(Path.Combine(dir, file), value);
            }
            catch (IOException)
            {
            }
        }
    }

    private static string? ReadOrNull(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string Join(string mount, string path) => path.Trim('/').Length == 0 ? mount : Path.Combine(mount, path.TrimStart('/'));

    // /proc/self/mounts escapes space, tab, newline and backslash as octal.
    private static string Unescape(string s) => s.Contains('\\', StringComparison.Ordinal)
        ? s.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal).Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal)
        : s;
}

/// <summary>The kernel refused to make or configure a job's cgroup.</summary>
internal sealed class CgroupException : Exception
{
    public CgroupException(string message, Exception inner)
        : base(message, inner)
    {
    }

    public CgroupException()
    {
    }

    public CgroupException(string message)
        : base(message)
    {
    }
}
