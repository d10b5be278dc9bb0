namespace GpuCommons.Scheduling;

/// <summary>
/// Nodes set aside for a time window: for a project (a flagship team) or, with no project, for maintenance.
/// Before the window, other jobs may use the nodes only if they end before it starts; in the window only the
/// project's jobs run there.
/// </summary>
public sealed record AdvanceReservation(string Name, IReadOnlyList<string> Nodes, DateTimeOffset Start, DateTimeOffset End, string? Project);
