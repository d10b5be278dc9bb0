namespace GpuCommons.Backends.Slurm;

/// <summary>Runs one Slurm command-line tool. The process boundary, replaced by a fake in unit tests.</summary>
public interface ISlurmCommandRunner
{
    /// <summary>Runs <paramref name="tool"/> (<c>sbatch</c>, <c>squeue</c>, …) with <paramref name="args"/>, feeding <paramref name="stdin"/>.</summary>
    Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>What a Slurm tool printed and returned. <see cref="TimedOut"/> means it was killed at the timeout.</summary>
public sealed record SlurmCommandResult(int ExitCode, string Stdout, string Stderr, TimeSpan Elapsed, bool TimedOut = false)
{
    public bool Ok => ExitCode == 0 && !TimedOut;
}
