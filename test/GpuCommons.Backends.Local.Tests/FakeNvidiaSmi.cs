using GpuCommons.Backends.Local.Gpus;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>An nvidia-smi that answers from captured output (or is "not installed" when the answer is null).</summary>
internal sealed class FakeNvidiaSmi(Func<IReadOnlyList<string>, NvidiaSmiResult?> answer) : INvidiaSmi
{
    public int Calls { get; private set; }

    public Func<IReadOnlyList<string>, NvidiaSmiResult?> Answer { get; set; } = answer;

    public static FakeNvidiaSmi NotInstalled() => new(_ => null);

    /// <summary>One H100 from the fixtures: idle for --query-gpu, the given compute apps for --query-compute-apps.</summary>
    public static FakeNvidiaSmi H100(Func<string>? computeApps = null) => new(args =>
        args[0].StartsWith("--query-compute-apps", StringComparison.Ordinal)
            ? new NvidiaSmiResult(0, computeApps?.Invoke() ?? "pid, gpu_uuid, process_name, used_gpu_memory [MiB]\n", "")
            : new NvidiaSmiResult(0, Fixture.Read("query-gpu-idle.csv"), ""));

    public Task<NvidiaSmiResult?> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        Calls++;
        return Task.FromResult(Answer(arguments));
    }
}
