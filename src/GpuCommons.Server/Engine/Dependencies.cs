using System.Text.Json;
using GpuCommons.Contracts;

namespace GpuCommons.Server.Engine;

/// <summary>Where a job (or array) a dependency names stands.</summary>
public enum DependencyStatus
{
    /// <summary>Pending or running (an array: some task not ended yet, none ended badly).</summary>
    Live,

    /// <summary>An array with tasks still to run, of which one already ended badly.</summary>
    LiveAnyNotOk,

    /// <summary>Ended with exit code 0 (an array: every task did).</summary>
    Ok,

    /// <summary>Ended otherwise: failed, cancelled, out of time (an array: some task did).</summary>
    NotOk,

    /// <summary>No such job.</summary>
    Unknown,
}

/// <summary>What a dependency comes to now.</summary>
public enum DependencyResult
{
    Met,
    Wait,
    Never,
}

/// <summary>
/// Evaluates dependencies: <c>afterok</c> (each job ended with exit code 0; an array: every task), <c>afterany</c> (each
/// ended), <c>afternotok</c> (each ended badly; an array: ended with at least one task that did), <c>singleton</c> (no
/// earlier job of the same user and name is pending or running). A condition that can no longer hold makes the whole
/// dependency <see cref="DependencyResult.Never"/> (Slurm's <c>kill_invalid_depend</c>: the job is ended).
/// </summary>
public static class Dependencies
{
    public static readonly string[] Types = ["afterok", "afterany", "afternotok", "singleton"];

    public static string Serialize(IReadOnlyList<DependencyCondition> conditions) => JsonSerializer.Serialize(conditions);

    public static IReadOnlyList<DependencyCondition> Parse(string? json) =>
        string.IsNullOrEmpty(json) ? [] : JsonSerializer.Deserialize<List<DependencyCondition>>(json) ?? [];

    /// <summary>Every job id the conditions name.</summary>
    public static IEnumerable<long> JobIds(IReadOnlyList<DependencyCondition> conditions) => conditions.SelectMany(c => c.Jobs ?? []);

    public static (DependencyResult Result, string Why) Evaluate(IReadOnlyList<DependencyCondition> conditions, Func<long, DependencyStatus> status, Func<bool> singletonFree)
    {
        var result = DependencyResult.Met;
        var why = "";
        foreach (var c in conditions)
        {
            if (c.Type == "singleton")
            {
                if (!singletonFree())
                {
                    result = DependencyResult.Wait;
                    why = "singleton: an earlier job of the same user and name is pending or running";
                }

                continue;
            }

            foreach (var id in c.Jobs ?? [])
            {
                var s = status(id);
                var r = (c.Type, s) switch
                {
                    (_, DependencyStatus.Unknown) => DependencyResult.Never,
                    ("afterok", DependencyStatus.Ok) => DependencyResult.Met,
                    ("afterok", DependencyStatus.NotOk or DependencyStatus.LiveAnyNotOk) => DependencyResult.Never,
                    ("afternotok", DependencyStatus.NotOk) => DependencyResult.Met,
                    ("afternotok", DependencyStatus.Ok) => DependencyResult.Never,
                    ("afterany", DependencyStatus.Ok or DependencyStatus.NotOk) => DependencyResult.Met,
                    _ => DependencyResult.Wait,
                };
                if (r == DependencyResult.Never)
                {
                    var what = s switch
                    {
                        DependencyStatus.Unknown => "does not exist",
                        DependencyStatus.Ok => "ended successfully",
                        _ => "did not end successfully",
                    };
                    return (DependencyResult.Never, $"{c.Type}:{id}: job {id} {what}");
                }

                if (r == DependencyResult.Wait && result == DependencyResult.Met)
                {
                    result = DependencyResult.Wait;
                    why = $"{c.Type}:{id}: job {id} has not ended";
                }
            }
        }

        return (result, why);
    }
}
