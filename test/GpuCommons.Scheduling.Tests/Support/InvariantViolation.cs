namespace GpuCommons.Scheduling.Tests.Support;

/// <summary>Thrown when the engine breaks a scheduling invariant; the message says which and where.</summary>
internal sealed class InvariantViolation(string message) : Exception(message);
