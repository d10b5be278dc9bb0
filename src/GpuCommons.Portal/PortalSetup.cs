using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using GpuCommons.Server;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Localization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Portal;

/// <summary>
/// The web portal: Razor Pages served by the same process as the API. Login exchanges an API token for an
/// encrypted cookie that holds the token, so every page resolves the caller exactly as the API does.
/// </summary>
public static class PortalSetup
{
    public const string CookieName = "gpuc_portal";
    public const string CultureCookie = "gpuc_lang";
    public static readonly CultureInfo[] Cultures = [new("en-US"), new("ko-KR")];

    /// <summary>Registers the portal's services (call from the <c>configure</c> callback of <see cref="ServerApp.Build"/>).</summary>
    public static void AddPortal(WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddLocalization(o => o.ResourcesPath = "Resources");
        // Korean text is written as UTF-8, not as &#x…; entities (a third of the bytes).
        builder.Services.Configure<Microsoft.Extensions.WebEncoders.WebEncoderOptions>(o =>
            o.TextEncoderSettings = new System.Text.Encodings.Web.TextEncoderSettings(System.Text.Unicode.UnicodeRanges.All));
        // The session-cookie keys sit in the data directory beside admin-token, readable by the server's user only.
        builder.Logging.AddFilter("Microsoft.AspNetCore.DataProtection", LogLevel.Error);
        builder.Services.AddRazorPages(o =>
        {
            o.Conventions.AddPageRoute("/Job", "jobs/{id:long}");
            o.Conventions.AddPageRoute("/Project", "projects/{name}");
        }).AddApplicationPart(typeof(PortalSetup).Assembly).AddViewLocalization();
        builder.Services.AddAntiforgery(o => o.Cookie.Name = "gpuc_af");
        // Pages are compressed on plain HTTP only (the default): the fleet grid of 3,400 nodes is ~300 KB of SVG paths, ~10× smaller gzipped.
        builder.Services.AddResponseCompression(o => o.MimeTypes = ["text/html", "text/css", "text/javascript", "text/csv"]);
        builder.Services.Configure<Microsoft.AspNetCore.ResponseCompression.GzipCompressionProviderOptions>(o => o.Level = System.IO.Compression.CompressionLevel.Fastest);
        builder.Services.AddHttpForwarder();
        builder.Services.AddSingleton<QueueSnapshot>();
        builder.Services.AddSingleton<PortalApi>();
        builder.Services.AddSingleton<Reports>();
        builder.Services.AddHostedService<ReportsWarmup>();
        builder.Services.AddHttpClient("portal-self");
        builder.Services.AddDataProtection().SetApplicationName("gpucommons-portal");
        var options = builder.Services.Where(d => !d.IsKeyedService && d.ServiceType == typeof(ServerOptions)).Select(d => d.ImplementationInstance).OfType<ServerOptions>().LastOrDefault() ?? new ServerOptions();
        PortalSignIn.Add(builder, options);
        builder.Services.AddOptions<Microsoft.AspNetCore.DataProtection.KeyManagement.KeyManagementOptions>()
            .Configure<ServerOptions>((k, o) => k.XmlRepository = new Microsoft.AspNetCore.DataProtection.Repositories.FileSystemXmlRepository(
                KeyDirectory(o), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance));
    }

