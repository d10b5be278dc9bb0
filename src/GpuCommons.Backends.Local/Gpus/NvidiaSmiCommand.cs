using System.ComponentModel;
using System.Diagnostics;

namespace GpuCommons.Backends.Local.Gpus;

/// <summary>
/// Runs the real <c>nvidia-smi</c>: the configured path, else the first found on <c>PATH</c>, in
/// <c>/usr/bin</c> or <c>/usr/local/nvidia/bin</c>. A run that takes longer than <see cref="Timeout"/> is killed and
/// reported as a failure (a hung driver is a sick node).
/// </summary>
public sealed class NvidiaSmiCommand : INvidiaSmi
{
    private static readonly string[] WellKnown = ["/usr/bin/nvidia-smi", "/usr/local/nvidia/bin/nvidia-smi", "/usr/local/bin/nvidia-smi"];

    private readonly string? _configuredPath;

    public NvidiaSmiCommand(string? path = null, TimeSpan? timeout = null)
    {
        _configuredPath = path;
        Timeout = timeout ?? TimeSpan.FromSeconds(30);
    }

    public TimeSpan Timeout { get; }

    /// <summary>The nvidia-smi that would run, or <see langword="null"/> where there is none.</summary>
    public string? ResolvePath()
    {
        if (!string.IsNullOrEmpty(_configuredPath))
        {
            return File.Exists(_configuredPath) ? _configuredPath : null;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "nvidia-smi");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return WellKnown.FirstOrDefault(File.Exists);
    }

    public async Task<NvidiaSmiResult?> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var path = ResolvePath();
        if (path is null)
        {
            return null;
        }

        var psi = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (Win32Exception)
        {
            return null;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            return new NvidiaSmiResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
            }

            return new NvidiaSmiResult(-1, "", $"nvidia-smi did not answer within {Timeout.TotalSeconds:0} s and was killed");
        }
    }
}
