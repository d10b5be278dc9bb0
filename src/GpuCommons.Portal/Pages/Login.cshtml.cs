using GpuCommons.Server.Security;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Localization;

namespace GpuCommons.Portal.Pages;

public sealed class LoginModel : PageModel
{
    [BindProperty(SupportsGet = true)]
    public string? ReturnUrl { get; set; }

    public string? Error { get; private set; }

    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync(string? token)
    {
        var caller = string.IsNullOrWhiteSpace(token) || token.Length > 512 ? null
            : await HttpContext.RequestServices.GetRequiredService<TokenService>().ResolveAsync(token.Trim(), HttpContext.RequestAborted);
        if (caller is null)
        {
            Error = HttpContext.RequestServices.GetRequiredService<IStringLocalizer<Text>>()["BadToken"];
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
        return LocalRedirect(Url.IsLocalUrl(ReturnUrl) ? ReturnUrl! : "/");
    }

    public IActionResult OnPostLogout()
    {
        Response.Cookies.Delete(PortalSetup.CookieName);
        return Redirect("/login");
    }
}
