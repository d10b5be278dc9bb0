namespace GpuCommons.Backends.Local.Gpus;

/// <summary>One GPU as <c>nvidia-smi</c> reports it. Fields the output did not contain (or said <c>N/A</c>) are null.</summary>
/// <param name="Index">nvidia-smi's index (the default <c>CUDA_VISIBLE_DEVICES</c> ordinal, PCI bus order).</param>
public sealed record NvidiaSmiGpu(
    int Index,
    string Uuid,
    string Name,
    long MemoryTotalMiB,
    string? PciBusId = null,
    long? MemoryUsedMiB = null,
    long? MemoryFreeMiB = null,
    int? UtilizationGpuPercent = null,
    int? UtilizationMemoryPercent = null,
    int? TemperatureC = null,
    double? PowerDrawW = null,
    string? MigMode = null,
    IReadOnlyList<NvidiaSmiProcess>? Processes = null);

/// <summary>A compute process on a GPU (<c>--query-compute-apps</c> or the <c>processes</c> element of <c>-q -x</c>).</summary>
public sealed record NvidiaSmiProcess(int Pid, string GpuUuid, string ProcessName, long? UsedMemoryMiB);
