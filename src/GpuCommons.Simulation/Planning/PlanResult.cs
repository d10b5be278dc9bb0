namespace GpuCommons.Simulation.Planning;

/// <summary>A scenario and what its simulation measured.</summary>
public sealed record PlanResult(PlanScenario Scenario, SimulationResult Result);
