using GpuCommons.Contracts;
using GpuCommons.Server.Api;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Portal.Pages;

/// <summary>The signed-in person's tokens: kind, scope, expiry and last use; a new personal access token; revocation.</summary>
public sealed class TokensModel : PortalPage
{
    public IReadOnlyList<TokenDto> Tokens { get; private set; } = [];

    /// <summary>The id of the token this portal session holds.</summary>
    public string? Current { get; private set; }

    /// <summary>A token just created, shown once.</summary>
    public string? NewToken { get; private set; }

    public async Task OnGetAsync() => await LoadAsync();

    private async Task LoadAsync()
    {
        await using var db = Db.Create();
        var rows = await db.Tokens.AsNoTracking().Where(t => t.User == Caller.User).ToListAsync();
        Tokens = rows.OrderBy(t => t.Created).Select(TokenDto.From).ToList();
        Current = HttpContext.Items["portal-token"] is string token ? TokenService.Hash(token)[..12] : null;
    }

    public async Task<IActionResult> OnPostCreateAsync(string? scope, int? days, string? label)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/users/{Uri.EscapeDataString(Caller.User)}/tokens",
            new { scope, expiresInDays = days, label = string.IsNullOrWhiteSpace(label) ? null : label });
        if (!r.Ok)
        {
            FlashError = r.Error;
            return RedirectToPage();
        }

        NewToken = r.Json.GetProperty("token").GetString();
        await LoadAsync();
        return Page();
    }

    public async Task<IActionResult> OnPostRevokeAsync(string? id)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Delete, $"/api/users/{Uri.EscapeDataString(Caller.User)}/tokens/{Uri.EscapeDataString(id ?? "")}");
        return Back(r, L["TokenRevoked"]);
    }
}
