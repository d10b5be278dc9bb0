using System.Globalization;
using System.Text;

namespace GpuCommons.Backends;

/// <summary>
/// Integers written as ranges, the way kernel CPU lists and Slurm's GPU indices are: 0,1,2,5,7,8 → <c>0-2,5,7-8</c>.
/// </summary>
public static class IntegerRanges
{
    /// <summary>The distinct values, ascending, consecutive runs joined by '-', runs separated by ','; empty for none.</summary>
    public static string Format(IEnumerable<int> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sorted = values.Distinct().Order().ToArray();
        var sb = new StringBuilder();
        for (var i = 0; i < sorted.Length;)
        {
            var j = i;
            while (j + 1 < sorted.Length && sorted[j + 1] == sorted[j] + 1)
            {
                j++;
            }

            if (sb.Length > 0)
            {
                sb.Append(',');
            }

            sb.Append(sorted[i].ToString(CultureInfo.InvariantCulture));
            if (j > i)
            {
                sb.Append('-').Append(sorted[j].ToString(CultureInfo.InvariantCulture));
            }

            i = j + 1;
        }

        return sb.ToString();
    }
}
