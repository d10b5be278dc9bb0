namespace GpuCommons.Simulation.Planning;

/// <summary>A fleet timeline to compare: which nodes are in service when.</summary>
public sealed record PlanScenario(string Name, string Description, IReadOnlyList<FleetEvent> Timeline);
