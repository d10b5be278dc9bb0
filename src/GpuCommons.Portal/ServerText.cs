using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Localization;

namespace GpuCommons.Portal;

/// <summary>
/// The server's words (API errors, job outcomes) in the page's language. The API answers in English whatever the
/// browser's language, so the portal translates what it shows: the outcomes of jobs and the errors people meet when
/// they submit, request or review; any other error keeps the server's detail after a sentence in the page's language
/// naming the field.
/// </summary>
public static partial class ServerText
{
    private static bool English => CultureInfo.CurrentUICulture.TwoLetterISOLanguageName == "en";

    /// <summary>A job's outcome (<c>failed: exit code 2</c>, <c>cancelled by alice</c>, <c>failed to start: …</c>).</summary>
    public static string Outcome(string? outcome, IStringLocalizer l)
    {
        if (string.IsNullOrEmpty(outcome) || English)
        {
            return outcome ?? "";
        }

        if (outcome.StartsWith("cancelled by ", StringComparison.Ordinal))
        {
            return l["Outcome_cancelledBy", outcome["cancelled by ".Length..]];
        }

        var colon = outcome.IndexOf(": ", StringComparison.Ordinal);
        var head = colon < 0 ? outcome : outcome[..colon];
        var rest = colon < 0 ? "" : outcome[(colon + 2)..];
        var label = l["Outcome_" + head.Replace(' ', '_')];
        var said = label.ResourceNotFound ? head : label.Value;
        if (rest.Length == 0)
        {
            return said;
        }

        var exit = ExitCode().Match(rest);
        return said + ": " + (exit.Success ? l["Outcome_exitCode", exit.Groups[1].Value].Value + rest[exit.Length..] : rest);
    }

    /// <summary>An API error for a page: the server's detail in English; in Korean a translation of the common ones, else a sentence naming the field with the detail.</summary>
    public static string Error(ApiResult r, IStringLocalizer l)
    {
        var detail = r.Error ?? "";
        if (English || r.Ok)
        {
            return detail;
        }

        if (r.Status == 403)
        {
            return l["Forbidden"];
        }

        if (r.Field is not { } field)
        {
            return l["ServerRefused", detail];
        }

        var name = FieldLabel(field, l);
        var why = detail.StartsWith(field + ": ", StringComparison.Ordinal) ? detail[(field.Length + 2)..] : detail;
        foreach (var (pattern, key) in Known)
        {
            var m = pattern.Match(why);
            if (m.Success)
            {
                return l[key, [name, .. m.Groups.Values.Skip(1).Select(g => (object)g.Value)]];
            }
        }

        return l["ServerRefusedField", name, why];
    }

    private static string FieldLabel(string field, IStringLocalizer l) => field switch
    {
        "project" => l["Project"],
        "gpus" => l["Gpus"],
        "walltime" => l["Walltime"],
        "command" or "command[0]" => l["Command"],
        "name" => l["JobName"],
        "partition" => l["Partition"],
        _ => field,
    };

    private static readonly (Regex Pattern, string Key)[] Known =
    [
        (Required(), "Err_required"),
        (NotDuration(), "Err_duration"),
        (NoProject(), "Err_noProject"),
        (TooBig(), "Err_tooBig"),
        (MustBePositive(), "Err_positive"),
    ];

    [GeneratedRegex(@"^exit code (-?\d+)")]
    private static partial Regex ExitCode();

    [GeneratedRegex(@"^is required")]
    private static partial Regex Required();

    [GeneratedRegex(@"^'(.*)' is not a duration")]
    private static partial Regex NotDuration();

    [GeneratedRegex(@"^no project '(.*)' that you can submit to")]
    private static partial Regex NoProject();

    [GeneratedRegex(@"^(\d+(?:\.\d+)?) GPUs need (\d+) nodes with at least (\d+) GPUs each, but partition '(.*)' has (\d+) such nodes")]
    private static partial Regex TooBig();

    [GeneratedRegex(@"must be (?:positive|more than 0|greater than 0)")]
    private static partial Regex MustBePositive();
}
