using System.Diagnostics;

namespace GpuCommons.Backends.Slurm;

/// <summary>
/// Runs the Slurm tools as child processes with <c>TZ=UTC</c> and <c>SLURM_TIME_FORMAT=standard</c>, so that every time
/// they print is ISO 8601 in UTC, whatever the server's locale.
/// </summary>
public sealed partial class ProcessSlurmCommandRunner : ISlurmCommandRunner
{
    private readonly string? _binDirectory;
    private readonly TimeProvider _time;
    private readonly int _niceness;

    /// <param name="binDirectory">Where the tools are (null: from PATH).</param>
    /// <param name="time">The clock for timeouts and latencies.</param>
    /// <param name="niceness">The niceness the commands run at, 0–19 (see <see cref="SlurmBackendOptions.CommandNiceness"/>).</param>
    public ProcessSlurmCommandRunner(string? binDirectory = null, TimeProvider? time = null, int niceness = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(niceness);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(niceness, 19);
        _binDirectory = binDirectory;
        _time = time ?? TimeProvider.System;
        _niceness = niceness;
    }

    public async Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, TimeSpan timeout, CancellationToken cancellationToken)
    {
        // BinDirectory holds the Slurm tools only; helpers (runuser, sudo, getent, test, chown) come from PATH.
        var slurmTool = tool is "sbatch" or "scancel" or "squeue" or "sacct" or "sinfo" or "scontrol" or "sacctmgr";
        var psi = new ProcessStartInfo(_binDirectory is null || !slurmTool ? tool : Path.Combine(_binDirectory, tool))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["TZ"] = "UTC";
        psi.Environment["SLURM_TIME_FORMAT"] = "standard";
        psi.Environment["LC_ALL"] = "C";
        // Options the tools read from the environment must not change what we asked for.
        foreach (var v in EnvironmentOverrides)
        {
            psi.Environment.Remove(v);
        }

        var started = _time.GetTimestamp();
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new SlurmCommandResult(127, "", $"{tool}: cannot start: {e.Message}", _time.GetElapsedTime(started));
        }

        if (_niceness > 0)
        {
            Nice(process.Id, _niceness);
        }

        var stdoutTask = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderrTask = process.StandardError.ReadToEndAsync(cancellationToken);
        if (stdin is not null)
        {
            await process.StandardInput.WriteAsync(stdin.AsMemory(), cancellationToken).ConfigureAwait(false);
            process.StandardInput.Close();
        }

        using var timeoutCts = new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutCts.Token);
        try
        {
            await process.WaitForExitAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // already exited
            }

            cancellationToken.ThrowIfCancellationRequested();
            return new SlurmCommandResult(-1, "", $"{tool}: timed out after {timeout.TotalSeconds:0.#} s", _time.GetElapsedTime(started), TimedOut: true);
        }

        var stdout = await stdoutTask.ConfigureAwait(false);
        var stderr = await stderrTask.ConfigureAwait(false);
        return new SlurmCommandResult(process.ExitCode, stdout, stderr, _time.GetElapsedTime(started));
    }

    /// <summary>
    /// Lowers the child's CPU priority (<c>setpriority</c>; its children inherit it). Best effort: a command that already
    /// exited, or a system that refuses, leaves it at the server's own priority.
    /// </summary>
    private static void Nice(int pid, int niceness)
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD())
        {
            _ = SetPriority(PrioProcess, (uint)pid, niceness);
        }
    }

    private const int PrioProcess = 0;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "setpriority")]
    private static partial int SetPriority(int which, uint who, int prio);

    /// <summary>Environment variables that would silently change the output or behaviour of the tools we run.</summary>
    private static readonly string[] EnvironmentOverrides =
    [
        "SQUEUE_FORMAT", "SQUEUE_FORMAT2", "SQUEUE_SORT", "SQUEUE_STATES", "SQUEUE_USERS", "SQUEUE_ACCOUNT", "SQUEUE_PARTITION",
        "SINFO_FORMAT", "SINFO_PARTITION", "SINFO_SORT", "SACCT_FORMAT",
        "SBATCH_EXPORT", "SBATCH_GPUS_PER_NODE", "SBATCH_PARTITION", "SBATCH_TIMELIMIT", "SBATCH_HOLD", "SBATCH_REQUEUE", "SBATCH_NO_REQUEUE",
        "SLURM_JOB_ID", "SLURM_JOBID",
    ];
}
