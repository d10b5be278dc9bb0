using System.Text;
using System.Text.Json;
using GpuCommons.Core;
using GpuCommons.Server.Data;

namespace GpuCommons.Server.Api;

/// <summary>
/// Rules for input that must be right before it is stored: names (any script, Korean included, but no control or
/// bidirectional-control characters, no path-like names), what a job runs (a program, sizes the kernel accepts, no
/// NUL bytes, valid environment names), and the URIs the API answers with.
/// </summary>
internal static class InputRules
{
    /// <summary>Longest argument or environment string the kernel takes, NUL included (MAX_ARG_STRLEN).</summary>
    public const int MaxArgStringBytes = 131_072;

    /// <summary>
    /// Most bytes of arguments and environment a job may ask for: the kernel's usual ARG_MAX (2 MiB, a quarter of an
    /// 8 MiB stack) less 64 KiB for the variables the backend sets itself (PATH, HOME, GPUC_*, CUDA_VISIBLE_DEVICES).
    /// Each string counts its bytes, its NUL and its pointer, as the kernel counts them.
    /// </summary>
    public const int MaxArgBytes = (2 * 1024 * 1024) - (64 * 1024);

    /// <summary>Checks the name of a user, organisation, project, allocation or reservation.</summary>
    public static void CheckName(string? name, string field)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw ApiException.Field(field, "is required");
        }

        if (name.Length > 128)
        {
            throw ApiException.Field(field, $"at most 128 characters, got {name.Length}");
        }

        CheckNoUnsafe(name, field);
        if (name is "." or "..")
        {
            throw ApiException.Field(field, $"'{name}' is not a name");
        }

        if (name.IndexOfAny(['/', '\\', ',']) is var i and >= 0)
        {
            throw ApiException.Field(field, $"must not contain '{name[i]}' (no '/', '\\' or ',')");
        }
    }

    /// <summary>Checks a job's name (optional; any text on one line, at most 200 characters).</summary>
    public static void CheckJobName(string? name)
    {
        if (name is null)
        {
            return;
        }

        if (name.Length > 200)
        {
            throw ApiException.Field("name", "at most 200 characters");
        }

        CheckNoUnsafe(name, "name");
        if (name is "." or "..")
        {
            throw ApiException.Field("name", $"'{name}' is not a name");
        }
    }

    /// <summary>Refuses control, bidirectional-control and lone-surrogate characters, naming the first one found.</summary>
    public static void CheckNoUnsafe(string text, string field)
    {
        var i = TextSafety.FirstUnsafe(text);
        if (i >= 0)
        {
            throw ApiException.Field(field, $"must not contain control or bidirectional-control characters ({TextSafety.Describe(text[i])} at position {i})");
        }
    }

    /// <summary>A job's name when it gives none: the program's file name, with unsafe characters replaced.</summary>
    public static string DefaultJobName(string program)
    {
        var name = Path.GetFileName(program.TrimEnd('/'));
        if (TextSafety.FirstUnsafe(name) >= 0)
        {
            var sb = new StringBuilder(name.Length);
            foreach (var c in name)
            {
                sb.Append(TextSafety.IsUnsafe(c) || char.IsSurrogate(c) ? '_' : c);
            }

            name = sb.ToString();
        }

        name = name.Length > 200 ? name[..200] : name;
        return string.IsNullOrWhiteSpace(name) || name is "." or ".." ? "job" : name;
    }

    /// <summary>
    /// What a job runs, as far as it can be checked before it starts: a program (not empty nor blank), no NUL byte
    /// anywhere, environment names a shell and <c>execve</c> accept, and sizes within the kernel's limits.
    /// </summary>
    public static void CheckCommand(IReadOnlyList<string> command, IReadOnlyDictionary<string, string>? environment, string? workingDirectory)
    {
        if (string.IsNullOrWhiteSpace(command[0]))
        {
            throw ApiException.Field("command[0]", "the program to run must not be empty");
        }

        long total = 0;
        for (var i = 0; i < command.Count; i++)
        {
            var arg = command[i];
            if (arg.Contains('\0', StringComparison.Ordinal))
            {
                throw ApiException.Field($"command[{i}]", "must not contain a NUL byte (U+0000)");
            }

            var bytes = Encoding.UTF8.GetByteCount(arg) + 1;
            if (bytes > MaxArgStringBytes)
            {
                throw ApiException.Field($"command[{i}]", $"{bytes - 1} bytes is more than the kernel takes in one argument ({MaxArgStringBytes - 1} bytes, MAX_ARG_STRLEN)");
            }

            total += bytes + IntPtr.Size;
        }

        if (total > MaxArgBytes)
        {
            throw ApiException.Field("command", $"the arguments take {total} bytes, more than the {MaxArgBytes} a job may pass (the kernel's ARG_MAX, less room for the job's own variables)");
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            if (!IsEnvironmentName(name))
            {
                throw ApiException.Field($"environment.{TextSafety.Escape(name)}", "names must be ASCII letters, digits and '_', not starting with a digit");
            }

            if (value.Contains('\0', StringComparison.Ordinal))
            {
                throw ApiException.Field($"environment.{name}", "must not contain a NUL byte (U+0000)");
            }

            var bytes = Encoding.UTF8.GetByteCount(name) + 1 + Encoding.UTF8.GetByteCount(value) + 1;
            if (bytes > MaxArgStringBytes)
            {
                throw ApiException.Field($"environment.{name}", $"{bytes - 1} bytes (NAME=value) is more than the kernel takes in one variable ({MaxArgStringBytes - 1} bytes, MAX_ARG_STRLEN)");
            }

            total += bytes + IntPtr.Size;
        }

        if (total > MaxArgBytes)
        {
            throw ApiException.Field("environment", $"arguments and environment take {total} bytes, more than the {MaxArgBytes} a job may pass (the kernel's ARG_MAX, less room for the job's own variables)");
        }

        if (workingDirectory is not null && workingDirectory.Contains('\0', StringComparison.Ordinal))
        {
            throw ApiException.Field("workingDirectory", "must not contain a NUL byte (U+0000)");
        }
    }

    /// <summary>A POSIX environment name: <c>[A-Za-z_][A-Za-z0-9_]*</c>.</summary>
    public static bool IsEnvironmentName(string? name) =>
        !string.IsNullOrEmpty(name) && !char.IsAsciiDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    /// <summary>
    /// A relative URI under <c>/api/</c> with each segment percent-encoded (UTF-8), so that a Location header stays
    /// ASCII for any name: <c>Location("users", "김연구")</c> is <c>/api/users/%EA%B9%80%EC%97%B0%EA%B5%AC</c>.
    /// </summary>
    public static string Location(params string[] segments)
    {
        var sb = new StringBuilder("/api");
        foreach (var s in segments)
        {
            sb.Append('/').Append(Uri.EscapeDataString(s));
        }

        return sb.ToString();
    }

    /// <summary>
    /// Whether two submissions ask for the same job: every field the request sets, compared in a canonical form
    /// (defaults filled in, the environment as a set). A retry with the same Idempotency-Key must match.
    /// </summary>
    public static bool SameSubmission(JobRow a, JobRow b) =>
        a.Project == b.Project && a.Name == b.Name && a.Partition == b.Partition && a.Gpus.Equals(b.Gpus)
        && a.Nodes == b.Nodes && a.GpusPerNode == b.GpusPerNode && a.WalltimeSeconds == b.WalltimeSeconds
        && a.Priority == b.Priority && a.Checkpointable == b.Checkpointable && a.Requeueable == b.Requeueable
        && a.WorkingDirectory == b.WorkingDirectory
        && a.CpusPerGpu == b.CpusPerGpu && a.CpusPerNode == b.CpusPerNode && a.MemoryMiBPerGpu == b.MemoryMiBPerGpu
        && a.MemoryMiBPerNode == b.MemoryMiBPerNode && a.GpuModels == b.GpuModels && a.Features == b.Features
        && a.Image == b.Image && a.Mounts == b.Mounts
        && a.ArrayIndices == b.ArrayIndices && a.ArrayMaxRunning == b.ArrayMaxRunning && a.Dependency == b.Dependency
        && Strings(a.Command).SequenceEqual(Strings(b.Command), StringComparer.Ordinal)
        && Environment(a.Environment).SequenceEqual(Environment(b.Environment));

    private static List<string> Strings(string json) => JsonSerializer.Deserialize<List<string>>(json) ?? [];

    private static List<KeyValuePair<string, string>> Environment(string? json) =>
        string.IsNullOrEmpty(json) ? []
            : (JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? []).OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
}
