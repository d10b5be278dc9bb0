using System.Globalization;

namespace GpuCommons.Backends.Slurm;

/// <summary>Slurm job names carrying the GpuCommons id: <c>gpuc-42</c> (first attempt), <c>gpuc-42-r1</c> (after one requeue).</summary>
public static class SlurmJobName
{
    public static string Format(string prefix, long jobId, int attempt) =>
        attempt == 0
            ? prefix + jobId.ToString(CultureInfo.InvariantCulture)
            : prefix + jobId.ToString(CultureInfo.InvariantCulture) + "-r" + attempt.ToString(CultureInfo.InvariantCulture);

    /// <summary>True when <paramref name="name"/> is one of ours; false for any other name (other users' jobs).</summary>
    public static bool TryParse(string prefix, string name, out long jobId, out int attempt)
    {
        jobId = 0;
        attempt = 0;
        if (!name.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = name.AsSpan(prefix.Length);
        var r = rest.IndexOf("-r", StringComparison.Ordinal);
        var idPart = r < 0 ? rest : rest[..r];
        if (idPart.IsEmpty || !long.TryParse(idPart, NumberStyles.None, CultureInfo.InvariantCulture, out jobId))
        {
            return false;
        }

        if (r >= 0 && !int.TryParse(rest[(r + 2)..], NumberStyles.None, CultureInfo.InvariantCulture, out attempt))
        {
            return false;
        }

        return true;
    }
}