    private static DirectoryInfo KeyDirectory(ServerOptions o)
    {
        var dir = Directory.CreateDirectory(Path.Combine(o.DataDir, "portal-keys"));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(dir.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return dir;
    }

    /// <summary>Adds the portal's middleware and pages to a built server.</summary>
    public static void MapPortal(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Use(Timing);
        app.UseWhen(ctx => IsPortalPath(ctx.Request.Path) && !SessionProxy.IsProxyPath(ctx.Request.Path), a => a.UseResponseCompression());
        // Only the portal's pages are localized: the API answers the same whatever the browser's language.
        app.UseWhen(ctx => IsPortalPath(ctx.Request.Path), a => a.UseRequestLocalization(o =>
        {
            o.DefaultRequestCulture = new RequestCulture("en-US");
            o.SupportedCultures = Cultures;
            o.SupportedUICultures = Cultures;
            o.RequestCultureProviders =
            [
                new QueryStringRequestCultureProvider { QueryStringKey = "lang", UIQueryStringKey = "lang" },
                new CookieRequestCultureProvider { CookieName = CultureCookie },
                new AcceptLanguageHeaderRequestCultureProvider(),
            ];
        }));
        app.Use(RememberLanguage);
        // The OpenID Connect handlers answer at /signin-oidc/ID before anything asks for a session.
        app.UseAuthentication();
        app.Use(SignedIn);
        app.MapGet("/static/{name}", StaticFile).ExcludeFromDescription();
        SessionProxy.Map(app);
        app.MapRazorPages();
    }

    private static bool IsPortalPath(PathString p) =>
        !(p.StartsWithSegments("/api") || p.StartsWithSegments("/openapi") || p.StartsWithSegments("/metrics")
          || p.StartsWithSegments("/healthz") || p.StartsWithSegments("/readyz") || p.StartsWithSegments("/livez"));

    /// <summary>Server-Timing: the server time of each portal response, for the page benchmark and the browser's dev tools.</summary>
    private static Task Timing(HttpContext ctx, RequestDelegate next)
    {
        if (!IsPortalPath(ctx.Request.Path))
        {
            return next(ctx);
        }

        var start = Stopwatch.GetTimestamp();
        ctx.Response.OnStarting(() =>
        {
            ctx.Response.Headers["Server-Timing"] = "app;dur=" + Stopwatch.GetElapsedTime(start).TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        });
        return next(ctx);
    }

    /// <summary>?lang=ko switches the language and remembers it in a cookie.</summary>
    private static Task RememberLanguage(HttpContext ctx, RequestDelegate next)
    {
        if (ctx.Request.Query.TryGetValue("lang", out var lang) && Cultures.Any(c => c.Name == lang.ToString()))
        {
            ctx.Response.Cookies.Append(CultureCookie, CookieRequestCultureProvider.MakeCookieValue(new RequestCulture(lang.ToString())),
                new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Lax, MaxAge = TimeSpan.FromDays(365), IsEssential = true });
        }

        return next(ctx);
    }

    private static async Task SignedIn(HttpContext ctx, RequestDelegate next)
    {
        var path = ctx.Request.Path;
        if (!IsPortalPath(path))
        {
            await next(ctx);
            return;
        }

        var hadSession = ctx.Request.Cookies.TryGetValue(CookieName, out var cookie);
        if (hadSession && Unprotect(ctx, cookie!) is { } token
            && await ctx.RequestServices.GetRequiredService<TokenService>().ResolveAsync(token, ctx.RequestAborted) is { } caller)
        {
            ctx.Items["caller"] = caller;
            ctx.Items["portal-token"] = token;
        }
        else if (hadSession)
        {
            // Signed out elsewhere, expired, or the account was disabled: the session is over.
            ctx.Response.Cookies.Delete(CookieName);
        }

        if (ctx.Items["caller"] is null && !path.StartsWithSegments("/login") && !path.StartsWithSegments("/static"))
        {
            var back = path + ctx.Request.QueryString;
            ctx.Response.Redirect("/login?returnUrl=" + Uri.EscapeDataString(back) + (hadSession ? "&ended=true" : ""));
            return;
        }

        await next(ctx);
    }

    internal static IDataProtector Protector(HttpContext ctx) => Protector(ctx.RequestServices);

    private static IDataProtector Protector(IServiceProvider services) =>
        services.GetRequiredService<IDataProtectionProvider>().CreateProtector("gpuc-portal-token");

    /// <summary>The value of the portal's session cookie for a token (what the login form sets); for benchmarks and tools.</summary>
    public static string SessionCookie(IServiceProvider services, string token) => Protector(services).Protect(token);

    private static string? Unprotect(HttpContext ctx, string value)
    {
        try
        {
            return Protector(ctx).Unprotect(value);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
    }

    private static IResult StaticFile(string name)
    {
        var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("static/" + name);
        if (stream is null)
        {
            return Results.NotFound();
        }

        var type = Path.GetExtension(name) switch
        {
            ".css" => "text/css; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".svg" => "image/svg+xml",
            ".woff2" => "font/woff2",
            _ => "application/octet-stream",
        };
        return Results.Stream(stream, type);
    }
}
