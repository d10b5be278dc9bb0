using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace GpuCommons.Server.Security;

/// <summary>A POSIX account as the host's name service (files, LDAP, FreeIPA through NSS) knows it.</summary>
public sealed record PosixUserEntry(string Login, int Uid, int Gid, string Home);

/// <summary>
/// The host's accounts and groups: looked up through the name service switch (<c>getent</c>, so LDAP and FreeIPA
/// accounts are found as local ones are), created with <c>useradd</c>/<c>groupadd</c> where the server may provision them.
/// </summary>
public interface IPosixDirectory
{
    /// <summary>The account with this login, or null when the host has none.</summary>
    PosixUserEntry? FindUser(string login);

    /// <summary>The gid of the group with this name, or null when the host has none.</summary>
    int? FindGroup(string name);

    /// <summary>Creates a local account with its own home directory (mode 0700) and a login shell. Needs root.</summary>
    Task CreateUserAsync(string login, string comment, CancellationToken ct);

    /// <summary>Creates a local group. Needs root.</summary>
    Task CreateGroupAsync(string name, CancellationToken ct);
}

/// <summary>POSIX names and the rules that map GpuCommons users and projects to them (docs/accounts.md).</summary>
public static partial class PosixNames
{
    /// <summary>A name <c>useradd</c>/<c>groupadd</c> accept on Debian without <c>--badname</c>: lower-case, 1–32 characters.</summary>
    public static bool IsValid(string? name) => name is not null && ValidName().IsMatch(name) && name is not ("." or "..");

    /// <summary>
    /// The account or group a GpuCommons name maps to when none is set: the name itself when it is a valid POSIX name;
    /// otherwise (Korean or mixed-case names, say) <c>gpuc-</c>, up to 16 of its lower-cased ASCII letters and digits,
    /// and 8 hex digits of its SHA-256, which stays the same for the same name.
    /// </summary>
    public static string Default(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (IsValid(name))
        {
            return name;
        }

        var ascii = new string(name.ToLowerInvariant().Where(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9')).Take(16).ToArray());
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(name)))[..8];
        return ascii.Length > 0 ? $"gpuc-{ascii}-{hash}" : $"gpuc-{hash}";
    }

    [GeneratedRegex("^[a-z_][a-z0-9_-]{0,31}$", RegexOptions.CultureInvariant)]
    private static partial Regex ValidName();
}

/// <summary><see cref="IPosixDirectory"/> over <c>getent</c>, <c>useradd</c> and <c>groupadd</c>.</summary>
public sealed class NssPosixDirectory : IPosixDirectory
{
    private static readonly SemaphoreSlim CreateLock = new(1, 1);

    /// <inheritdoc />
    public PosixUserEntry? FindUser(string login)
    {
        if (!PosixNames.IsValid(login))
        {
            return null;
        }

        var (code, output) = Run("getent", "passwd", login);
        if (code != 0)
        {
            return null;
        }

        // name:passwd:uid:gid:gecos:home:shell
        var f = output.Trim().Split(':');
        return f.Length >= 7
            && int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
            && int.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var gid)
            ? new PosixUserEntry(f[0], uid, gid, f[5])
            : null;
    }

    /// <inheritdoc />
    public int? FindGroup(string name)
    {
        if (!PosixNames.IsValid(name))
        {
            return null;
        }

        var (code, output) = Run("getent", "group", name);
        var f = output.Trim().Split(':');
        return code == 0 && f.Length >= 3 && int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var gid) ? gid : null;
    }

    /// <inheritdoc />
    public async Task CreateUserAsync(string login, string comment, CancellationToken ct)
    {
        await CreateAsync(() => FindUser(login) is not null, ct, "useradd", "--create-home", "--shell", "/bin/bash", "--comment", Gecos(comment), login);
        if (!OperatingSystem.IsWindows() && FindUser(login) is { } entry && Directory.Exists(entry.Home))
        {
            // Debian's useradd leaves homes world-readable (HOME_MODE unset): another tenant must not list this one.
            File.SetUnixFileMode(entry.Home, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <inheritdoc />
    public Task CreateGroupAsync(string name, CancellationToken ct) => CreateAsync(() => FindGroup(name) is not null, ct, "groupadd", name);

    private static string Gecos(string comment) =>
        new(comment.Where(c => !char.IsControl(c) && c is not (':' or ',' or '=')).Take(64).ToArray());

    // useradd and groupadd lock /etc/passwd and /etc/group; another process (a second server, a test) may hold the lock
    // for a moment, so a failure is retried while the account is still missing.
    private static async Task CreateAsync(Func<bool> exists, CancellationToken ct, string program, params string[] args)
    {
        await CreateLock.WaitAsync(ct);
        try
        {
            string last = "";
            for (var attempt = 0; attempt < 20; attempt++)
            {
                if (exists())
                {
                    return;
                }

                var (code, output) = Run(program, args);
                if (code == 0 || exists())
                {
                    return;
                }

                last = output.Trim();
                await Task.Delay(TimeSpan.FromMilliseconds(100 + (attempt * 50)), TimeProvider.System, ct);
            }

            throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed: {last}");
        }
        finally
        {
            CreateLock.Release();
        }
    }

    private static (int Code, string Output) Run(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["LC_ALL"] = "C";
        try
        {
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                p.Kill(entireProcessTree: true);
                return (-1, $"{program} did not finish in 30 s");
            }

            return (p.ExitCode, stdout.GetAwaiter().GetResult() + stderr.GetAwaiter().GetResult());
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, $"{program}: {e.Message}");
        }
    }
}
