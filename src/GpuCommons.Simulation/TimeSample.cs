namespace GpuCommons.Simulation;

/// <summary>One time-series sample: the state of the fleet and the queue at <see cref="Seconds"/>.</summary>
public sealed record TimeSample(double Seconds, int Pending, int Running, double AllocatedGpus, int UpGpus, int StrandedGpus, int Preempting, double[] AllocatedByClass, double[] PendingGpusByClass);
