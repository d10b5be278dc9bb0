using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace GpuCommons.Backends.Slurm;

/// <summary>
/// The Slurm account of a project. Slurm stores account names in lower case and its tools split on <c>,</c>, <c>|</c>,
/// <c>=</c> and spaces, so a name keeps only <c>a-z 0-9 _ -</c>: upper-case ASCII is lowered, every run of other characters
/// becomes one <c>_</c>, and leading/trailing <c>_</c>/<c>-</c> are dropped. Whenever that changed the name (or it is empty,
/// does not start with a letter, or is longer than 40 characters) the first 8 hex digits of the SHA-256 of the exact
/// project name are appended after <c>-</c>, so that two projects never share an account: <c>demo</c> → <c>demo</c>,
/// <c>Demo</c> → <c>demo-…</c>, <c>AI Lab</c> → <c>ai_lab-…</c>, <c>서울대학교</c> → <c>p-…</c>.
/// </summary>
public static class SlurmAccountName
{
    private const int MaxCore = 40;

    public static string FromProject(string project, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(project);
        var sb = new StringBuilder(project.Length);
        var gap = false;
        foreach (var ch in project)
        {
            var c = char.IsAsciiLetterUpper(ch) ? char.ToLowerInvariant(ch) : ch;
            if (char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-')
            {
                if (gap && sb.Length > 0)
                {
                    sb.Append('_');
                }

                gap = false;
                sb.Append(c);
            }
            else
            {
                gap = true;
            }
        }

        var core = sb.ToString().Trim('_', '-');
        if (core.Length > MaxCore)
        {
            core = core[..MaxCore].TrimEnd('_', '-');
        }

        var exact = core == project && core.Length > 0 && char.IsAsciiLetterLower(core[0]);
        if (!exact)
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(project)))[..8];
            core = (core.Length > 0 && char.IsAsciiLetterLower(core[0]) ? core : core.Length == 0 ? "p" : "p" + core) + "-" + hash;
        }

        return prefix + core;
    }
}

/// <summary>What a failed <c>sbatch</c> (or the account switch before it) means for the job.</summary>
public enum SlurmFailureKind
{
    /// <summary>The controller (or slurmdbd) did not answer: retry later; the outcome of a submission is unknown.</summary>
    Transient,

    /// <summary>Slurm refused the job for a reason in the job itself (account, partition, user, working directory…): it would fail the same way again.</summary>
    JobRejected,

    /// <summary>Refused for another reason (placement, configuration, sudo not set up): retried by the server with back-off.</summary>
    Refused,
}

/// <summary>Classifies the messages of <c>sbatch</c>, <c>runuser</c> and <c>sudo</c>.</summary>
public static class SlurmFailures
{
    /// <summary>Messages of a refusal caused by the job: its account, its user, its partition, its limits, its paths.</summary>
    private static readonly string[] JobMarkers =
    [
        "Invalid account",                      // Invalid account or account/partition combination specified
        "Invalid partition",                    // Invalid partition name specified
        "Invalid qos",                          // Invalid qos specification
        "Invalid wckey",
        "Invalid user id",
        "User's group not permitted to use this partition",
        "Access/permission denied",
        "Requested time limit is invalid",
        "Pathname of a file, directory or other parameter too long",
        "Batch script is empty",
        "Batch script contains DOS line breaks",
        "does not exist or the user entry",     // runuser: user X does not exist or the user entry does not contain all the required fields
        "unknown user",                         // sudo: unknown user X
        "unknown group",                        // sudo: unknown group X
        "cannot enter its working directory",   // our own working-directory check
    ];

    /// <summary>sudo is not set up for the server: a configuration fault, never the job's.</summary>
    private static readonly string[] SudoMarkers =
    [
        "a password is required", "a terminal is required", "is not in the sudoers file", "is not allowed to execute", "no tty present",
    ];

