namespace GpuCommons.Simulation;

/// <summary>How far a run is.</summary>
public readonly record struct SimulationProgress(double VirtualSeconds, long Arrived, long Ended, int? Expected, double? HorizonSeconds);
