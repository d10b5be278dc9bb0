using System.Text.Json;

namespace GpuCommons.Core;

/// <summary>
/// Strict reading of JSON specs: unknown fields, wrong types and missing required fields are
/// <see cref="SpecException"/>s that name the field by its path.
/// </summary>
public static class JsonSpecReader
{
    /// <summary>
    /// Parses <paramref name="json"/> (trailing commas and comments allowed, at most 32 levels deep); text that is not JSON
    /// is a <see cref="SpecException"/> naming <paramref name="what"/> with the line and byte.
    /// </summary>
    public static JsonDocument Parse(string json, string what)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 32 });
        }
        catch (JsonException e)
        {
            throw new SpecException($"{what} (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})", "not valid JSON: " + FirstSentence(e.Message), e);
        }
        catch (ArgumentException e)
        {
            // Text that is not valid UTF-16 (a lone surrogate) cannot be transcoded to UTF-8 for the parser.
            throw new SpecException(what, "not valid text: " + e.Message, e);
        }
    }

    /// <summary>Checks that the element at <paramref name="path"/> is an object with no field outside <paramref name="allowed"/>.</summary>
    public static void RequireObject(JsonElement e, string path, params string[] allowed)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw new SpecException(path, $"expected an object, got {Kind(e)}");
        }

        foreach (var p in e.EnumerateObject())
        {
            string name;
            try
            {
                name = p.Name;
            }
            catch (InvalidOperationException ex)
            {
                throw new SpecException(path, "a field name is not valid text: " + ex.Message, ex);
            }

            if (Array.IndexOf(allowed, name) < 0)
            {
                throw new SpecException(Join(path, name), $"unknown field (allowed: {string.Join(", ", allowed)})");
            }
        }
    }

    /// <summary>The string field <paramref name="name"/> of the object at <paramref name="path"/>; absent, null or blank is an error.</summary>
    public static string RequiredString(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            throw new SpecException(Join(path, name), "is required");
        }

        if (v.ValueKind != JsonValueKind.String)
        {
            throw new SpecException(Join(path, name), $"expected a string, got {Kind(v)}");
        }

        var s = Text(v, Join(path, name));
        if (string.IsNullOrWhiteSpace(s))
        {
            throw new SpecException(Join(path, name), "must not be empty");
        }

        return s;
    }

    /// <summary>The string field <paramref name="name"/> of the object at <paramref name="path"/>; null when absent or null.</summary>
    public static string? OptionalString(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.String)
        {
            throw new SpecException(Join(path, name), $"expected a string, got {Kind(v)}");
        }

        return Text(v, Join(path, name));
    }

    private static string Text(JsonElement v, string path)
    {
        try
        {
            return v.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            // A string with an escaped lone surrogate ("\uD800") has no text value.
            throw new SpecException(path, "not a valid string: " + e.Message, e);
        }
    }

    /// <summary>The whole-number field <paramref name="name"/>, in range of an <see cref="int"/>; null when absent or null.</summary>
    public static int? OptionalInt(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
        {
            throw new SpecException(Join(path, name), $"expected a whole number, got {Describe(v)}");
        }

        return i;
    }

    /// <summary>The whole-number field <paramref name="name"/>, in range of a <see cref="long"/>; null when absent or null.</summary>
    public static long? OptionalLong(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var i))
        {
            throw new SpecException(Join(path, name), $"expected a whole number, got {Describe(v)}");
        }

        return i;
    }

    /// <summary>An optional array of strings; null when absent.</summary>
    public static List<string>? OptionalStringArray(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var list = new List<string>();
        foreach (var (item, ip) in OptionalArray(obj, path, name))
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw new SpecException(ip, $"expected a string, got {Kind(item)}");
            }

            list.Add(item.GetString()!);
        }

        return list;
    }

    /// <summary>The whole-number field <paramref name="name"/>, in range of an <see cref="int"/>; absent or null is an error.</summary>
    public static int RequiredInt(JsonElement obj, string path, string name) =>
        OptionalInt(obj, path, name) ?? throw new SpecException(Join(path, name), "is required");

    /// <summary>The finite number field <paramref name="name"/>; null when absent or null.</summary>
    public static double? OptionalDouble(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out var d) || !double.IsFinite(d))
        {
            throw new SpecException(Join(path, name), $"expected a number, got {Describe(v)}");
        }

        return d;
    }

    /// <summary>The <c>true</c>/<c>false</c> field <paramref name="name"/>; null when absent or null.</summary>
    public static bool? OptionalBool(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new SpecException(Join(path, name), $"expected true or false, got {Describe(v)}"),
        };
    }

    /// <summary>The items of the array field <paramref name="name"/>, each with its path (<c>name[i]</c>); none when absent or null.</summary>
    public static IEnumerable<(JsonElement Item, string Path)> OptionalArray(JsonElement obj, string path, string name)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            yield break;
        }

        if (v.ValueKind != JsonValueKind.Array)
        {
            throw new SpecException(Join(path, name), $"expected an array, got {Kind(v)}");
        }

        var i = 0;
        foreach (var item in v.EnumerateArray())
        {
            yield return (item, $"{Join(path, name)}[{i++}]");
        }
    }

    /// <summary>
    /// The enum field <paramref name="name"/>, by member name without regard to case, <c>-</c> or <c>_</c> (numbers are
    /// refused); <paramref name="fallback"/> when absent or null.
    /// </summary>
    public static TEnum OptionalEnum<TEnum>(JsonElement obj, string path, string name, TEnum fallback)
        where TEnum : struct, Enum
    {
        var s = OptionalString(obj, path, name);
        if (s is null)
        {
            return fallback;
        }

        var normalized = s.Replace("-", string.Empty, StringComparison.Ordinal).Replace("_", string.Empty, StringComparison.Ordinal);
        if (Enum.TryParse<TEnum>(normalized, ignoreCase: true, out var value) && !int.TryParse(normalized, out _))
        {
            return value;
        }

        throw new SpecException(Join(path, name), $"'{s}' is not one of: {string.Join(", ", Enum.GetNames<TEnum>().Select(n => n.ToLowerInvariant()))}");
    }

    /// <summary>The path of field <paramref name="name"/> inside the object at <paramref name="path"/> (<c>path.name</c>, or <c>name</c> at the root).</summary>
    public static string Join(string path, string name) => string.IsNullOrEmpty(path) ? name : path + "." + name;

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    private static string Describe(JsonElement e) => e.ValueKind == JsonValueKind.Number ? e.GetRawText() : Kind(e);

    private static string FirstSentence(string message)
    {
        var i = message.IndexOf(" Path:", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }
}
