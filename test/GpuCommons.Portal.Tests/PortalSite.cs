using System.Text.Json;
using GpuCommons.Backends.Local;
using GpuCommons.Server;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Playwright;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace GpuCommons.Portal.Tests;

/// <summary>
/// The whole server with the portal on real Kestrel (127.0.0.1, free port), the local backend running jobs as
/// processes on virtual GPUs, and one headless Debian Chromium shared by the tests.
/// </summary>
public class PortalSite : IAsyncLifetime
{
    public const string Chromium = "/usr/bin/chromium";

    public static readonly string[] ChromiumArgs =
    [
        "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-extensions",
    ];

    private WebApplication? _app;
    private GpuCommons.Backends.IJobBackend? _backend;
    private IPlaywright? _playwright;

    public string BaseUrl { get; private set; } = "";
    public string DataDir { get; } = Path.Combine(Path.GetTempPath(), "gpuc-portal-test-" + Guid.NewGuid().ToString("N"));
    public Dictionary<string, string> Tokens { get; private set; } = [];
    public IBrowser? Browser { get; private set; }
    public WebApplication App => _app!;

    public virtual async Task InitializeAsync()
    {
        var options = new ServerOptions
        {
            DataDir = DataDir,
            PollInterval = TimeSpan.FromMilliseconds(50),
            FullCycleInterval = TimeSpan.FromMilliseconds(250),
            // The portal's own tests run no job processes: one account is enough (AccountTests cover multi-user).
            Accounts = GpuCommons.Server.Security.AccountMode.SingleUser,
        };
        Configure(options);
        _backend = CreateBackend();
        _app = ServerApp.Build(options, _backend, b =>
        {
            PortalSetup.AddPortal(b);
            b.WebHost.UseUrls("http://127.0.0.1:0");
            b.Logging.ClearProviders();
        }, Time);
        PortalSetup.MapPortal(_app);
        await ServerApp.InitialiseAsync(_app);
        await SeedAsync(_app);
        await _app.StartAsync();
        await _app.Services.GetRequiredService<Coordinator>().Ready.WaitAsync(TimeSpan.FromSeconds(30));
        BaseUrl = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
        Tokens = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(DataDir, "demo-tokens.json")))!;
        Tokens["admin"] = (await File.ReadAllTextAsync(Path.Combine(DataDir, "admin-token"))).Trim();

        if (!File.Exists(Chromium))
        {
            if (BrowserFactAttribute.OnCi)
            {
                throw new InvalidOperationException($"{Chromium} is missing and CI=true: install it with 'apt-get install chromium' (see shared/recipes/browser-tests.md)");
            }

            return;
        }

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium, // Debian's chromium; never 'playwright install'
            Headless = true,
            Args = ChromiumArgs,
            Timeout = 60_000,
        });
    }

    /// <summary>Where jobs run: the local backend (processes on 8 virtual GPUs of node local-1).</summary>
    protected virtual GpuCommons.Backends.IJobBackend CreateBackend() => new LocalBackend(new LocalBackendOptions
    {
        StateDirectory = Path.Combine(DataDir, "backend"),
        GpuMode = LocalGpuMode.Virtual,
        VirtualGpuCount = 8,
        NodeName = "local-1",
    });

    /// <summary>Server options of a site with more than the defaults (sign-in issuers, say).</summary>
    protected virtual void Configure(ServerOptions options)
    {
    }

    /// <summary>The server's clock (null: the system's).</summary>
    protected virtual TimeProvider? Time => null;

    /// <summary>Data to add before the server starts (none: the demo tenancy only).</summary>
    protected virtual Task SeedAsync(WebApplication app) => Task.CompletedTask;

    /// <summary>A fresh browser context signed in as <paramref name="user"/> through the login form.</summary>
    public async Task<IPage> SignInAsync(string user, string lang = "en-US")
    {
        var context = await Browser!.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 }, Locale = lang });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(20_000);
        await page.GotoAsync($"{BaseUrl}/login?lang={lang}");
        await page.FillAsync("#token", Tokens[user]);
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page.Locator("header.top .me form button")).ToBeVisibleAsync(); // the sign-out button: signed in
        return page;
    }

    public static async Task ShotAsync(IPage page, string name)
    {
        var dir = Environment.GetEnvironmentVariable("SCREENSHOT_DIR") ?? Path.Combine(RepoRoot(), "artifacts", "screenshots");
        Directory.CreateDirectory(dir);
        await page.ScreenshotAsync(new() { Path = Path.Combine(dir, name + ".png"), FullPage = true });
    }

    private static string RepoRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "GpuCommons.slnx")))
        {
            d = d.Parent;
        }

        return d?.FullName ?? AppContext.BaseDirectory;
    }

    public virtual async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        if (_backend is not null)
        {
            await _backend.DisposeAsync();
        }

        try
        {
            Directory.Delete(DataDir, true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>A browser test: skipped with a clear message where Debian's chromium is missing, except on CI (CI=true), where it fails.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public static bool OnCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public BrowserFactAttribute()
    {
        if (!File.Exists(PortalSite.Chromium) && !OnCi)
        {
            Skip = $"{PortalSite.Chromium} is not installed (apt-get install chromium); browser tests are skipped here and fail on CI";
        }
    }
}

[CollectionDefinition("portal")]
public sealed class PortalCollection : ICollectionFixture<PortalSite>;

/// <summary>The portal over the national fleet (3,400 nodes, about 19,000 GPUs) with 20,000 jobs, for the at-scale pages.</summary>
public sealed class NationalSite : PortalSite
{
    private readonly GpuCommons.Core.Fleet.Fleet _fleet = GpuCommons.Core.Fleet.FleetSpecLoader.Load("national");

    protected override GpuCommons.Backends.IJobBackend CreateBackend() => new NationalDemo.Backend(_fleet);

    protected override async Task SeedAsync(WebApplication app) =>
        await NationalDemo.SeedAsync(app.Services.GetRequiredService<GpuCommons.Server.Data.GpucDbFactory>(), _fleet, 20_000, CancellationToken.None);
}
