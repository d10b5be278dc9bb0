using System.Diagnostics;
using System.Security.Cryptography;

namespace GpuCommons.Backends.Local.Tests.Tenants;

/// <summary>
/// Two real local accounts (tenants A and B, each in a project group of its own), made with useradd/groupadd for the
/// tests of this class and deleted afterwards, plus what the hostile jobs aim at: a root-only secret, fake GPU device nodes
/// (made with mknod, as the Slurm CI does) and a setuid-root copy of <c>id</c>. Needs root; see <see cref="RootFactAttribute"/>.
/// </summary>
public sealed class TenantAccounts : IDisposable
{
    private readonly List<string> _users = [];
    private readonly List<string> _groups = [];

    public TenantAccounts()
    {
        if (!RootFactAttribute.IsRoot)
        {
            return;
        }

        var suffix = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        Root = Path.Combine(Path.GetTempPath(), "gpuct-" + suffix);
        Directory.CreateDirectory(Root);
        Chmod(Root, "0755");
        try
        {
            A = CreateTenant("a", suffix);
            B = CreateTenant("b", suffix);

            Secret = Path.Combine(Root, "admin-token");
            File.WriteAllText(Secret, "gpuct-admin-token-" + suffix + "\n");
            Chmod(Secret, "0600");

            DeviceDirectory = Path.Combine(Root, "dev");
            Directory.CreateDirectory(DeviceDirectory);
            Chmod(DeviceDirectory, "0755");
            for (var i = 0; i < 4; i++)
            {
                var device = Path.Combine(DeviceDirectory, $"nvidia{i}");
                Run("mknod", device, "c", "1", "3"); // /dev/null's numbers: opening it works for everyone, as a real nvidiaN does
                Chmod(device, "0666");
            }

            SetuidId = Path.Combine(Root, "setuid-id");
            File.Copy("/usr/bin/id", SetuidId);
            Run("chown", "root:root", SetuidId);
            Chmod(SetuidId, "4755");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>A folder every account can search (0755), holding the fixture's files.</summary>
    public string Root { get; } = "";

    public PosixIdentity A { get; } = null!;

    public PosixIdentity B { get; } = null!;

    /// <summary>A root-only (0600) file standing in for the server's admin token.</summary>
    public string Secret { get; } = "";

    /// <summary>Fake GPU device nodes <c>nvidia0</c>…<c>nvidia3</c> (character devices 1:3, mode 0666).</summary>
    public string DeviceDirectory { get; } = "";

    /// <summary>A setuid-root copy of <c>/usr/bin/id</c>.</summary>
    public string SetuidId { get; } = "";

    private PosixIdentity CreateTenant(string letter, string suffix)
    {
        var group = $"gpuct-p{letter}-{suffix}";
        var user = $"gpuct-{letter}-{suffix}";
        var home = Path.Combine(Root, "home-" + letter);
        Run("groupadd", group);
        _groups.Add(group);
        Run("useradd", "--no-create-home", "--no-user-group", "--home-dir", home, "--shell", "/usr/sbin/nologin", user);
        _users.Add(user);
        var uid = int.Parse(Run("id", "-u", user).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var gid = int.Parse(Run("getent", "group", group).Split(':')[2], System.Globalization.CultureInfo.InvariantCulture);
        Directory.CreateDirectory(home);
        Run("chown", $"{uid}:{gid}", home);
        Chmod(home, "0700");
        return new PosixIdentity(user, uid, group, gid, home);
    }

    /// <summary>Runs a program and returns its stdout; throws with its stderr when it fails.</summary>
    public static string Run(string program, params string[] args)
    {
        var (code, stdout, stderr) = TryRun(program, args);
        return code == 0 ? stdout : throw new InvalidOperationException($"{program} {string.Join(' ', args)} failed ({code}): {stderr}");
    }

    public static (int Code, string Stdout, string Stderr) TryRun(string program, params string[] args)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }

    private static void Chmod(string path, string mode) => Run("chmod", mode, path);

    /// <summary><c>uid:gid:mode</c> of a file (octal mode, as <c>stat -c %u:%g:%a</c> prints it).</summary>
    public static string Owner(string path) => Run("stat", "-c", "%u:%g:%a", path).Trim();

    public void Dispose()
    {
        foreach (var user in _users)
        {
            // The tests kill their jobs by session; userdel refuses an account something still runs as, hence --force then.
            if (TryRun("userdel", user).Code != 0)
            {
                TryRun("userdel", "--force", user);
            }
        }

        foreach (var group in _groups)
        {
            TryRun("groupdel", group);
        }

        if (Root.Length > 0)
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