    public static SlurmFailureKind Classify(SlurmCommandResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (SlurmClient.IsTransient(result))
        {
            return SlurmFailureKind.Transient;
        }

        var text = result.Stderr + "\n" + result.Stdout;
        if (SudoMarkers.Any(m => text.Contains(m, StringComparison.OrdinalIgnoreCase)))
        {
            return SlurmFailureKind.Refused;
        }

        var runuserGroup = text.Contains("runuser: group ", StringComparison.Ordinal) && text.Contains("does not exist", StringComparison.Ordinal);
        return runuserGroup || JobMarkers.Any(m => text.Contains(m, StringComparison.OrdinalIgnoreCase)) ? SlurmFailureKind.JobRejected : SlurmFailureKind.Refused;
    }

    /// <summary>Classifies an <c>sbatch</c> message (stderr) and exit code.</summary>
    public static SlurmFailureKind Classify(string stderr, int exitCode = 1) => Classify(new SlurmCommandResult(exitCode, "", stderr, TimeSpan.Zero));

    internal static bool IsSudoSetup(string text) => SudoMarkers.Any(m => text.Contains(m, StringComparison.OrdinalIgnoreCase));
}

/// <summary>Runs a tool as another account: the command line, and who the server itself is.</summary>
public static class SlurmUserSwitch
{
    private static readonly Lazy<int> Euid = new(ReadEffectiveUid);

    /// <summary>The effective uid of this process (from /proc/self/status; -1 when unknown).</summary>
    public static int ServerUid => Euid.Value;

    /// <summary>The mode <see cref="SlurmSubmitMode.Auto"/> stands for on this server.</summary>
    public static SlurmSubmitMode Resolve(SlurmSubmitMode mode) =>
        mode != SlurmSubmitMode.Auto ? mode : ServerUid == 0 ? SlurmSubmitMode.Runuser : SlurmSubmitMode.Sudo;

    /// <summary>
    /// <paramref name="tool"/> with <paramref name="args"/> run as <paramref name="login"/> (null: as the server):
    /// <c>runuser -u LOGIN [-g GROUP] -- tool args</c> or <c>sudo -n -u LOGIN [-g GROUP] -- tool args</c>. With
    /// <paramref name="group"/> the tool runs with that primary group, which Slurm gives the job.
    /// </summary>
    public static (string Tool, List<string> Args) Wrap(SlurmSubmitMode mode, string? login, string tool, IReadOnlyList<string> args, SlurmBackendOptions options, string? group = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(options);
        if (login is null)
        {
            return (tool, args.ToList());
        }

        var inner = options.BinDirectory is { } bin && !tool.Contains('/', StringComparison.Ordinal) && IsSlurmTool(tool) ? Path.Combine(bin, tool) : tool;
        var list = new List<string>(args.Count + 6);
        switch (Resolve(mode))
        {
            case SlurmSubmitMode.Runuser:
                list.AddRange(["-u", login]);
                if (group is not null)
                {
                    list.AddRange(["-g", group]);
                }

                list.AddRange(["--", inner]);
                list.AddRange(args);
                return (options.RunuserPath, list);
            case SlurmSubmitMode.Sudo:
                list.AddRange(["-n", "-u", login]);
                if (group is not null)
                {
                    list.AddRange(["-g", group]);
                }

                list.AddRange(["--", inner]);
                list.AddRange(args);
                return (options.SudoPath, list);
            default:
                throw new InvalidOperationException($"SubmitAs={mode}: cannot run {tool} as {login}");
        }
    }

    private static bool IsSlurmTool(string tool) => tool is "sbatch" or "scancel" or "squeue" or "sacct" or "sinfo" or "scontrol" or "sacctmgr";

    private static int ReadEffectiveUid()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    var f = line[4..].Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
                    return int.Parse(f[1], NumberStyles.None, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
        }

        return Environment.IsPrivilegedProcess ? 0 : -1;
    }
}
