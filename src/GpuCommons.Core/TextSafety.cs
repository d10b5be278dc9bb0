using System.Globalization;
using System.Text;

namespace GpuCommons.Core;

/// <summary>
/// Characters that must never reach a terminal raw, nor be part of a name: C0 controls (tab and newline included),
/// DEL, C1 controls (U+0080–U+009F; U+009B is an 8-bit CSI), Unicode bidirectional controls that reorder what an
/// operator reads (U+061C, U+200E/F, U+202A–U+202E, U+2066–U+2069), the line and paragraph separators, and lone
/// surrogates. The server refuses them in names; the CLI shows them escaped.
/// </summary>
public static class TextSafety
{
    /// <summary>True for a character that a name may not hold and a terminal must not receive raw.</summary>
    public static bool IsUnsafe(char c) =>
        c < 0x20 || c is >= '\u007f' and <= '\u009f'
        || c is '\u061c' or '\u200e' or '\u200f' or '\u2028' or '\u2029'
        || c is >= '\u202a' and <= '\u202e'
        || c is >= '\u2066' and <= '\u2069';

    /// <summary>Index of the first unsafe character (a lone surrogate counts), or -1.</summary>
    public static int FirstUnsafe(string? text)
    {
        if (text is null)
        {
            return -1;
        }

        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }

            if (IsUnsafe(c) || char.IsSurrogate(c))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>How a character is named in an error message: <c>U+001B</c>.</summary>
    public static string Describe(char c) => "U+" + ((int)c).ToString("X4", CultureInfo.InvariantCulture);

    /// <summary>
    /// The text with every unsafe character written visibly: <c>\n</c>, <c>\t</c>, <c>\r</c>, <c>\e</c> (ESC),
    /// <c>\xNN</c> for other controls up to U+00FF, <c>\u{NNNN}</c> above. A backslash stays as it is. Printable
    /// text, Korean included, is unchanged.
    /// </summary>
    public static string Escape(string? text)
    {
        if (string.IsNullOrEmpty(text) || FirstUnsafe(text) < 0)
        {
            return text ?? "";
        }

        var sb = new StringBuilder(text.Length + 8);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(c).Append(text[++i]);
                continue;
            }

            if (!IsUnsafe(c) && !char.IsSurrogate(c))
            {
                sb.Append(c);
                continue;
            }

            _ = c switch
            {
                '\n' => sb.Append("\\n"),
                '\t' => sb.Append("\\t"),
                '\r' => sb.Append("\\r"),
                '\u001b' => sb.Append("\\e"),
                <= '\u00ff' => sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)),
                _ => sb.Append("\\u{").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)).Append('}'),
            };
        }

        return sb.ToString();
    }
}
