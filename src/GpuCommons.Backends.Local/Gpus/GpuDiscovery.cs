using System.Security.Cryptography;
using System.Text;

namespace GpuCommons.Backends.Local.Gpus;

/// <summary>The GPUs of the local node: real (from nvidia-smi) or virtual.</summary>
public sealed record GpuInventory(IReadOnlyList<DiscoveredGpu> Gpus, bool Virtual, string Source, string? Note, IReadOnlyList<NvidiaSmiGpu> Telemetry);

/// <summary>Finds the local GPUs with nvidia-smi, or makes virtual ones with stable UUIDs.</summary>
public static class GpuDiscovery
{
    /// <summary>
    /// Runs <c>nvidia-smi --query-gpu</c>. With no nvidia-smi, a failing one ("No devices were found") or no GPU, returns
    /// virtual GPUs (unless <see cref="LocalGpuMode.Real"/>, which throws). Output that does not parse throws
    /// <see cref="NvidiaSmiFormatException"/>: a machine whose GPUs cannot be read is not silently made virtual.
    /// </summary>
    public static async Task<GpuInventory> DiscoverAsync(INvidiaSmi nvidiaSmi, LocalGpuMode mode, int virtualCount, string virtualModel, long virtualMemoryMiB, string node, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nvidiaSmi);
        if (mode == LocalGpuMode.Virtual)
        {
            return Virtual(node, virtualCount, virtualModel, virtualMemoryMiB, "virtual GPUs by configuration");
        }

        var result = await QueryGpusAsync(nvidiaSmi, cancellationToken).ConfigureAwait(false);
        string reason;
        if (result is null)
        {
            reason = "nvidia-smi is not installed";
        }
        else if (result.ExitCode != 0)
        {
            reason = $"nvidia-smi failed with exit code {result.ExitCode}: {result.Summary}";
        }
        else
        {
            var gpus = result.Stdout.Trim().StartsWith("No devices were found", StringComparison.OrdinalIgnoreCase)
                ? []
                : NvidiaSmiParser.ParseQueryGpu(result.Stdout, NvidiaSmiParser.QueryGpuFields);
            if (gpus.Count > 0)
            {
                var discovered = gpus.OrderBy(g => g.Index).Select(g => new DiscoveredGpu(g.Index, g.Uuid, g.Name, g.MemoryTotalMiB)).ToList();
                var mig = gpus.Where(g => string.Equals(g.MigMode, "Enabled", StringComparison.OrdinalIgnoreCase)).Select(g => g.Index).ToList();
                var note = mig.Count == 0 ? null : $"MIG is enabled on GPU {string.Join(", ", mig)}: the local backend gives whole GPUs, not MIG instances.";
                return new GpuInventory(discovered, false, "nvidia-smi", note, gpus);
            }

            reason = "nvidia-smi found no GPU";
        }

        if (mode == LocalGpuMode.Real)
        {
            throw new InvalidOperationException($"The local backend is configured for real GPUs only, but {reason}.");
        }

        return Virtual(node, virtualCount, virtualModel, virtualMemoryMiB, reason);
    }

    /// <summary>
    /// Runs the GPU query; where the driver refuses one of its fields (<c>Field "…" is not a valid field to query</c>, an
    /// older nvidia-smi), runs it again with <see cref="NvidiaSmiParser.MinimalQueryGpuFields"/>. Null: no nvidia-smi.
    /// </summary>
    public static async Task<NvidiaSmiResult?> QueryGpusAsync(INvidiaSmi nvidiaSmi, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(nvidiaSmi);
        var result = await nvidiaSmi.RunAsync(NvidiaSmiParser.QueryGpuArguments, cancellationToken).ConfigureAwait(false);
        if (result is { ExitCode: not 0 } && (result.Stdout + result.Stderr).Contains("not a valid field", StringComparison.OrdinalIgnoreCase))
        {
            result = await nvidiaSmi.RunAsync(NvidiaSmiParser.MinimalQueryGpuArguments, cancellationToken).ConfigureAwait(false);
        }

        return result;
    }

    /// <summary>Virtual GPUs whose UUIDs depend only on the node name and index (the same on every start).</summary>
    public static GpuInventory Virtual(string node, int count, string model, long memoryMiB, string reason)
    {
        var gpus = new List<DiscoveredGpu>(count);
        for (var i = 0; i < count; i++)
        {
            gpus.Add(new DiscoveredGpu(i, VirtualUuid(node, i), model, memoryMiB));
        }

        var note = $"Virtual GPUs: {reason}. {node} runs jobs on {count} virtual GPU{(count == 1 ? "" : "s")}; "
            + "CUDA_VISIBLE_DEVICES holds their indices but there is no real device behind them.";
        return new GpuInventory(gpus, true, "virtual", note, []);
    }

    /// <summary>A stable fake UUID: <c>VGPU-</c> and a GUID hashed from the node name and the index.</summary>
    public static string VirtualUuid(string node, int index)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(FormattableString.Invariant($"gpucommons-virtual-gpu/{node}/{index}")));
        return "VGPU-" + new Guid(hash.AsSpan(0, 16)).ToString();
    }
}
