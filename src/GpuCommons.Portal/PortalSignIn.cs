using System.Security.Claims;
using GpuCommons.Server;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;

namespace GpuCommons.Portal;

/// <summary>
/// The portal's sign-in through OpenID Connect issuers (docs/sign-in.md): one ASP.NET Core OpenID Connect handler per
/// issuer (authorization code flow with PKCE, the answer by query, state and nonce in cookies). A validated ID token
/// goes through <see cref="Onboarding"/>, which issues an expiring session token; the portal's session cookie holds it,
/// as it holds a pasted token, so revoking the token (sign-out, an admin's disable) ends the session.
/// </summary>
public static class PortalSignIn
{
    /// <summary>Where the handlers would keep a signed-in principal; never used, as each sign-in ends in the portal's own cookie.</summary>
    public const string ExternalScheme = "gpuc-external";

    /// <summary>The short-lived cookie that carries a refusal's reason to the sign-in page: <c>code|detail</c>, protected.</summary>
    public const string ErrorCookie = "gpuc_signin_error";

    public static void Add(WebApplicationBuilder builder, ServerOptions options)
    {
        var auth = builder.Services.AddAuthentication(o => o.DefaultScheme = ExternalScheme);
        auth.AddCookie(ExternalScheme, o =>
        {
            o.Cookie.Name = "gpuc_ext";
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.Cookie.HttpOnly = true;
            o.ExpireTimeSpan = TimeSpan.FromMinutes(5);
        });
        foreach (var issuer in options.SignIn.Issuers.Where(i => i.ClientId is not null))
        {
            auth.AddOpenIdConnect(issuer.Scheme, issuer.Name, o => Configure(o, issuer, options));
        }
    }

    private static void Configure(OpenIdConnectOptions o, OidcIssuerOptions issuer, ServerOptions options)
    {
        o.Authority = issuer.Authority;
        o.RequireHttpsMetadata = new Uri(issuer.Authority).Scheme == "https";
        o.ClientId = issuer.ClientId;
        o.ClientSecret = issuer.ClientSecret;
        o.ResponseType = OpenIdConnectResponseType.Code;
        o.UsePkce = true;
        // The answer comes back by a top-level GET, so the state and nonce cookies can be SameSite=Lax (a form_post
        // answer would need SameSite=None, which browsers refuse on plain http).
        o.ResponseMode = OpenIdConnectResponseMode.Query;
        o.CallbackPath = issuer.CallbackPath;
        o.SignInScheme = ExternalScheme;
        o.Scope.Clear();
        foreach (var s in issuer.Scopes)
        {
            o.Scope.Add(s);
        }

        o.MapInboundClaims = false;
        o.GetClaimsFromUserInfoEndpoint = true;
        o.SaveTokens = false;
        o.CorrelationCookie.SameSite = SameSiteMode.Lax;
        o.NonceCookie.SameSite = SameSiteMode.Lax;
        o.CorrelationCookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        o.NonceCookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        o.CorrelationCookie.Name = "gpuc_oidc_state.";
        o.NonceCookie.Name = "gpuc_oidc_nonce.";
        o.RemoteAuthenticationTimeout = TimeSpan.FromMinutes(10);
        o.TokenValidationParameters.ClockSkew = options.SignIn.ClockSkew;
        o.TokenValidationParameters.NameClaimType = "name";
        o.Events = new OpenIdConnectEvents
        {
            OnTicketReceived = ctx => TicketReceivedAsync(ctx, issuer),
            OnRemoteFailure = ctx => RemoteFailureAsync(ctx, issuer),
        };
    }

