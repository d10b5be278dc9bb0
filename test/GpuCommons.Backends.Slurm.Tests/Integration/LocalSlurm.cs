using System.Diagnostics;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests.Integration;

/// <summary>
/// The real Slurm started by <c>ci/slurm/start-local-slurm.sh</c> (4 virtual nodes n1–n4, 8 fake GPUs each).
/// Tests that need it skip with a clear message where it is not running, and fail when <c>CI=true</c>.
/// </summary>
internal static class LocalSlurm
{
    public const string PidFile = "/run/slurm/slurmctld.pid";

    private static readonly Lazy<string?> Problem = new(Probe);

    public static bool OnCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static string? WhyNot => Problem.Value;

    public static string SkipMessage =>
        $"needs a running Slurm ({WhyNot}); start one with: sudo bash ci/slurm/start-local-slurm.sh (CI=true makes this a failure)";

    /// <summary>Fails the test (on CI the attribute does not skip) when Slurm is not there.</summary>
    public static void Require()
    {
        if (WhyNot is { } why)
        {
            Assert.Fail($"Slurm is required on CI but not usable: {why}. .ci/run must run ci/slurm/start-local-slurm.sh first.");
        }
    }

    private static string? Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "not Linux";
        }

        if (Environment.UserName != "root")
        {
            return "tests change node states and restart slurmctld, so they run as root";
        }

        var (code, output) = Run("scontrol", "ping");
        if (code != 0 || !output.Contains("UP", StringComparison.Ordinal))
        {
            return code == 127 ? "scontrol not installed" : $"scontrol ping: {output.Trim()}";
        }

        var (c2, nodes) = Run("sinfo", "-h", "-N", "-o", "%N");
        var count = nodes.Split('\n', StringSplitOptions.RemoveEmptyEntries).Distinct().Count();
        return c2 != 0 || count < 4 ? $"needs 4 nodes n1-n4, sinfo shows {count} (SLURM_NODES=4 ci/slurm/start-local-slurm.sh --clean)" : null;
    }

    public static (int Code, string Output) Run(string tool, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args)
            {
                psi.ArgumentList.Add(a);
            }

            psi.Environment["TZ"] = "UTC";
            psi.Environment["SLURM_TIME_FORMAT"] = "standard";
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(60_000))
            {
                p.Kill(true);
                return (124, "timed out");
            }

            return (p.ExitCode, stdout.Result + stderr.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (127, e.Message);
        }
    }

    /// <summary>Stops slurmctld by the PID in its pid file (never by name) and waits until it is gone.</summary>
    public static async Task StopControllerAsync()
    {
        var pid = int.Parse(File.ReadAllText(PidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        using var p = Process.GetProcessById(pid);
        Run("kill", "-TERM", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        for (var i = 0; i < 150 && !p.HasExited; i++)
        {
            await Task.Delay(100);
        }

        if (!p.HasExited)
        {
            Run("kill", "-KILL", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>Starts slurmctld (it daemonizes and recovers its state) and waits until it answers.</summary>
    public static async Task StartControllerAsync()
    {
        Run("/usr/sbin/slurmctld");
        for (var i = 0; i < 120; i++)
        {
            if (Run("scontrol", "ping").Output.Contains("UP", StringComparison.Ordinal))
            {
                return;
            }

            await Task.Delay(500);
        }

        throw new InvalidOperationException("slurmctld did not come back within 60 s");
    }

    /// <summary>Returns a node to service and waits until Slurm shows it idle or mixed.</summary>
    public static async Task ResumeAsync(string node)
    {
        Run("scontrol", "update", "nodename=" + node, "state=resume");
        for (var i = 0; i < 120; i++)
        {
            var s = Run("sinfo", "-h", "-N", "-n", node, "-o", "%T").Output.Trim();
            if (s is "idle" or "mixed" or "allocated")
            {
                return;
            }

            await Task.Delay(500);
        }
    }
}

/// <summary>A fact that needs the local Slurm: skipped with the reason when it is not running, unless CI=true.</summary>
public sealed class SlurmFactAttribute : FactAttribute
{
    public SlurmFactAttribute()
    {
        if (LocalSlurm.WhyNot is not null && !LocalSlurm.OnCi)
        {
            Skip = LocalSlurm.SkipMessage;
        }
    }
}
