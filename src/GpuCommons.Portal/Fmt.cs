using System.Globalization;

namespace GpuCommons.Portal;

/// <summary>Numbers, dates and money in the request's culture (en-US or ko-KR).</summary>
public static class Fmt
{
    private static CultureInfo C => CultureInfo.CurrentCulture;

    public static string Num(double v, int decimals = 1) => v.ToString("N" + decimals.ToString(CultureInfo.InvariantCulture), C);

    public static string Int(long v) => v.ToString("N0", C);

    /// <summary>A number of GPUs as asked: whole ones without decimals, a share as it is (<c>0.5</c>, <c>0.25</c>).</summary>
    public static string Gpus(double v) => v.ToString(v == Math.Floor(v) ? "N0" : "#,0.###", C);

    public static string Pct(double fraction) => fraction.ToString("P1", C);

    /// <summary>Korean won, whole units, with the ₩ sign, in the culture's digit grouping.</summary>
    public static string Krw(decimal v)
    {
        var nf = (NumberFormatInfo)C.NumberFormat.Clone();
        nf.CurrencySymbol = "₩";
        nf.CurrencyDecimalDigits = 0;
        return v.ToString("C", nf);
    }

    public static string Date(DateTimeOffset? t) => t is { } v ? v.UtcDateTime.ToString("d", C) : "—";

    public static string DateTime(DateTimeOffset? t) => t is { } v ? v.UtcDateTime.ToString("g", C) + " UTC" : "—";

    public static string Iso(DateTimeOffset? t) => t is { } v ? v.ToString("O", CultureInfo.InvariantCulture) : "";

    public static string Month(DateTime m) => m.ToString("Y", C);

    public static string Duration(TimeSpan d)
    {
        if (d < TimeSpan.Zero)
        {
            d = TimeSpan.Zero;
        }

        return d.TotalDays >= 1 ? $"{(int)d.TotalDays}d {d.Hours}h" : d.TotalHours >= 1 ? $"{(int)d.TotalHours}h {d.Minutes}m" : $"{d.Minutes}m {d.Seconds}s";
    }
}
