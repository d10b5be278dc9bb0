using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace GpuCommons.Server.Api;

/// <summary>An error the API answers with a problem document (RFC 9457) naming the field at fault.</summary>
public sealed class ApiException(int status, string title, string? field = null, string? detail = null) : Exception(detail ?? title)
{
    public int Status { get; } = status;
    public string Title { get; } = title;
    public string? FieldName { get; } = field;
    public string? Detail { get; } = detail;

    /// <summary>A 400 naming the field once: a message that already starts with <c>field: </c> is not prefixed again.</summary>
    public static ApiException Field(string field, string message) =>
        new(400, "invalid request", field, message.StartsWith(field + ": ", StringComparison.Ordinal) ? message : $"{field}: {message}");
    public static ApiException NotFound(string what) => new(404, "not found", null, $"{what} not found");
    public static ApiException Forbidden(string why = "your role does not allow this") => new(403, "forbidden", null, why);
}

internal static class Http
{
    /// <summary>Strict JSON: unknown fields, duplicate fields and wrong types are errors; names are camelCase.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        PropertyNameCaseInsensitive = false,
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
        RespectNullableAnnotations = true,
        MaxDepth = 16,
        AllowDuplicateProperties = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static Caller Caller(this HttpContext ctx) =>
        ctx.Items["caller"] as Caller ?? throw new ApiException(401, "unauthorized", null, "a bearer token is required");

    /// <summary>Whether the request carries a body (a length above 0, or a chunked one).</summary>
    public static bool HasBody(HttpContext ctx) =>
        ctx.Request.ContentLength > 0 || (ctx.Request.ContentLength is null && ctx.Request.Headers.TransferEncoding.Count > 0);

    /// <summary>Reads a JSON body of at most the configured size, strictly; errors name the field.</summary>
    public static async Task<T> ReadAsync<T>(HttpContext ctx, ServerOptions options)
        where T : class
    {
        if (ctx.Request.ContentLength is { } len && len > options.MaxBodyBytes)
        {
            throw new ApiException(400, "request body too large", "body", $"body: {len} bytes is more than the {options.MaxBodyBytes} allowed");
        }

        if (ctx.Request.ContentType is { } ct && !ct.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            throw new ApiException(415, "unsupported media type", "body", "body: must be application/json");
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await ctx.Request.Body.ReadAsync(chunk, ctx.RequestAborted)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > options.MaxBodyBytes)
            {
                throw new ApiException(400, "request body too large", "body", $"body: more than the {options.MaxBodyBytes} bytes allowed");
            }
        }

        if (buffer.Length == 0)
        {
            throw ApiException.Field("body", "a JSON object is required");
        }

