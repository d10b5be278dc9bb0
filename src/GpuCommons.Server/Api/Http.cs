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

    public static ApiException Field(string field, string message) => new(400, "invalid request", field, $"{field}: {message}");
    public static ApiException NotFound(string what) => new(404, "not found", null, $"{what} not found");
    public static ApiException Forbidden(string why = "your role does not allow this") => new(403, "forbidden", null, why);
}

internal static class Http
{
    /// <summary>Strict JSON: unknown fields and wrong types are errors; names are camelCase.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        PropertyNameCaseInsensitive = false,
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
        RespectNullableAnnotations = true,
        MaxDepth = 16,
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
            var why = e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "is not a known field"
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

    /// <summary>Parses a walltime: seconds (<c>3600</c>), units (<c>90m</c>, <c>2h</c>, <c>1d</c>, <c>1h30m</c>) or <c>[d-]hh:mm[:ss]</c>.</summary>
    public static bool TryParseDuration(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        text = text.Trim();
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var secs))
        {
            value = TimeSpan.FromSeconds(secs);
            return true;
        }

        if (text.Contains(':', StringComparison.Ordinal))
        {
            var days = 0;
            var rest = text;
            var dash = text.IndexOf('-', StringComparison.Ordinal);
            if (dash > 0)
            {
                if (!int.TryParse(text[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out days))
                {
                    return false;
                }

                rest = text[(dash + 1)..];
            }

            var parts = rest.Split(':');
            if (parts.Length is < 2 or > 3 || parts.Any(p => !int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            {
                return false;
            }

            var n = parts.Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
            value = new TimeSpan(days, n[0], n[1], n.Length == 3 ? n[2] : 0);
            return true;
        }

        var total = TimeSpan.Zero;
        var num = 0L;
        var any = false;
        var digits = false;
        foreach (var c in text)
        {
            if (char.IsAsciiDigit(c))
            {
                num = checked(num * 10 + (c - '0'));
                digits = true;
                continue;
            }

            if (!digits)
            {
                return false;
            }

            total += c switch
            {
                's' => TimeSpan.FromSeconds(num),
                'm' => TimeSpan.FromMinutes(num),
                'h' => TimeSpan.FromHours(num),
                'd' => TimeSpan.FromDays(num),
                _ => TimeSpan.MinValue,
            };
            if (total < TimeSpan.Zero)
            {
                return false;
            }

            num = 0;
            digits = false;
            any = true;
        }

        if (digits || !any)
        {
            return false;
        }

        value = total;
        return true;
    }
}

/// <summary>A page of a list: the items and the cursor for the next page (null at the end).</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? Next);
