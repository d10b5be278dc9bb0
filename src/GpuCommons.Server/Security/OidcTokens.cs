using System.Collections.Concurrent;
using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Protocols;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace GpuCommons.Server.Security;

/// <summary>A sign-in the server refuses, with a message for the person and the HTTP status of the API's answer.</summary>
public sealed class SignInRefusedException(string message, int status = 401) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>
/// The configured OpenID Connect issuers: their discovery documents and signing keys (cached, refreshed when a key is
/// unknown), and validation of ID tokens that <c>gpuc login</c> brings back from the device authorization grant.
/// </summary>
public sealed class OidcIssuers
{
    private readonly ServerOptions _options;
    private readonly ConcurrentDictionary<string, ConfigurationManager<OpenIdConnectConfiguration>> _managers = new(StringComparer.Ordinal);
    private readonly HttpClient _http;

    public OidcIssuers(ServerOptions options, IHttpClientFactory http)
    {
        _options = options;
        _http = http.CreateClient("oidc");
    }

    public IReadOnlyList<OidcIssuerOptions> All => _options.SignIn.Issuers;

    /// <summary>The issuer whose ID tokens name <paramref name="iss"/>; null when none is configured.</summary>
    public OidcIssuerOptions? ByIssuerUrl(string? iss) =>
        iss is null ? null : All.FirstOrDefault(i => string.Equals(i.Authority.TrimEnd('/'), iss.TrimEnd('/'), StringComparison.Ordinal));

    public ConfigurationManager<OpenIdConnectConfiguration> Manager(OidcIssuerOptions issuer) =>
        _managers.GetOrAdd(issuer.Id, _ => new ConfigurationManager<OpenIdConnectConfiguration>(
            issuer.Authority.TrimEnd('/') + "/.well-known/openid-configuration",
            new OpenIdConnectConfigurationRetriever(),
            new HttpDocumentRetriever(_http) { RequireHttps = new Uri(issuer.Authority).Scheme == "https" }));

    /// <summary>The issuer's discovery document, or a refusal naming the issuer that does not answer.</summary>
    public async Task<OpenIdConnectConfiguration> ConfigurationAsync(OidcIssuerOptions issuer, CancellationToken ct)
    {
        try
        {
            return await Manager(issuer).GetConfigurationAsync(ct);
        }
        catch (InvalidOperationException e)
        {
            throw new SignInRefusedException($"the identity provider {issuer.Name} ({issuer.Authority}) does not answer: {e.Message}", 503);
        }
    }

    /// <summary>
    /// Validates an ID token issued to the CLI's client (device authorization grant): a configured issuer, its signature,
    /// the CLI client as audience, its lifetime. Returns the issuer and the token's claims; refusals say which check failed.
    /// </summary>
    public async Task<(OidcIssuerOptions Issuer, ClaimsIdentity Claims)> ValidateCliTokenAsync(string idToken, CancellationToken ct)
    {
        var handler = new JsonWebTokenHandler { MapInboundClaims = false };
        JsonWebToken jwt;
        try
        {
            jwt = handler.ReadJsonWebToken(idToken);
        }
        catch (ArgumentException)
        {
            throw new SignInRefusedException("idToken: not a JSON Web Token (give the id_token the identity provider returned)", 400);
        }

        var iss = jwt.Issuer;
        var issuer = ByIssuerUrl(iss) ?? throw new SignInRefusedException(
            $"the ID token's issuer '{iss}' is not configured on this server (configured: {string.Join(", ", All.Select(i => i.Authority))})");
        if (issuer.CliClientId is null)
        {
            throw new SignInRefusedException($"the identity provider {issuer.Name} is not set up for gpuc login (no cli-client-id); sign in through the portal");
        }

        var config = await ConfigurationAsync(issuer, ct);
        var parameters = Parameters(issuer, config, issuer.CliClientId);
        var result = await handler.ValidateTokenAsync(idToken, parameters);
        if (!result.IsValid && result.Exception is SecurityTokenSignatureKeyNotFoundException)
        {
            // The issuer may have rotated its keys since they were read: read them once more.
            Manager(issuer).RequestRefresh();
            config = await ConfigurationAsync(issuer, ct);
            result = await handler.ValidateTokenAsync(idToken, Parameters(issuer, config, issuer.CliClientId));
        }

        if (!result.IsValid)
        {
            throw new SignInRefusedException(Explain(result.Exception, issuer, issuer.CliClientId, jwt));
        }

        return (issuer, result.ClaimsIdentity);
    }

    private TokenValidationParameters Parameters(OidcIssuerOptions issuer, OpenIdConnectConfiguration config, string audience) => new()
    {
        ValidIssuer = config.Issuer ?? issuer.Authority,
        ValidAudience = audience,
        IssuerSigningKeys = config.SigningKeys,
        ValidateIssuerSigningKey = true,
        RequireSignedTokens = true,
        RequireExpirationTime = true,
        ValidateLifetime = true,
        ClockSkew = _options.SignIn.ClockSkew,
        NameClaimType = "name",
    };

    /// <summary>The reason a token failed validation, for the person signing in.</summary>
    public static string Explain(Exception? e, OidcIssuerOptions issuer, string audience, JsonWebToken? jwt = null) => e switch
    {
        SecurityTokenExpiredException x => $"the ID token from {issuer.Name} expired at {x.Expires:yyyy-MM-dd HH:mm:ss}Z: sign in again",
        SecurityTokenNotYetValidException => $"the ID token from {issuer.Name} is not valid yet (check the clocks of this server and the identity provider)",
        SecurityTokenInvalidAudienceException => $"the ID token was issued to another application ({(jwt is null ? "audience" : string.Join(", ", jwt.Audiences))}), not to this server's client '{audience}' (wrong audience)",
        SecurityTokenInvalidIssuerException => $"the ID token's issuer is not {issuer.Authority}",
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException => $"the ID token's signature does not verify with the keys of {issuer.Name} (bad signature)",
        SecurityTokenNoExpirationException => "the ID token has no expiry time",
        SecurityTokenException x => $"the ID token from {issuer.Name} is not valid: {x.Message}",
        null => $"the ID token from {issuer.Name} is not valid",
        _ => $"the ID token from {issuer.Name} could not be checked: {e.Message}",
    };
}
