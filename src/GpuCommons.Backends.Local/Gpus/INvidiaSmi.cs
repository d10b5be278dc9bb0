namespace GpuCommons.Backends.Local.Gpus;

/// <summary>Runs <c>nvidia-smi</c>. Tests replace it with one that answers from captured output.</summary>
public interface INvidiaSmi
{
    /// <summary>Runs nvidia-smi with <paramref name="arguments"/>; <see langword="null"/> when nvidia-smi is not installed.</summary>
    Task<NvidiaSmiResult?> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken);
}

/// <summary>What one nvidia-smi run printed and how it exited.</summary>
public sealed record NvidiaSmiResult(int ExitCode, string Stdout, string Stderr)
{
    /// <summary>The first line of stderr or stdout, for messages ("No devices were found", "NVIDIA-SMI has failed …").</summary>
    public string Summary
    {
        get
        {
            var text = Stderr.Trim().Length > 0 ? Stderr : Stdout;
            var line = text.Trim().Split('\n', 2)[0].Trim();
            return line.Length == 0 ? $"exit code {ExitCode}" : line;
        }
    }
}
