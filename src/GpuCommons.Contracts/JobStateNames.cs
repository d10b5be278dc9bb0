using System.Text.Json;
using System.Text.Json.Serialization;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Contracts;

/// <summary>
/// A job state's wire name: the text the API sends, the CLI and the portal read, and the database stores
/// (<c>jobs.State</c>). These strings are shared with earlier releases (a server of the previous release may share the
/// database), so they never change.
/// </summary>
public static class JobStateNames
{
    /// <summary>Wire name of <see cref="JobState.Pending"/>.</summary>
    public const string Pending = "pending";

    /// <summary>Wire name of <see cref="JobState.Running"/>.</summary>
    public const string Running = "running";

    /// <summary>Wire name of <see cref="JobState.Finished"/>.</summary>
    public const string Finished = "finished";

    /// <summary>Wire name of <see cref="JobState.Failed"/>.</summary>
    public const string Failed = "failed";

    /// <summary>Wire name of <see cref="JobState.Cancelled"/>.</summary>
    public const string Cancelled = "cancelled";

    /// <summary>Every state, in the order of the enumeration.</summary>
    public static IReadOnlyList<JobState> All { get; } = [JobState.Pending, JobState.Running, JobState.Finished, JobState.Failed, JobState.Cancelled];

    /// <summary>The state's wire name (<c>pending</c>, …).</summary>
    public static string ToWire(this JobState state) => state switch
    {
        JobState.Pending => Pending,
        JobState.Running => Running,
        JobState.Finished => Finished,
        JobState.Failed => Failed,
        JobState.Cancelled => Cancelled,
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, "not a job state"),
    };

    /// <summary>Reads a wire name (exact, lower case); false for anything else.</summary>
    public static bool TryParse(string? text, out JobState state)
    {
        switch (text)
        {
            case Pending: state = JobState.Pending; return true;
            case Running: state = JobState.Running; return true;
            case Finished: state = JobState.Finished; return true;
            case Failed: state = JobState.Failed; return true;
            case Cancelled: state = JobState.Cancelled; return true;
            default: state = default; return false;
        }
    }

    /// <summary>Reads a wire name; a <see cref="FormatException"/> naming the text for anything else.</summary>
    public static JobState Parse(string text) =>
        TryParse(text, out var state) ? state : throw new FormatException($"'{text}' is not a job state (pending, running, finished, failed, cancelled)");
}

/// <summary>Writes and reads a <see cref="JobState"/> as its wire name (<see cref="JobStateNames"/>).</summary>
public sealed class JobStateJsonConverter : JsonConverter<JobState>
{
    /// <inheritdoc />
    public override JobState Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.String && JobStateNames.TryParse(reader.GetString(), out var state)
            ? state
            : throw new JsonException("a job state is one of pending, running, finished, failed, cancelled");

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, JobState value, JsonSerializerOptions options) => writer.WriteStringValue(value.ToWire());
}
