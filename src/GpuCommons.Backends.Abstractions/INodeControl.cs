namespace GpuCommons.Backends;

/// <summary>
/// Optional capability of a backend: applies an operator's node decision (drain, return to service) to the engine
/// underneath, so that the backend itself stops placing work there. A backend that runs everything itself (local)
/// may implement it as a no-op; the Slurm backend calls <c>scontrol update</c>.
/// </summary>
public interface INodeControl
{
    /// <summary>Stops new work on <paramref name="node"/>; running jobs continue.</summary>
    Task DrainNodeAsync(string node, string reason, CancellationToken cancellationToken);

    /// <summary>Returns a drained or down node to service.</summary>
    Task ResumeNodeAsync(string node, CancellationToken cancellationToken);
}
