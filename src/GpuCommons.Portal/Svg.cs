using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Html;

namespace GpuCommons.Portal;

/// <summary>Server-rendered SVG charts: no script, readable by screen readers through a title and a data table beside them.</summary>
public static class Svg
{
    public static readonly string[] Palette = ["#1f5fa8", "#b34700", "#2e7d32", "#7b3fa0", "#a0153e", "#00695c", "#5d4037", "#455a64"];

    private static string F(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);

    /// <summary>A line chart of several series over the same x labels.</summary>
    public static HtmlString Lines(string title, IReadOnlyList<string> xLabels, IReadOnlyList<(string Name, double[] Values)> series, int width = 640, int height = 220)
    {
        const int left = 56, right = 150, top = 20, bottom = 36;
        var w = width - left - right;
        var h = height - top - bottom;
        var max = series.SelectMany(s => s.Values).DefaultIfEmpty(0).Max();
        if (max <= 0)
        {
            max = 1;
        }

        var n = Math.Max(1, xLabels.Count - 1);
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg class=\"chart\" role=\"img\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" aria-label=\"{WebUtility.HtmlEncode(title)}\"><title>{WebUtility.HtmlEncode(title)}</title>");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{top + h}\" x2=\"{left + w}\" y2=\"{top + h}\" stroke=\"#555\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{top + h}\" stroke=\"#555\"/>");
        for (var t = 0; t <= 4; t++)
        {
            var y = top + h - h * t / 4.0;
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{F(y)}\" x2=\"{left + w}\" y2=\"{F(y)}\" stroke=\"#ddd\"/><text x=\"{left - 4}\" y=\"{F(y + 4)}\" text-anchor=\"end\" font-size=\"11\">{WebUtility.HtmlEncode((max * t / 4).ToString(max < 10 ? "N2" : "N0", CultureInfo.CurrentCulture))}</text>");
        }

        var step = Math.Max(1, xLabels.Count / 7);
        for (var i = 0; i < xLabels.Count; i += step)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(left + w * i / (double)n)}\" y=\"{top + h + 16}\" text-anchor=\"middle\" font-size=\"11\">{WebUtility.HtmlEncode(xLabels[i])}</text>");
        }

        for (var s = 0; s < series.Count; s++)
        {
            var color = Palette[s % Palette.Length];
            sb.Append(CultureInfo.InvariantCulture, $"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"");
            var v = series[s].Values;
            for (var i = 0; i < v.Length; i++)
            {
                sb.Append(CultureInfo.InvariantCulture, $"{F(left + w * i / (double)n)},{F(top + h - h * v[i] / max)} ");
            }

            sb.Append("\"/>");
            sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{left + w + 10}\" y=\"{top + s * 16}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{left + w + 24}\" y=\"{top + s * 16 + 9}\" font-size=\"11\">{WebUtility.HtmlEncode(series[s].Name)}</text>");
        }

        sb.Append("</svg>");
        return new HtmlString(sb.ToString());
    }
}
