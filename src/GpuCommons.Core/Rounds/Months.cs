namespace GpuCommons.Core.Rounds;

/// <summary>Calendar months as integers (year × 12 + month − 1), the unit of awards, budgets and the fleet's timeline.</summary>
public static class Months
{
    /// <summary>Hours in an average month (365.25 × 24 ÷ 12).</summary>
    public const double HoursPerMonth = 730.5;

    /// <summary>The month that holds <paramref name="t"/>, in UTC.</summary>
    public static int Of(DateTimeOffset t)
    {
        var u = t.UtcDateTime;
        return (u.Year * 12) + u.Month - 1;
    }

    /// <summary>The month of a year and a month number (1–12).</summary>
    public static int Of(int year, int month) => (year * 12) + month - 1;

    /// <summary>The first instant of the month, in UTC.</summary>
    public static DateTimeOffset Start(int month) => new(month / 12, (month % 12) + 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The month as <c>yyyy-MM</c> (what <see cref="TryParse"/> reads).</summary>
    public static string Name(int month) => $"{month / 12:0000}-{(month % 12) + 1:00}";

    /// <summary>Parses <c>yyyy-MM</c>.</summary>
    public static bool TryParse(string? text, out int month)
    {
        month = 0;
        if (text is not { Length: 7 } || text[4] != '-'
            || !int.TryParse(text.AsSpan(0, 4), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var y)
            || !int.TryParse(text.AsSpan(5, 2), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var m)
            || y < 2000 || y > 2200 || m < 1 || m > 12)
        {
            return false;
        }

        month = Of(y, m);
        return true;
    }
}
