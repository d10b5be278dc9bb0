namespace GpuCommons.Core;

/// <summary>
/// Thrown when a specification given by a user (a fleet spec, a tenancy file, a job) is malformed.
/// <see cref="Field"/> names the offending field as a path (for example <c>partitions[2].nodes[5].gpus</c>).
/// </summary>
public sealed class SpecException : Exception
{
    public SpecException(string field, string message)
        : base(string.IsNullOrEmpty(field) ? message : $"{field}: {message}")
    {
        Field = field;
        Reason = message;
    }

    public SpecException(string field, string message, Exception inner)
        : base(string.IsNullOrEmpty(field) ? message : $"{field}: {message}", inner)
    {
        Field = field;
        Reason = message;
    }

    /// <summary>The path of the field that is wrong.</summary>
    public string Field { get; }

    /// <summary>What is wrong with it, without the field name.</summary>
    public string Reason { get; }
}
