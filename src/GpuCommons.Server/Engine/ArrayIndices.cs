using System.Globalization;
using System.Text;

namespace GpuCommons.Server.Engine;

/// <summary>
/// The task indices of a job array, as Slurm's <c>--array</c> writes them without <c>%</c>: comma-separated <c>N</c>,
/// <c>A-B</c> or <c>A-B:STEP</c>, in increasing order without overlap, each index 0 … <see cref="MaxIndex"/>. Kept as its
/// segments, never as a list of tasks: the task at a position and the remainder from a position are computed.
/// </summary>
public sealed class ArrayIndices
{
    public const long MaxIndex = 4_000_000;

    private readonly (long Start, long End, long Step)[] _segments;
    private readonly long[] _before; // tasks in the segments before each one

    private ArrayIndices((long, long, long)[] segments)
    {
        _segments = segments;
        _before = new long[segments.Length];
        long n = 0;
        for (var i = 0; i < segments.Length; i++)
        {
            _before[i] = n;
            n += SegmentCount(segments[i]);
        }

        Count = n;
    }

    /// <summary>How many tasks.</summary>
    public long Count { get; }

    public long Min => _segments[0].Start;

    public long Max => Last(_segments[^1]);

    private static long SegmentCount((long Start, long End, long Step) s) => (s.End - s.Start) / s.Step + 1;

    private static long Last((long Start, long End, long Step) s) => s.Start + (SegmentCount(s) - 1) * s.Step;

    /// <summary>Parses the indices, or says what is wrong with them (null error: parsed).</summary>
    public static ArrayIndices? TryParse(string? text, out string? error)
    {
        error = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "is required: N, A-B or A-B:STEP, comma-separated";
            return null;
        }

        var list = new List<(long, long, long)>();
        long previous = -1;
        foreach (var item in text.Split(','))
        {
            var range = item;
            long step = 1;
            var colon = item.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                if (!long.TryParse(item[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out step) || step < 1)
                {
                    error = $"'{item}': the step after ':' must be a positive number";
                    return null;
                }

                range = item[..colon];
            }

            var ends = range.Split('-');
            if (ends.Length > 2 || !long.TryParse(ends[0], NumberStyles.None, CultureInfo.InvariantCulture, out var a)
                || !long.TryParse(ends[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var b) || (colon >= 0 && ends.Length == 1))
            {
                error = $"'{item}' is not N, A-B or A-B:STEP";
                return null;
            }

            if (a > b || b > MaxIndex)
            {
                error = $"'{item}': a range goes from a lower to a higher index, each 0 … {MaxIndex}";
                return null;
            }

            if (a <= previous)
            {
                error = $"'{item}': ranges must be in increasing order without overlap (after {previous})";
                return null;
            }

            var seg = (a, b, step);
            list.Add(seg);
            previous = Last(seg);
        }

        return new ArrayIndices([.. list]);
    }

    /// <summary>The task index at <paramref name="position"/> (0 ≤ position &lt; <see cref="Count"/>).</summary>
    public long At(long position)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(position, Count);
        var i = Array.BinarySearch(_before, position);
        if (i < 0)
        {
            i = ~i - 1;
        }

        while (i + 1 < _before.Length && _before[i + 1] <= position)
        {
            i++;
        }

        var s = _segments[i];
        return s.Start + (position - _before[i]) * s.Step;
    }

    /// <summary>The position of a task index, or -1 when the array has no such task.</summary>
    public long PositionOf(long index)
    {
        for (var i = 0; i < _segments.Length; i++)
        {
            var s = _segments[i];
            if (index >= s.Start && index <= s.End)
            {
                return (index - s.Start) % s.Step == 0 ? _before[i] + (index - s.Start) / s.Step : -1;
            }
        }

        return -1;
    }

    /// <summary>
    /// The tasks from <paramref name="position"/> on, in the same grammar (<c>8-999</c>, <c>10-998:2,2000</c>), leaving out
    /// the indices in <paramref name="skip"/>; empty when none are left.
    /// </summary>
    public string Remainder(long position, IReadOnlySet<long>? skip = null)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < _segments.Length; i++)
        {
            var s = _segments[i];
            var n = SegmentCount(s);
            var from = Math.Max(0, position - _before[i]);
            if (from >= n)
            {
                continue;
            }

            var start = s.Start + from * s.Step;
            var last = Last(s);
            if (skip is null || skip.Count == 0)
            {
                Append(sb, start, last, s.Step);
                continue;
            }

            // Split the segment around the skipped indices.
            long? runStart = null;
            long runEnd = 0;
            for (var x = start; x <= last; x += s.Step)
            {
                if (skip.Contains(x))
                {
                    if (runStart is { } rs)
                    {
                        Append(sb, rs, runEnd, s.Step);
                        runStart = null;
                    }

                    continue;
                }

                runStart ??= x;
                runEnd = x;
            }

            if (runStart is { } r)
            {
                Append(sb, r, runEnd, s.Step);
            }
        }

        return sb.ToString();
    }

    private static void Append(StringBuilder sb, long a, long b, long step)
    {
        if (sb.Length > 0)
        {
            sb.Append(',');
        }

        sb.Append(a.ToString(CultureInfo.InvariantCulture));
        if (b > a)
        {
            sb.Append('-').Append(b.ToString(CultureInfo.InvariantCulture));
            if (step > 1)
            {
                sb.Append(':').Append(step.ToString(CultureInfo.InvariantCulture));
            }
        }
    }
}
