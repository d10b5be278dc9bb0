using System.Globalization;
using GpuCommons.Core;

namespace GpuCommons.Simulation.Traces;

/// <summary>
/// One line of a CSV file split into cells, with the file name and line number kept so that every error names
/// the file, the line and the column (1-based) of the bad cell.
/// </summary>
internal sealed class CsvRow
{
    private readonly List<string> _cells = [];

    public CsvRow(string file, IReadOnlyList<string> header)
    {
        File = file;
        Header = header;
    }

    public string File { get; }
    public IReadOnlyList<string> Header { get; }
    public int Line { get; private set; }
    public int Count => _cells.Count;

    public string this[int column] => _cells[column];

    /// <summary>Splits a line; double quotes may enclose a cell with commas ("" is a quote).</summary>
    public void Load(string text, int line)
    {
        Line = line;
        Split(text, _cells);
        if (_cells.Count != Header.Count)
        {
            throw new SpecException($"{File}, line {line}", $"expected {Header.Count} columns ({string.Join(",", Header)}), got {_cells.Count}");
        }
    }

    public static List<string> SplitHeader(string text)
    {
        var cells = new List<string>();
        Split(text, cells);
        for (var i = 0; i < cells.Count; i++)
        {
            cells[i] = cells[i].Trim().ToLowerInvariant();
        }

        return cells;
    }

    public SpecException Error(int column, string message) =>
        new($"{File}, line {Line}, column {column + 1} ({Header[column]})", message);

    public string Text(int column)
    {
        var s = _cells[column].Trim();
        return s.Length == 0 ? throw Error(column, "is empty") : s;
    }

    public string? OptionalText(int column)
    {
        if (column < 0)
        {
            return null;
        }

        var s = _cells[column].Trim();
        return s.Length == 0 ? null : s;
    }

    public double Number(int column)
    {
        var s = Text(column);
        if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v))
        {
            throw Error(column, $"'{s}' is not a number");
        }

        return v;
    }

    public double? OptionalNumber(int column) => OptionalText(column) is null ? null : Number(column);

    public int WholeNumber(int column)
    {
        var s = Text(column);
        if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v))
        {
            // Accept an integer-valued float such as "8.0", never a fraction.
            if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue)
            {
                return (int)d;
            }

            throw Error(column, $"'{s}' is not a whole number");
        }

        return v;
    }

    public int? OptionalWholeNumber(int column) => OptionalText(column) is null ? null : WholeNumber(column);

    private static void Split(string text, List<string> cells)
    {
        cells.Clear();
        if (text.IndexOf('"', StringComparison.Ordinal) < 0)
        {
            var start = 0;
            for (var i = 0; i <= text.Length; i++)
            {
                if (i == text.Length || text[i] == ',')
                {
                    cells.Add(text[start..i]);
                    start = i + 1;
                }
            }

            return;
        }

        var sb = new System.Text.StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    sb.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    sb.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                cells.Add(sb.ToString());
                sb.Clear();
            }
            else
            {
                sb.Append(c);
            }
        }

        cells.Add(sb.ToString());
    }
}
