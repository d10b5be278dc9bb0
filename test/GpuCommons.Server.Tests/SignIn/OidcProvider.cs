using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace GpuCommons.Server.Tests.SignIn;

/// <summary>
/// The test OpenID Connect issuers of ci/oidc (npm's oidc-provider, started by <c>bash ci/oidc/start.sh</c>): issuer A
/// ("University A", sends the affiliation claim org) and issuer B ("University B", none). Any login signs in with any password.
/// </summary>
public static partial class OidcProvider
{
    public static string IssuerA => Environment.GetEnvironmentVariable("GPUC_TEST_OIDC_A") ?? "http://127.0.0.1:9460";
    public static string IssuerB => Environment.GetEnvironmentVariable("GPUC_TEST_OIDC_B") ?? "http://127.0.0.1:9461";

    public const string PortalClient = "gpuc-portal", PortalSecret = "gpuc-portal-secret", CliClient = "gpuc-cli";

    private static readonly Lazy<bool> Up = new(() => Answers(IssuerA) && Answers(IssuerB));

    public static bool Available => Up.Value;

    public static bool OnCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    private static bool Answers(string issuer)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            var doc = JsonDocument.Parse(http.GetStringAsync(issuer + "/.well-known/openid-configuration").GetAwaiter().GetResult());
            return doc.RootElement.GetProperty("issuer").GetString() == issuer;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException or KeyNotFoundException)
        {
            return false;
        }
    }

    /// <summary>Issuer options as <c>gpuc serve --oidc-issuer</c> would give them.</summary>
    public static Security.OidcIssuerOptions A(string id = "uni-a") => new()
    {
        Id = id, DisplayName = "University A", Authority = IssuerA, ClientId = PortalClient, ClientSecret = PortalSecret, CliClientId = CliClient,
        AffiliationClaim = "org", Scopes = ["openid", "email", "profile", "org"],
    };

    public static Security.OidcIssuerOptions B(string id = "uni-b") => new()
    {
        Id = id, DisplayName = "University B", Authority = IssuerB, ClientId = PortalClient, ClientSecret = PortalSecret, CliClientId = CliClient,
    };

    /// <summary>Runs the device authorization grant for <paramref name="clientId"/> and signs in as <paramref name="login"/>; returns the ID token.</summary>
    public static async Task<string> DeviceIdTokenAsync(string issuer, string login, string clientId = CliClient)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var start = await http.PostAsync(issuer + "/device/auth", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["client_id"] = clientId, ["scope"] = "openid email profile org",
        }));
        start.EnsureSuccessStatusCode();
        var device = JsonDocument.Parse(await start.Content.ReadAsStringAsync()).RootElement;
        await ApproveAsync(device.GetProperty("verification_uri_complete").GetString()!, login);
        using var token = await http.PostAsync(issuer + "/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "urn:ietf:params:oauth:grant-type:device_code", ["device_code"] = device.GetProperty("device_code").GetString()!, ["client_id"] = clientId,
        }));
        var body = await token.Content.ReadAsStringAsync();
        token.IsSuccessStatusCode.ShouldBeTrue(body);
        return JsonDocument.Parse(body).RootElement.GetProperty("id_token").GetString()!;
    }

    /// <summary>A person's approval of a device code at the issuer (what they do in their browser): the code, the login form.</summary>
    public static async Task ApproveAsync(string verificationUrl, string login)
    {
        var origin = new Uri(verificationUrl).GetLeftPart(UriPartial.Authority);
        using var handler = new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = true };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
        var html = await http.GetStringAsync(verificationUrl);
        // The code page submits itself; then the confirmation page.
        html = await PostFormAsync(http, origin + "/device", html, []);
        html = await PostFormAsync(http, origin + "/device", html, []);
        // The issuer's login form (its consent is implicit).
        var action = FormAction().Match(html);
        action.Success.ShouldBeTrue($"no login form at the issuer: {html}");
        using var done = await http.PostAsync(new Uri(new Uri(origin), WebUtility.HtmlDecode(action.Groups[1].Value)),
            new FormUrlEncodedContent(new Dictionary<string, string> { ["login"] = login, ["password"] = "pw" }));
        var end = await done.Content.ReadAsStringAsync();
        end.ShouldContain("device-done", customMessage: end);
    }

    /// <summary>Posts the page's first form with its hidden fields (and <paramref name="extra"/>); returns the answer.</summary>
    public static async Task<string> PostFormAsync(HttpClient http, string action, string html, Dictionary<string, string> extra)
    {
        var fields = Hidden().Matches(html).ToDictionary(m => WebUtility.HtmlDecode(m.Groups[1].Value), m => WebUtility.HtmlDecode(m.Groups[2].Value));
        foreach (var (k, v) in extra)
        {
            fields[k] = v;
        }

        using var r = await http.PostAsync(action, new FormUrlEncodedContent(fields));
        return await r.Content.ReadAsStringAsync();
    }

    [GeneratedRegex("<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\"")]
    private static partial Regex Hidden();

    [GeneratedRegex("<form method=\"post\" action=\"(/interaction/[^\"]+)\"")]
    public static partial Regex FormAction();

    /// <summary>A payload part of a JWT, decoded.</summary>
    public static JsonElement Payload(string jwt)
    {
        var p = jwt.Split('.')[1].Replace('-', '+').Replace('_', '/');
        p += new string('=', (4 - (p.Length % 4)) % 4);
        return JsonDocument.Parse(Convert.FromBase64String(p)).RootElement;
    }
}

/// <summary>
/// A test that needs the test OpenID Connect issuers (<c>bash ci/oidc/start.sh</c>). Skipped with this message where they
/// do not answer; on CI (CI=true) it runs anyway and fails, so a missing provider is never a silent pass.
/// </summary>
public sealed class OidcFactAttribute : FactAttribute
{
    public OidcFactAttribute()
    {
        if (!OidcProvider.OnCi && !OidcProvider.Available)
        {
            Skip = $"the test OpenID Connect issuers do not answer at {OidcProvider.IssuerA} and {OidcProvider.IssuerB} (run: bash ci/oidc/start.sh); skipped here, they fail on CI";
        }
    }
}
