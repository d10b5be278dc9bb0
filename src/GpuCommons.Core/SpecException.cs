namespace GpuCommons.Core;

/// <summary>
/// Thrown when a specification given by a user (a fleet spec, a tenancy file, a job) is malformed.
/// <see cref="Field"/> names the offending field as a path (for example <c>partitions[2].nodes[5].gpus</c>).
/// </summary>
public sealed class SpecException : Exception
{
    /// <summary>The field at <paramref name="field"/> is wrong for the reason <paramref name="message"/>; the exception's message is both.</summary>
    public SpecException(string field, string message)
        : base(string.IsNullOrEmpty(field) ? message : $"{field}: {message}")
    {
        Field = field;
        Reason = message;
    }

    /// <summary>As the two-argument form, with the fault behind it (a parser's exception).</summary>
    /// <param name="field">The path of the field that is wrong.</param>
    /// <param name="message">What is wrong with it.</param>
    /// <param name="inner">The fault behind it.</param>
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