        try
        {
            return JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), Json)
                ?? throw ApiException.Field("body", "a JSON object is required");
        }
        catch (JsonException e)
        {
            var field = FieldOf(e);
            var why = e.Message.Contains("Duplicate", StringComparison.OrdinalIgnoreCase) ? "appears more than once; give each field once"
                : e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "is not a known field"
                : e.Message.Contains("could not be converted", StringComparison.Ordinal) ? "has the wrong type"
                : e.Message.Contains("null", StringComparison.OrdinalIgnoreCase) ? "must not be null"
                : "is not valid JSON";
            throw ApiException.Field(field, why);
        }
    }

    private static string FieldOf(JsonException e)
    {
        var path = e.Path ?? "$";
        if (e.Message.Contains("could not be mapped", StringComparison.Ordinal))
        {
            // "The JSON property 'x' could not be mapped to any .NET member contained in type …"
            var start = e.Message.IndexOf('\'', StringComparison.Ordinal);
            var end = start >= 0 ? e.Message.IndexOf('\'', start + 1) : -1;
            if (end > start)
            {
                var name = e.Message[(start + 1)..end];
                var parent = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : "";
                if (parent.EndsWith(name, StringComparison.Ordinal))
                {
                    return parent;
                }

                return parent.Length > 0 ? parent + "." + name : name;
            }
        }

        return path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path == "$" ? "body" : path.TrimStart('$');
    }

    public static IResult Problem(int status, string title, string? detail, string? field)
    {
        var p = new ProblemDetails { Status = status, Title = title, Detail = detail, Type = $"https://httpstatuses.io/{status}" };
        if (field is not null)
        {
            p.Extensions["field"] = field;
            p.Extensions["errors"] = new Dictionary<string, string[]> { [field] = [detail ?? title] };
        }

        return Results.Problem(p);
    }

    /// <summary>Page size from <c>?limit=</c>: default 100, at most the configured maximum.</summary>
    public static int Limit(int? limit, ServerOptions options)
    {
        if (limit is null)
        {
            return Math.Min(100, options.MaxPageSize);
        }

        if (limit < 1 || limit > options.MaxPageSize)
        {
            throw ApiException.Field("limit", $"must be between 1 and {options.MaxPageSize}");
        }

        return limit.Value;
    }

    /// <summary>Longest walltime the parser represents: 3650 days (the scheduler's own limit is far lower).</summary>
    public const long MaxDurationSeconds = 3650L * 86400;

    /// <summary>Parses a walltime: seconds (<c>3600</c>), units (<c>90m</c>, <c>2h</c>, <c>1d</c>, <c>1h30m</c>) or <c>[d-]hh:mm[:ss]</c>.</summary>
    public static bool TryParseDuration(string? text, out TimeSpan value) => TryParseDuration(text, out value, out _);

    /// <summary>
    /// Parses a walltime, saying why when it cannot. Forms: seconds (<c>3600</c>); units (<c>90s</c>, <c>90m</c>,
    /// <c>2h</c>, <c>1d</c>, <c>1h30m</c>); <c>hh:mm</c>, <c>hh:mm:ss</c>; Slurm's <c>d-hh</c>, <c>d-hh:mm</c>,
    /// <c>d-hh:mm:ss</c>. Minutes and seconds after a colon are 0–59, hours after days 0–23; the first field is not
    /// bounded (<c>36:00</c> is 36 hours) but the whole is at most <see cref="MaxDurationSeconds"/>. Nothing throws.
    /// </summary>
    public static bool TryParseDuration(string? text, out TimeSpan value, out string error)
    {
        value = default;
        const string forms = "3600, 90m, 2h, 1d, 1h30m, 12:00:00, 1-12:00:00";
        if (string.IsNullOrWhiteSpace(text))
        {
            error = $"is empty; give a duration ({forms})";
            return false;
        }

        var shown = text;
        text = text.Trim();
        var bad = $"'{shown}' is not a duration ({forms})";
        var tooLarge = $"'{shown}' is too large (at most {MaxDurationSeconds / 86400} days)";
        long seconds;
        if (text.All(char.IsAsciiDigit))
        {
            if (!TryNumber(text, out seconds))
            {
                error = tooLarge;
                return false;
            }
        }
        else if (text.Contains(':', StringComparison.Ordinal) || text.Contains('-', StringComparison.Ordinal))
        {
            long days = 0;
            var hasDays = false;
            var rest = text;
            var dash = text.IndexOf('-', StringComparison.Ordinal);
            if (dash >= 0)
            {
                if (dash == 0 || !text[..dash].All(char.IsAsciiDigit))
                {
                    error = bad;
                    return false;
                }

                if (!TryNumber(text[..dash], out days))
                {
                    error = tooLarge;
                    return false;
                }

                hasDays = true;
                rest = text[(dash + 1)..];
            }

            var parts = rest.Split(':');
            if (parts.Length > 3 || (!hasDays && parts.Length < 2) || parts.Any(p => p.Length == 0 || !p.All(char.IsAsciiDigit)))
            {
                error = bad;
                return false;
            }

            var n = new long[parts.Length];
            for (var i = 0; i < parts.Length; i++)
            {
                if (!TryNumber(parts[i], out n[i]))
                {
                    error = tooLarge;
                    return false;
                }
            }

            // hh[:mm[:ss]] after days, hh:mm[:ss] without.
            if (hasDays && n[0] > 23)
            {
                error = $"'{shown}': hours after days must be 0-23, got {n[0]}";
                return false;
            }

            if (n.Length > 1 && n[1] > 59)
            {
                error = $"'{shown}': minutes must be 0-59, got {n[1]}";
                return false;
            }

            if (n.Length > 2 && n[2] > 59)
            {
                error = $"'{shown}': seconds must be 0-59, got {n[2]}";
                return false;
            }

            seconds = (days * 86400) + (n[0] * 3600) + (n.Length > 1 ? n[1] * 60 : 0) + (n.Length > 2 ? n[2] : 0);
        }
        else
        {
            seconds = 0;
            var i = 0;
            var any = false;
            while (i < text.Length)
            {
                var start = i;
                while (i < text.Length && char.IsAsciiDigit(text[i]))
                {
                    i++;
                }

                if (i == start || i == text.Length)
                {
                    error = bad;
                    return false;
                }

                var unit = text[i] switch
                {
                    's' => 1L,
                    'm' => 60L,
                    'h' => 3600L,
                    'd' => 86400L,
                    _ => 0L,
                };
                if (unit == 0)
                {
                    error = bad;
                    return false;
                }

                if (!TryNumber(text[start..i], out var num) || num > MaxDurationSeconds / unit)
                {
                    error = tooLarge;
                    return false;
                }

                seconds += num * unit;
                if (seconds > MaxDurationSeconds)
                {
                    error = tooLarge;
                    return false;
                }

                i++;
                any = true;
            }

            if (!any)
            {
                error = bad;
                return false;
            }
        }

        if (seconds > MaxDurationSeconds)
        {
            error = tooLarge;
            return false;
        }

        value = TimeSpan.FromSeconds(seconds);
        error = "";
        return true;

        // A field of digits no larger than the longest walltime (so no sum below overflows).
        static bool TryNumber(string digits, out long number) =>
            long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out number) && number <= MaxDurationSeconds;
    }
}

