using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using GpuCommons.Contracts;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>~/.config/gpuc/config.json</c>: the server and the token <c>gpuc login</c> saved. Keys this release does not know are
/// kept as they are when the file is written again.
/// </summary>
internal sealed class CliConfig
{
    /// <summary>The server's URL (several, comma-separated: a leader and standbys).</summary>
    public string? Server { get; set; }

    /// <summary>The API token.</summary>
    public string? Token { get; set; }

    /// <summary>When the token from <c>gpuc login</c> expires.</summary>
    public DateTimeOffset? Expires { get; set; }

    /// <summary>Who signed in.</summary>
    public string? User { get; set; }

    /// <summary>The identity provider they signed in with.</summary>
    public string? Issuer { get; set; }

    /// <summary>Keys of a newer release, kept.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Other { get; set; }
}

/// <summary>A problem document (RFC 9457) as the server answers an error, with the field at fault.</summary>
/// <param name="Title">The kind of problem.</param>
/// <param name="Detail">What is wrong, in words (usually starting with the field).</param>
/// <param name="Field">The request field at fault.</param>
internal sealed record ProblemDocument(string? Title, string? Detail, string? Field);

/// <summary>One line of <c>gpuc quota list --json</c>: an organisation's or project's quotas.</summary>
/// <param name="Kind"><c>organisation</c> or <c>project</c>.</param>
/// <param name="Name">Its name.</param>
/// <param name="Quotas">Its quotas.</param>
internal sealed record TenantQuotas(string Kind, string Name, IReadOnlyList<QuotaDto>? Quotas);

/// <summary>What <c>gpuc login --json</c> prints (never the token).</summary>
/// <param name="User">Who signed in.</param>
/// <param name="Expires">When the token expires.</param>
/// <param name="Scope">What it may do.</param>
/// <param name="Created">Whether the sign-in made the user.</param>
/// <param name="Organisation">Their organisation, if any (null is printed).</param>
/// <param name="Projects">Projects joined through invitations.</param>
/// <param name="Config">Where the token was saved.</param>
internal sealed record LoginSummary(string User, DateTimeOffset Expires, string Scope, bool Created,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Organisation, IReadOnlyList<string> Projects, string Config);

/// <summary>An identity provider's discovery document (OpenID Connect Discovery), the two endpoints the device flow needs.</summary>
/// <param name="DeviceAuthorizationEndpoint">Where the device flow starts (RFC 8628); absent: not offered.</param>
/// <param name="TokenEndpoint">Where it is polled.</param>
internal sealed record OidcDiscovery(
    [property: JsonPropertyName("device_authorization_endpoint")] string? DeviceAuthorizationEndpoint,
    [property: JsonPropertyName("token_endpoint")] string? TokenEndpoint);

/// <summary>The device authorization answer (RFC 8628 §3.2), or its error.</summary>
/// <param name="DeviceCode">The code to poll with.</param>
/// <param name="UserCode">The code the person checks.</param>
/// <param name="VerificationUri">Where the person signs in.</param>
/// <param name="VerificationUriComplete">The same, with the code in it.</param>
/// <param name="ExpiresIn">Seconds until the codes expire.</param>
/// <param name="Interval">Seconds between polls.</param>
/// <param name="Error">The error code, when refused.</param>
/// <param name="ErrorDescription">The error in words.</param>
internal sealed record DeviceAuthorization(
    [property: JsonPropertyName("device_code")] string? DeviceCode,
    [property: JsonPropertyName("user_code")] string? UserCode,
    [property: JsonPropertyName("verification_uri")] string? VerificationUri,
    [property: JsonPropertyName("verification_uri_complete")] string? VerificationUriComplete,
    [property: JsonPropertyName("expires_in")] int? ExpiresIn,
    [property: JsonPropertyName("interval")] int? Interval,
    [property: JsonPropertyName("error")] string? Error,
    [property: JsonPropertyName("error_description")] string? ErrorDescription);

/// <summary>The token endpoint's answer to a poll: the ID token, or why not yet.</summary>
/// <param name="IdToken">The ID token, once the person signed in.</param>
/// <param name="Error"><c>authorization_pending</c>, <c>slow_down</c>, <c>access_denied</c>, <c>expired_token</c>, ….</param>
/// <param name="ErrorDescription">The error in words.</param>
internal sealed record OidcTokenAnswer(
    [property: JsonPropertyName("id_token")] string? IdToken,
    [property: JsonPropertyName("error")] string? Error,
    [property: JsonPropertyName("error_description")] string? ErrorDescription);

/// <summary>
/// JSON of the CLI's own files and of the answers that are not the server's contracts (problems, identity providers): the
/// API's conventions (camelCase, nulls left out), indented.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CliConfig))]
[JsonSerializable(typeof(ProblemDocument))]
[JsonSerializable(typeof(List<TenantQuotas>))]
[JsonSerializable(typeof(LoginSummary))]
[JsonSerializable(typeof(OidcDiscovery))]
[JsonSerializable(typeof(DeviceAuthorization))]
[JsonSerializable(typeof(OidcTokenAnswer))]
[JsonSerializable(typeof(Page<JsonNode>))]
internal sealed partial class CliJson : JsonSerializerContext;
