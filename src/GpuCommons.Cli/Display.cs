using GpuCommons.Core;
using Spectre.Console;

namespace GpuCommons.Cli;

/// <summary>
/// How the CLI shows data that came from the server. Names, reasons and details are tenants' own text: whatever a
/// tenant put there must not reach an operator's terminal as control sequences. Every field a table, <c>show</c> or a
/// message prints goes through <see cref="Safe"/> (unprintable characters written as <c>\e</c>, <c>\x9b</c>,
/// <c>\u{202e}</c>…); table cells also through Spectre's markup escaping (<see cref="Cell"/>). Job logs are the
/// user's own output and stay raw in <c>gpuc logs</c>. <c>--json</c> output is JSON-escaped by the serializer.
/// </summary>
internal static class Display
{
    /// <summary>The text with every unprintable character escaped; printable text (Korean included) unchanged.</summary>
    public static string Safe(string? text) => TextSafety.Escape(text);

    /// <summary>A table cell or markup fragment: <see cref="Safe"/>, then Spectre markup brackets escaped.</summary>
    public static string Cell(string? text) => Markup.Escape(Safe(text));
}
