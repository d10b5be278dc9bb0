namespace GpuCommons.Core.Tenancy;

/// <summary>
/// A grant of GPU-hours to a project on a partition (null: any partition), usable from <see cref="Start"/> to <see cref="End"/>.
/// <see cref="SpentGpuHours"/> is what was charged before the engine was (re)started.
/// </summary>
public sealed record AllocationSpec(string Id, string Project, string? Partition, double GpuHours, DateTimeOffset Start, DateTimeOffset End)
{
    /// <summary>GPU-hours charged to the allocation before the engine was (re)started; they count against <see cref="GpuHours"/>.</summary>
    public double SpentGpuHours { get; init; }

    /// <summary>An allocation with no limit of GPU-hours or time, for simulations that study scheduling alone.</summary>
    public static AllocationSpec Unlimited(string project) =>
        new($"{project}-unlimited", project, null, double.PositiveInfinity, DateTimeOffset.MinValue, DateTimeOffset.MaxValue);
}
