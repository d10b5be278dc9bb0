namespace GpuCommons.Backends.Slurm;

/// <summary>
/// Slurm did not do what was asked. <see cref="IsTransient"/>: the controller did not answer (down, slow, timed out);
/// retrying later is safe because submission is idempotent. Otherwise Slurm refused the request (bad node name,
/// invalid option) or printed something we could not read.
/// </summary>
public sealed class SlurmException : Exception
{
    public SlurmException(string message, bool isTransient, string? command = null, Exception? inner = null, SlurmFailureKind? kind = null)
        : base(message, inner)
    {
        IsTransient = isTransient;
        Command = command;
        Kind = kind ?? (isTransient ? SlurmFailureKind.Transient : SlurmFailureKind.Refused);
    }

    public SlurmException()
    {
    }

    public SlurmException(string message)
        : base(message)
    {
    }

    public SlurmException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public bool IsTransient { get; }

    /// <summary>What the failure means for the job: <see cref="SlurmFailureKind.JobRejected"/> when it was the job's own fault.</summary>
    public SlurmFailureKind Kind { get; }

    /// <summary>The command line that failed.</summary>
    public string? Command { get; }
}

/// <summary>A start withdrawn because the server's start fence (<see cref="SlurmBackendOptions.StartFence"/>) said it no longer leads.</summary>
public sealed class SlurmStartFencedException(string message) : Exception(message);
