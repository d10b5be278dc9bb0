using GpuCommons.Simulation.Metrics;

namespace GpuCommons.Simulation;

/// <summary>Figures of one month (by submit month for waits), per tenant class.</summary>
public sealed class MonthStats(int month, int classes)
{
    public int Month { get; } = month;
    /// <summary>GPU-hours of demand left waiting: GPUs asked by pending jobs × hours pending, in this month.</summary>
    public double[] UnservedGpuHours { get; } = new double[classes];
    /// <summary>GPU-hours allocated to running jobs in this month.</summary>
    public double[] AllocatedGpuHours { get; } = new double[classes];
    /// <summary>GPU-hours of work submitted in this month.</summary>
    public double[] DemandGpuHours { get; } = new double[classes];
    /// <summary>Waits (first start − submit) of jobs submitted this month that started.</summary>
    public QuantileSketch[] Wait { get; } = [.. Enumerable.Range(0, classes).Select(_ => new QuantileSketch())];
    /// <summary>Jobs submitted this month that never started before the end of the run.</summary>
    public long[] NeverStarted { get; } = new long[classes];
}
