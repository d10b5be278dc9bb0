using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Localization;

namespace GpuCommons.Portal.Pages;

/// <summary>Sign-in: with one of the configured OpenID Connect issuers, or by pasting a token (docs/sign-in.md).</summary>
public sealed class LoginModel : PageModel
{
    [BindProperty(SupportsGet = true)]
    public string? ReturnUrl { get; set; }

    public string? Error { get; private set; }

    /// <summary>Why a sign-in with an issuer failed: state, nonce, code, audience, signature, expired, issuer, refused, denied, provider, failed.</summary>
    public string? ErrorCode { get; private set; }

    public bool Ended { get; private set; }

    public IReadOnlyList<OidcIssuerOptions> Issuers =>
        HttpContext.RequestServices.GetRequiredService<ServerOptions>().SignIn.Issuers.Where(i => i.ClientId is not null).ToList();

    private IStringLocalizer<Text> L => HttpContext.RequestServices.GetRequiredService<IStringLocalizer<Text>>();

    public void OnGet(bool ended = false)
    {
        Ended = ended;
        if (Request.Cookies.TryGetValue(PortalSignIn.ErrorCookie, out var value))
        {
            Response.Cookies.Delete(PortalSignIn.ErrorCookie);
            try
            {
                var text = PortalSetup.Protector(HttpContext).Unprotect(value);
                var bar = text.IndexOf('|', StringComparison.Ordinal);
                ErrorCode = bar > 0 ? text[..bar] : "failed";
                var detail = bar > 0 ? text[(bar + 1)..] : text;
                Error = L["SignInError_" + ErrorCode] + " " + (detail.Length > 0 ? char.ToUpperInvariant(detail[0]) + detail[1..] : "");
            }
            catch (System.Security.Cryptography.CryptographicException)
            {
            }
        }
    }

    public IActionResult OnPostOidc(string? issuer)
    {
        var found = Issuers.FirstOrDefault(i => i.Id == issuer);
        if (found is null)
        {
            ErrorCode = "issuer";
            Error = L["SignInError_issuer"] + " " + L["IssuerNotConfigured", issuer ?? ""];
            return Page();
        }

        var props = new AuthenticationProperties { RedirectUri = "/" };
        if (PortalSignIn.IsLocal(ReturnUrl))
        {
            props.Items["returnUrl"] = ReturnUrl;
        }

        return Challenge(props, found.Scheme);
    }

    public async Task<IActionResult> OnPostAsync(string? token)
    {
        var caller = string.IsNullOrWhiteSpace(token) || token.Length > 512 ? null
            : await HttpContext.RequestServices.GetRequiredService<TokenService>().ResolveAsync(token.Trim(), HttpContext.RequestAborted);
        if (caller is null)
        {
            Error = L["BadToken"];
            return Page();
        }

        Response.Cookies.Append(PortalSetup.CookieName, PortalSetup.Protector(HttpContext).Protect(token!.Trim()), new CookieOptions
        {
            HttpOnly = true,
            SameSite = SameSiteMode.Lax,
            Secure = Request.IsHttps,
            IsEssential = true,
            MaxAge = TimeSpan.FromHours(12),
        });
        return LocalRedirect(PortalSignIn.IsLocal(ReturnUrl) ? ReturnUrl! : "/");
    }

    public async Task<IActionResult> OnPostLogout()
    {
        Response.Cookies.Delete(PortalSetup.CookieName);
        // A session from an identity provider ends for good: its token is revoked. A pasted token stays the owner's.
        if (HttpContext.Items["portal-token"] is string token && HttpContext.Items["caller"] is Caller caller)
        {
            var services = HttpContext.RequestServices;
            await using var db = services.GetRequiredService<GpucDbFactory>().Create();
            var row = await db.Tokens.FindAsync(TokenService.Hash(token));
            if (row is { Kind: "session" })
            {
                db.Tokens.Remove(row);
                db.Events.Add(new EventRow
                {
                    Time = services.GetRequiredService<TimeProvider>().GetUtcNow(), Actor = caller.User, Kind = "token.revoked", Subject = $"user/{caller.User}",
                    Detail = $"session token {row.Hash[..12]} (signed out of the portal)",
                });
                await db.SaveChangesAsync();
                services.GetRequiredService<TokenService>().Invalidate();
            }
        }

        return Redirect("/login");
    }
}
