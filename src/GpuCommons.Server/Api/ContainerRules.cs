using System.Text.Json;
using System.Text.RegularExpressions;
using GpuCommons.Backends;

namespace GpuCommons.Server.Api;

/// <summary>
/// What a job may name as its container: a local image (<c>localhost/NAME[:TAG]</c>, <c>oci-archive:/PATH</c>,
/// <c>oci:/PATH</c>, <c>docker-archive:/PATH</c>, <c>dir:/PATH</c>, or an absolute path for a Slurm OCI bundle or a pyxis
/// squashfs file), or an image from a registry the center allows (<see cref="ServerOptions.ContainerRegistries"/>).
/// Mounts are <c>SOURCE:TARGET[:ro|:rw]</c> with absolute paths; the backend checks each source as the job's user.
/// </summary>
public static partial class ContainerRules
{
    public const int MaxMounts = 32;

    private static readonly string[] LocalTransports = ["oci-archive:", "oci:", "docker-archive:", "dir:"];

    // A Docker/OCI reference: [registry[:port]/]path[:tag][@sha256:digest], lower-case path components.
    [GeneratedRegex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]{1,5})?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")]
    private static partial Regex Reference();

    /// <summary>Checks a job's image and mounts; <see cref="ApiException"/> (400, naming the field) when they may not be used. Returns the mounts as stored.</summary>
    public static string? Check(string? image, IReadOnlyList<string>? mounts, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (image is null)
        {
            if (mounts is { Count: > 0 })
            {
                throw ApiException.Field("mounts", "mounts need an image: a job without a container sees the node's file system as its user");
            }

            return null;
        }

        if (image.Length is 0 or > 512 || image.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)) || image.StartsWith('-'))
        {
            throw ApiException.Field("image", "must be an image reference (registry/name:tag, localhost/name:tag, oci-archive:/path) of at most 512 characters, without spaces");
        }

        if (RegistryOf(image) is { } registry && !options.ContainerRegistries.Contains(registry, StringComparer.OrdinalIgnoreCase))
        {
            var allowed = options.ContainerRegistries.Count == 0 ? "none" : string.Join(", ", options.ContainerRegistries);
            throw ApiException.Field("image", $"registry '{registry}' is not one this center allows (allowed: {allowed}); use a local image (localhost/NAME:TAG, oci-archive:/PATH) or ask the operators");
        }

        if (mounts is null || mounts.Count == 0)
        {
            return null;
        }

        if (mounts.Count > MaxMounts)
        {
            throw ApiException.Field("mounts", $"at most {MaxMounts} mounts");
        }

        for (var i = 0; i < mounts.Count; i++)
        {
            if (ParseMount(mounts[i]) is null)
            {
                throw ApiException.Field($"mounts[{i}]", $"'{mounts[i]}' is not SOURCE:TARGET[:ro|:rw] with absolute paths (no commas, colons or control characters in them)");
            }
        }

        return JsonSerializer.Serialize(mounts);
    }

    /// <summary>
    /// The registry an image is pulled from, or null for a local image. A reference whose first component has no dot or
    /// port (<c>ubuntu:24.04</c>, <c>nvidia/cuda</c>) is Docker Hub's: <c>docker.io</c>.
    /// </summary>
    public static string? RegistryOf(string image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.StartsWith('/') || LocalTransports.Any(t => image.StartsWith(t, StringComparison.Ordinal) && image.Length > t.Length && image[t.Length] == '/'))
        {
            return null;
        }

        if (!Reference().IsMatch(image))
        {
            throw ApiException.Field("image", $"'{image}' is not an image reference (registry/name:tag, lower-case names) nor a local image (localhost/NAME:TAG, oci-archive:/PATH)");
        }

        var slash = image.IndexOf('/', StringComparison.Ordinal);
        if (slash > 0)
        {
            var first = image[..slash];
            if (first == "localhost" || first.StartsWith("localhost:", StringComparison.Ordinal))
            {
                return null;
            }

            if (first.Contains('.', StringComparison.Ordinal) || first.Contains(':', StringComparison.Ordinal))
            {
                return first.ToLowerInvariant();
            }
        }

        return "docker.io";
    }

    /// <summary><c>SOURCE:TARGET[:ro|:rw]</c>, or null when it is not one.</summary>
    public static ContainerMount? ParseMount(string text)
    {
        if (string.IsNullOrEmpty(text) || text.Any(char.IsControl) || text.Contains(',', StringComparison.Ordinal))
        {
            return null;
        }

        var parts = text.Split(':');
        if (parts.Length is < 2 or > 3 || !parts[0].StartsWith('/') || !parts[1].StartsWith('/'))
        {
            return null;
        }

        var readOnly = parts.Length == 3 ? parts[2] switch { "ro" => true, "rw" => false, _ => (bool?)null } : false;
        return readOnly is null ? null : new ContainerMount(parts[0], parts[1], readOnly.Value);
    }

    /// <summary>The container of a stored job, or null.</summary>
    public static ContainerSpec? ToSpec(string? image, string? mounts)
    {
        if (image is null)
        {
            return null;
        }

        var list = string.IsNullOrEmpty(mounts) ? [] : JsonSerializer.Deserialize<List<string>>(mounts) ?? [];
        return new ContainerSpec(image, list.Select(m => ParseMount(m)!).Where(m => m is not null).ToList());
    }
}
