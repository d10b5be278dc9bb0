using GpuCommons.Core.Fleet;

namespace GpuCommons.Simulation;

/// <summary>A change of the fleet at a point of the simulation: partitions arriving, being delayed or retiring.</summary>
/// <param name="AtSeconds">Seconds from the start of the workload.</param>
/// <param name="Nodes">Node names.</param>
/// <param name="State">Up: the nodes arrive (or return); Down: they leave; Draining: no new jobs.</param>
public sealed record FleetEvent(double AtSeconds, IReadOnlyList<string> Nodes, NodeState State, string Label = "");
