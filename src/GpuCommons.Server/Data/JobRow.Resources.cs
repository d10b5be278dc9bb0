namespace GpuCommons.Server.Data;

/// <summary>A job's cores, memory, GPU models and node features (docs/scheduling.md, "Resources"); all optional.</summary>
public sealed partial class JobRow
{
    public int? CpusPerGpu { get; set; }
    public int? CpusPerNode { get; set; }
    public long? MemoryMiBPerGpu { get; set; }
    public long? MemoryMiBPerNode { get; set; }
    /// <summary>Allowed GPU models joined by <c>,</c>; null: any model.</summary>
    public string? GpuModels { get; set; }
    /// <summary>Required node features joined by <c>&amp;</c>; null: none.</summary>
    public string? Features { get; set; }
}
