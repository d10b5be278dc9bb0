using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Localization;

namespace GpuCommons.Portal;

/// <summary>Base of every signed-in page: the caller, the database, the engine, the strings.</summary>
public abstract class PortalPage : PageModel
{
    public Caller Caller => (Caller)HttpContext.Items["caller"]!;
    protected GpucDbFactory Db => HttpContext.RequestServices.GetRequiredService<GpucDbFactory>();
    protected Coordinator Co => HttpContext.RequestServices.GetRequiredService<Coordinator>();
    protected PortalApi Api => HttpContext.RequestServices.GetRequiredService<PortalApi>();
    protected ServerOptions Options => HttpContext.RequestServices.GetRequiredService<ServerOptions>();
    protected DateTimeOffset Now => HttpContext.RequestServices.GetRequiredService<TimeProvider>().GetUtcNow();
    public IStringLocalizer<Text> L => HttpContext.RequestServices.GetRequiredService<IStringLocalizer<Text>>();

    [TempData]
    public string? Flash { get; set; }

    [TempData]
    public string? FlashError { get; set; }

    protected IActionResult Back(ApiResult r, string okMessage, string? url = null)
    {
        if (r.Ok)
        {
            Flash = okMessage;
        }
        else
        {
            FlashError = ServerText.Error(r, L);
        }

        return url is null ? RedirectToPage() : Redirect(url);
    }

    /// <summary>403 as a page of the portal (its header, navigation and language), saying what is not allowed.</summary>
    protected IActionResult Forbidden() =>
        new ViewResult { ViewName = "/Pages/Shared/_Forbidden.cshtml", StatusCode = 403 };

    /// <summary>Charge rate of a partition (or the server default).</summary>
    protected decimal Rate(string? partition) =>
        partition is not null && Co.Fleet.FindPartition(partition) is { } p ? p.RatePerGpuHour : Options.RatePerGpuHour;
}