    private static async Task TicketReceivedAsync(TicketReceivedContext ctx, OidcIssuerOptions issuer)
    {
        ctx.HandleResponse();
        var http = ctx.HttpContext;
        var options = http.RequestServices.GetRequiredService<ServerOptions>();
        var identity = ctx.Principal?.Identity as ClaimsIdentity ?? new ClaimsIdentity();
        try
        {
            var r = await http.RequestServices.GetRequiredService<Onboarding>()
                .SignInAsync(issuer, identity, "session", TokenScopes.Admin, $"portal ({issuer.Id})", http.RequestAborted);
            http.Response.Cookies.Append(PortalSetup.CookieName, PortalSetup.Protector(http).Protect(r.Token), new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Lax,
                Secure = http.Request.IsHttps,
                IsEssential = true,
                MaxAge = options.SignIn.SessionLifetime,
            });
            // An invited person lands in the project they just joined.
            var back = ctx.Properties?.Items.TryGetValue("returnUrl", out var u) == true && IsLocal(u) ? u! : "/";
            http.Response.Redirect(r.JoinedProjects.Count > 0 ? "/projects/" + Uri.EscapeDataString(r.JoinedProjects[0]) : back);
        }
        catch (SignInRefusedException e)
        {
            Fail(http, e.Status == 403 ? "refused" : "failed", e.Message);
        }
    }

    private static Task RemoteFailureAsync(RemoteFailureContext ctx, OidcIssuerOptions issuer)
    {
        ctx.HandleResponse();
        var (code, detail) = Classify(ctx.Failure, issuer, ctx.Options is OpenIdConnectOptions o ? o.ClientId ?? "" : "");
        Fail(ctx.HttpContext, code, detail);
        return Task.CompletedTask;
    }

    /// <summary>A failed sign-in's reason: a code the sign-in page words in the reader's language, and the detail.</summary>
    internal static (string Code, string Detail) Classify(Exception? failure, OidcIssuerOptions issuer, string clientId)
    {
        for (var e = failure; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case OpenIdConnectProtocolInvalidNonceException:
                    return ("nonce", $"the answer from {issuer.Name} does not carry this browser's nonce (a replayed or forged answer)");
                case OpenIdConnectProtocolInvalidStateException:
                    return ("state", $"the answer from {issuer.Name} does not carry this browser's state");
                case SecurityTokenInvalidAudienceException:
                case SecurityTokenExpiredException:
                case SecurityTokenInvalidSignatureException: // and its SecurityTokenSignatureKeyNotFoundException
                case SecurityTokenInvalidIssuerException:
                    var code = e switch
                    {
                        SecurityTokenInvalidAudienceException => "audience",
                        SecurityTokenExpiredException => "expired",
                        SecurityTokenInvalidIssuerException => "issuer",
                        _ => "signature",
                    };
                    return (code, OidcIssuers.Explain(e, issuer, clientId));
            }
        }

        var message = failure?.Message ?? "";
        if (message.Contains("Correlation failed", StringComparison.OrdinalIgnoreCase) || message.Contains("state was missing or invalid", StringComparison.OrdinalIgnoreCase)
            || message.Contains("message.State", StringComparison.Ordinal))
        {
            return ("state", $"this browser did not start this sign-in with {issuer.Name}, or the answer was already used (state missing or replayed)");
        }

        if (message.Contains("invalid_grant", StringComparison.Ordinal))
        {
            return ("code", $"{issuer.Name} refused the sign-in's code: it was already used or has expired (a replayed answer)");
        }

        if (message.Contains("access_denied", StringComparison.Ordinal))
        {
            return ("denied", $"{issuer.Name} did not sign you in");
        }

        if (failure is InvalidOperationException or HttpRequestException)
        {
            return ("provider", $"{issuer.Name} ({issuer.Authority}) does not answer: {message}");
        }

        return ("failed", $"sign-in with {issuer.Name} failed: {message}");
    }

    internal static void Fail(HttpContext http, string code, string detail)
    {
        http.Response.Cookies.Append(ErrorCookie, PortalSetup.Protector(http).Protect(code + "|" + detail), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Lax,
            Secure = http.Request.IsHttps,
            IsEssential = true,
            MaxAge = TimeSpan.FromMinutes(5),
        });
        http.Response.Redirect("/login?failed=1");
    }

    internal static bool IsLocal(string? url) =>
        !string.IsNullOrEmpty(url) && url[0] == '/' && (url.Length == 1 || (url[1] != '/' && url[1] != '\\'));
}
