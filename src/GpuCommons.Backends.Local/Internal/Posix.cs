using System.Globalization;
using System.Runtime.InteropServices;

namespace GpuCommons.Backends.Local.Internal;

/// <summary>Linux process plumbing: signals, <c>/proc/PID/stat</c>, the boot id.</summary>
internal static partial class Posix
{
    // Linux signal numbers (x86-64 and arm64 agree on these).
    public const int SigKill = 9;
    public const int SigUsr1 = 10;
    public const int SigTerm = 15;
    public const int SigCont = 18;

    private const int Eperm = 1;
    private const int Esrch = 3;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SysKill(int pid, int sig);

    /// <summary>Sends <paramref name="signal"/> to a process (<paramref name="pid"/> &gt; 0) or a process group (&lt; 0). False when there is no such process.</summary>
    public static bool Kill(int pid, int signal)
    {
        if (SysKill(pid, signal) == 0)
        {
            return true;
        }

        // ESRCH: no such process (or group). EPERM: a process of the job that is no longer ours to signal (setuid).
        var errno = Marshal.GetLastPInvokeError();
        return errno is Esrch or Eperm ? false : throw new IOException($"kill({pid}, {signal}) failed: errno {errno}");
    }

    /// <summary>The fields of <c>/proc/PID/stat</c> this backend uses.</summary>
    public readonly record struct ProcStat(int Pid, char State, int ParentPid, int ProcessGroup, int Session, ulong StartTime)
    {
        public bool IsZombie => State is 'Z' or 'X' or 'x';
    }

    /// <summary>Reads <c>/proc/PID/stat</c>; null when the process does not exist.</summary>
    public static ProcStat? ReadStat(int pid)
    {
        string text;
        try
        {
            text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return ParseStat(text);
    }

    /// <summary>Parses a <c>/proc/PID/stat</c> line; the command name may hold spaces and parentheses, so fields are counted after the last ')'.</summary>
    public static ProcStat? ParseStat(string text)
    {
        var open = text.IndexOf('(', StringComparison.Ordinal);
        var close = text.LastIndexOf(')');
        if (open <= 0 || close < open)
        {
            return null;
        }

        var fields = text[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state); starttime is field 22.
        if (fields.Length < 20
            || !int.TryParse(text.AsSpan(0, open).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid)
            || !int.TryParse(fields[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var ppid)
            || !int.TryParse(fields[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var pgrp)
            || !int.TryParse(fields[3], NumberStyles.Integer, CultureInfo.InvariantCulture, out var session)
            || !ulong.TryParse(fields[19], NumberStyles.Integer, CultureInfo.InvariantCulture, out var start))
        {
            return null;
        }

        return new ProcStat(pid, fields[0][0], ppid, pgrp, session, start);
    }

    /// <summary>Every process whose session or process group is <paramref name="id"/> (a job's wrapper is the leader of both).</summary>
    public static List<ProcStat> ProcessesOf(int id)
    {
        var found = new List<ProcStat>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]) || !int.TryParse(name, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            if (ReadStat(pid) is { } st && (st.Session == id || st.ProcessGroup == id) && !st.IsZombie)
            {
                found.Add(st);
            }
        }

        return found;
    }

    /// <summary>
    /// The session leader run by <paramref name="ownerUid"/> whose command line holds all of <paramref name="arguments"/> (a
    /// job's wrapper), if one runs. The owner matters: a job's own processes run as its user and could mimic the wrapper.
    /// </summary>
    public static ProcStat? FindSessionLeaderWithArguments(int ownerUid, params string[] arguments)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]) || !int.TryParse(name, NumberStyles.Integer, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            string[] argv;
            try
            {
                argv = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (arguments.All(a => argv.Contains(a, StringComparer.Ordinal)) && ReadStat(pid) is { IsZombie: false } st && st.Session == pid
                && RealUid(pid) == ownerUid)
            {
                return st;
            }
        }

        return null;
    }

    /// <summary>The real uid of a process (from <c>/proc/PID/status</c>); null when it is gone.</summary>
    public static int? RealUid(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    var fields = line[4..].Split('\t', ' ', StringSplitOptions.RemoveEmptyEntries);
                    return fields.Length > 0 && int.TryParse(fields[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var uid) ? uid : null;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }

    /// <summary>Signals the whole job: its process group, and every process left in its session under another group.</summary>
    /// <remarks>Several signals (<c>SIGTERM</c> then <c>SIGCONT</c>) go out in order with one scan of <c>/proc</c>.</remarks>
    public static int SignalJob(int leader, params int[] signals)
    {
        var count = 0;
        foreach (var signal in signals)
        {
            count += Kill(-leader, signal) ? 1 : 0;
        }

        foreach (var p in ProcessesOf(leader))
        {
            if (p.ProcessGroup == leader)
            {
                continue;
            }

            foreach (var signal in signals)
            {
                count += Kill(p.Pid, signal) ? 1 : 0;
            }
        }

        return count;
    }

    /// <summary>
    /// Signals a job's leftovers only while <paramref name="leader"/> is not someone else's PID: either the leader is the
    /// job's own process (same start time) or it is gone, in which case the kernel does not reuse its PID while its group
    /// or session still has members, so the members are the job's.
    /// </summary>
    public static int SignalJobIfOurs(int leader, ulong startTicks, int signal)
    {
        if (leader <= 0)
        {
            return 0;
        }

        var stat = ReadStat(leader);
        return stat is null || stat.Value.StartTime == startTicks ? SignalJob(leader, signal) : 0;
    }

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint SysGetEuid();

    [LibraryImport("libc", EntryPoint = "getegid")]
    private static partial uint SysGetEgid();

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SysLchown(string path, uint owner, uint group);

    [LibraryImport("libc", EntryPoint = "mkdtemp", SetLastError = true)]
    private static unsafe partial byte* SysMkdtemp(byte* template);

    /// <summary>The effective uid of this process (0 when the backend runs as root).</summary>
    public static int EffectiveUid => unchecked((int)SysGetEuid());

    /// <summary>The effective gid of this process.</summary>
    public static int EffectiveGid => unchecked((int)SysGetEgid());

    /// <summary>Gives <paramref name="path"/> (never the target of a symbolic link) to <paramref name="uid"/>:<paramref name="gid"/>.</summary>
    public static void Chown(string path, int uid, int gid)
    {
        if (SysLchown(path, unchecked((uint)uid), unchecked((uint)gid)) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException(FormattableString.Invariant($"lchown({path}, {uid}, {gid}) failed: errno {errno}"));
        }
    }

    /// <summary>
    /// Creates a new directory <c>PREFIX</c> followed by six random characters, mode 0700, with <c>mkdtemp(3)</c>: it never
    /// reuses an existing path or follows a link planted there.
    /// </summary>
    public static unsafe string CreateUniqueDirectory(string prefix)
    {
        var template = System.Text.Encoding.UTF8.GetBytes(prefix + "XXXXXX\0");
        fixed (byte* p = template)
        {
            if (SysMkdtemp(p) is null)
            {
                var errno = Marshal.GetLastPInvokeError();
                throw new IOException(FormattableString.Invariant($"mkdtemp({prefix}XXXXXX) failed: errno {errno}"));
            }
        }

        return System.Text.Encoding.UTF8.GetString(template, 0, template.Length - 1);
    }

    private static string? _bootId;

    /// <summary>The kernel's boot id (<c>/proc/sys/kernel/random/boot_id</c>): a PID and start time mean nothing across a reboot.</summary>
    public static string BootId => _bootId ??= ReadBootId();

    private static string ReadBootId()
    {
        try
        {
            return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim();
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
