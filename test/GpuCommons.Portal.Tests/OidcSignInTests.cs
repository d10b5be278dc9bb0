using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Tests.SignIn;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;
using Microsoft.IdentityModel.Tokens;
using Microsoft.Playwright;
using Cookie = System.Net.Cookie;
using static Microsoft.Playwright.Assertions;

namespace GpuCommons.Portal.Tests;

/// <summary>The portal with sign-in through the two test issuers of ci/oidc, University A and University B (an email-domain row places B's people).</summary>
public sealed class OidcSite : PortalSite
{
    protected override void Configure(ServerOptions options)
    {
        options.SignIn.Issuers = [OidcProvider.A(), OidcProvider.B()];
    }

    protected override async Task SeedAsync(WebApplication app)
    {
        await using var db = app.Services.GetRequiredService<GpucDbFactory>().Create();
        var now = DateTimeOffset.UtcNow;
        db.Organisations.Add(new OrganisationRow { Name = "University A", Type = "university", Created = now });
        db.Organisations.Add(new OrganisationRow { Name = "University B", Type = "university", Created = now });
        db.EmailDomains.Add(new EmailDomainRow { Domain = "uni-b.ac.kr", Organisation = "University B", Created = now });
        await db.SaveChangesAsync();
    }
}

[CollectionDefinition("oidc-portal")]
public sealed class OidcPortalCollection : ICollectionFixture<OidcSite>;

/// <summary>A browser test through the test issuers: skipped where Chromium or the issuers are missing, except on CI, where it fails.</summary>
public sealed class OidcBrowserFactAttribute : FactAttribute
{
    public OidcBrowserFactAttribute()
    {
        if (BrowserFactAttribute.OnCi)
        {
            return;
        }

        if (!File.Exists(PortalSite.Chromium))
        {
            Skip = $"{PortalSite.Chromium} is not installed (apt-get install chromium); browser tests are skipped here and fail on CI";
        }
        else if (!OidcProvider.Available)
        {
            Skip = $"the test OpenID Connect issuers do not answer at {OidcProvider.IssuerA} and {OidcProvider.IssuerB} (run: bash ci/oidc/start.sh); skipped here, they fail on CI";
        }
    }
}

/// <summary>
/// Sign-in with the researcher's institution in headless Chromium, in English and Korean: through the real issuer,
/// first-login provisioning into the right organisation, an invited member landing in the project, a disabled person
/// thrown out; and the refusals of replayed or forged answers over plain HTTP.
/// </summary>
[Collection("oidc-portal")]
public sealed partial class OidcSignInTests(OidcSite site)
{
    private static string Unique(string name) => name + Guid.NewGuid().ToString("N")[..6];

    private HttpClient Admin()
    {
        var c = new HttpClient { BaseAddress = new Uri(site.BaseUrl) };
        c.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", site.Tokens["admin"]);
        return c;
    }

    /// <summary>Signs in through the issuer's button and its login form; returns the page back in the portal.</summary>
    private async Task<IPage> SignInWithAsync(string issuerId, string login, string lang, IPage? page = null)
    {
        if (page is null)
        {
            var context = await site.Browser!.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 }, Locale = lang });
            page = await context.NewPageAsync();
            page.SetDefaultTimeout(20_000);
        }

        await page.GotoAsync($"{site.BaseUrl}/login?lang={lang}");
        await page.ClickAsync($"button[data-issuer='{issuerId}']");
        await page.WaitForURLAsync(new Regex("/interaction/"), new() { WaitUntil = WaitUntilState.Commit, Timeout = 60_000 });
        await page.FillAsync("#login", login);
        await page.FillAsync("#password", "pw");
        await page.ClickAsync("#sign-in");
        // Back at the portal once the redirect commits; the landing page's own load is the caller's to wait for (the first
        // page after a sign-in computes reports, which takes long on a loaded machine).
        await page.WaitForURLAsync(u => u.StartsWith(site.BaseUrl, StringComparison.Ordinal) && !u.Contains("/signin-oidc/", StringComparison.Ordinal),
            new() { WaitUntil = WaitUntilState.Commit, Timeout = 60_000 });
        await page.WaitForLoadStateAsync(LoadState.DOMContentLoaded, new() { Timeout = 60_000 });
        return page;
    }

    private async Task SignInProvisionAndDisableAsync(string lang)
    {
        var ko = lang.StartsWith("ko", StringComparison.Ordinal);
        var (issuer, org) = ko ? ("uni-b", "University B") : ("uni-a", "University A");
        var login = Unique(ko ? "jiwoo" : "ada");

        // The sign-in page lists the configured issuers beside the token form.
        var context = await site.Browser!.NewContextAsync(new() { ViewportSize = new() { Width = 1280, Height = 900 }, Locale = lang });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(20_000);
        await page.GotoAsync($"{site.BaseUrl}/login?lang={lang}");
        await Expect(page.Locator("#issuers button[data-issuer='uni-a']")).ToHaveTextAsync(ko ? "University A 계정으로 로그인" : "Sign in with University A");
        await Expect(page.Locator("#issuers button[data-issuer='uni-b']")).ToHaveTextAsync(ko ? "University B 계정으로 로그인" : "Sign in with University B");
        await Expect(page.Locator("#token")).ToBeVisibleAsync();
        await PortalSite.ShotAsync(page, $"{(ko ? "ko" : "en")}-login-issuers");

        // Through the issuer: the first sign-in creates the person in their organisation.
        await SignInWithAsync(issuer, login, lang, page);
        await Expect(page.Locator("[data-testid=signed-in-as]")).ToContainTextAsync(login);
        await Expect(page.Locator("[data-testid=organisation]")).ToHaveTextAsync(ko ? $"소속: {org}" : $"Organisation: {org}");
        await PortalSite.ShotAsync(page, $"{(ko ? "ko" : "en")}-signed-in-with-{issuer}");
        using var admin = Admin();
        var user = await admin.GetFromJsonAsync<System.Text.Json.JsonElement>($"/api/users/{login}");
        user.GetProperty("organisation").GetString().ShouldBe(org);
        user.GetProperty("email").GetString().ShouldBe($"{login}@{(ko ? "uni-b" : "uni-a")}.ac.kr");

        // Their tokens page shows the portal session: kind, scope, expiry and last use; a new read-only token appears beside it.
        await page.ClickAsync("#nav-tokens");
        var session = page.Locator("#tokens tbody tr").First;
        await Expect(session).ToContainTextAsync(ko ? "포털 세션" : "portal session");
        await Expect(session.Locator("td.expires")).Not.ToHaveTextAsync(ko ? "없음" : "never");
        await Expect(session.Locator("td.last-used")).Not.ToHaveTextAsync("—");
        await page.SelectOptionAsync("#scope", "read-only");
        await page.FillAsync("#days", "30");
        await page.FillAsync("#label", "dashboards");
        await page.ClickAsync("#create-token");
        await Expect(page.Locator("#new-token")).ToContainTextAsync("gpuc_");
        await Expect(page.Locator("#tokens tbody tr", new() { HasTextString = "dashboards" }).Locator("td.scope")).ToHaveTextAsync(ko ? "읽기 전용" : "read-only");
        await PortalSite.ShotAsync(page, $"{(ko ? "ko" : "en")}-tokens");

        // An admin disables them: the next page throws them out, and the issuer cannot sign them in again.
        (await admin.PostAsJsonAsync($"/api/users/{login}/disable", new { jobs = "keep" })).StatusCode.ShouldBe(HttpStatusCode.OK);
        await page.GotoAsync($"{site.BaseUrl}/queue");
        await page.WaitForURLAsync(new Regex("/login"));
        await Expect(page.Locator("#session-ended")).ToContainTextAsync(ko ? "세션이 종료되었습니다" : "Your session has ended");
        await Expect(page.Locator("header.top .me form button")).ToHaveCountAsync(0);
        await context.CloseAsync();
        page = await SignInWithAsync(issuer, login, lang);
        await page.WaitForURLAsync(new Regex("/login"));
        var error = page.Locator("#signin-error");
        await Expect(error).ToHaveAttributeAsync("data-code", "refused");
        await Expect(error).ToContainTextAsync(ko ? "로그인 거부" : "Sign-in refused");
        await Expect(error).ToContainTextAsync("disabled");
        await PortalSite.ShotAsync(page, $"{(ko ? "ko" : "en")}-disabled-refused");
        await page.Context.CloseAsync();
    }

    [OidcBrowserFact]
    public Task English_SignInThroughTheIssuer_ProvisionsIntoTheOrganisation_AndADisabledPersonIsThrownOut() => SignInProvisionAndDisableAsync("en-US");

    [OidcBrowserFact]
    public Task Korean_SignInThroughTheIssuer_ProvisionsIntoTheOrganisation_AndADisabledPersonIsThrownOut() => SignInProvisionAndDisableAsync("ko-KR");

    private async Task InvitedMemberLandsInTheProjectAsync(string lang)
    {
        var ko = lang.StartsWith("ko", StringComparison.Ordinal);
        var login = Unique("ivy");
        using var pi = new HttpClient { BaseAddress = new Uri(site.BaseUrl) };
        pi.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", site.Tokens["alice"]);
        (await pi.PostAsJsonAsync("/api/projects/demo/invitations", new { email = $"{login}@uni-a.ac.kr" })).StatusCode.ShouldBe(HttpStatusCode.Created);

        var page = await SignInWithAsync("uni-a", login, lang);
        page.Url.ShouldEndWith("/projects/demo");
        await Expect(page.Locator("h1")).ToContainTextAsync("demo");
        await Expect(page.Locator("nav a[href='/projects/demo']")).ToBeVisibleAsync();
        await Expect(page.Locator("[data-testid=signed-in-as]")).ToContainTextAsync(login);
        await PortalSite.ShotAsync(page, $"{(ko ? "ko" : "en")}-invited-member-lands-in-project");
        var members = await pi.GetFromJsonAsync<System.Text.Json.JsonElement>("/api/projects/demo/members");
        members.EnumerateArray().ShouldContain(m => m.GetProperty("user").GetString() == login && m.GetProperty("role").GetString() == "member");
        await page.Context.CloseAsync();
    }

    [OidcBrowserFact]
    public Task English_AnInvitedMembersFirstSignIn_LandsInTheProject() => InvitedMemberLandsInTheProjectAsync("en-US");

    [OidcBrowserFact]
    public Task Korean_AnInvitedMembersFirstSignIn_LandsInTheProject() => InvitedMemberLandsInTheProjectAsync("ko-KR");

    // ---- Refusals over plain HTTP: what a browser would carry, changed on purpose ----------------------------------------

    private sealed class Browserless : IDisposable
    {
        public Browserless(string baseUrl)
        {
            Handler = new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false };
            Http = new HttpClient(Handler) { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(30) };
        }

        public HttpClientHandler Handler { get; }
        public HttpClient Http { get; }

        public void Dispose()
        {
            Http.Dispose();
            Handler.Dispose();
        }
    }

    /// <summary>Starts a sign-in with <paramref name="issuerId"/> (the login page's button) and signs in at the issuer; returns the portal callback URL, not yet followed.</summary>
    private async Task<Uri> StartAndSignInAtIssuerAsync(Browserless b, string issuerId, string login)
    {
        var form = await (await b.Http.GetAsync("/login")).Content.ReadAsStringAsync();
        var af = AntiForgery().Match(form).Groups[1].Value;
        using var post = await b.Http.PostAsync("/login?handler=Oidc", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["issuer"] = issuerId, ["returnUrl"] = "/", ["__RequestVerificationToken"] = af,
        }));
        post.StatusCode.ShouldBe(HttpStatusCode.Redirect, await post.Content.ReadAsStringAsync());
        var next = post.Headers.Location!;
        for (var hops = 0; hops < 20; hops++)
        {
            if (next.IsAbsoluteUri && next.AbsolutePath.StartsWith("/signin-oidc/", StringComparison.Ordinal) && next.GetLeftPart(UriPartial.Authority) == site.BaseUrl)
            {
                return next;
            }

            using var r = await b.Http.GetAsync(next);
            var html = await r.Content.ReadAsStringAsync();
            if (r.StatusCode is HttpStatusCode.OK && OidcProvider.FormAction().Match(html) is { Success: true } m)
            {
                using var login_ = await b.Http.PostAsync(new Uri(next, WebUtility.HtmlDecode(m.Groups[1].Value)),
                    new FormUrlEncodedContent(new Dictionary<string, string> { ["login"] = login, ["password"] = "pw" }));
                next = new Uri(next, login_.Headers.Location!);
                continue;
            }

            ((int)r.StatusCode).ShouldBeInRange(300, 399, $"{next}: {html}");
            next = new Uri(next, r.Headers.Location!);
        }

        throw new InvalidOperationException("the sign-in never came back to the portal");
    }

    /// <summary>Follows the portal's answer to a callback to the sign-in page and returns its error code.</summary>
    private static async Task<string?> ErrorCodeAsync(Browserless b, HttpResponseMessage callback)
    {
        callback.StatusCode.ShouldBe(HttpStatusCode.Redirect);
        callback.Headers.Location!.OriginalString.ShouldStartWith("/login");
        var page = await (await b.Http.GetAsync(callback.Headers.Location)).Content.ReadAsStringAsync();
        var m = ErrorCode().Match(page);
        return m.Success ? m.Groups[1].Value + (m.Groups[1].Value == "failed" ? " " + page[m.Index..Math.Min(page.Length, m.Index + 400)] : "") : null;
    }

    private static CookieContainer Copy(CookieContainer from)
    {
        var to = new CookieContainer();
        foreach (System.Net.Cookie c in from.GetAllCookies())
        {
            to.Add(new System.Net.Cookie(c.Name, c.Value, c.Path, c.Domain));
        }

        return to;
    }

    [OidcFact]
    public async Task AForgedState_IsRefused()
    {
        using var b = new Browserless(site.BaseUrl);
        using var r = await b.Http.GetAsync("/signin-oidc/uni-a?code=abc&state=forged-state&iss=" + Uri.EscapeDataString(OidcProvider.IssuerA));
        (await ErrorCodeAsync(b, r)).ShouldBe("state");
    }

    [OidcFact]
    public async Task AReplayedAnswer_IsRefused_WhetherItsStateIsGoneOrItsCodeWasUsed()
    {
        using var b = new Browserless(site.BaseUrl);
        var callback = await StartAndSignInAtIssuerAsync(b, "uni-a", Unique("rex"));
        var before = Copy(b.Handler.CookieContainer);
        using (var ok = await b.Http.GetAsync(callback))
        {
            ok.StatusCode.ShouldBe(HttpStatusCode.Redirect);
            ok.Headers.Location!.OriginalString.ShouldBe("/");
        }

        // The same browser again: its state cookie was spent.
        using (var again = await b.Http.GetAsync(callback))
        {
            (await ErrorCodeAsync(b, again)).ShouldBe("state");
        }

        // With the state and nonce cookies as they were: the issuer refuses the spent code.
        using var replay = new Browserless(site.BaseUrl);
        foreach (Cookie c in before.GetAllCookies())
        {
            replay.Handler.CookieContainer.Add(c);
        }

        using var third = await replay.Http.GetAsync(callback);
        (await ErrorCodeAsync(replay, third)).ShouldBe("code");
    }

    [OidcFact]
    public async Task AnAnswerWhoseIdTokenCarriesAnotherSignInsNonce_IsRefused()
    {
        // Two sign-ins: the answer to the second comes back to a browser holding the first one's nonce.
        using var first = new Browserless(site.BaseUrl);
        await StartAndSignInAtIssuerAsync(first, "uni-a", Unique("nia"));
        using var second = new Browserless(site.BaseUrl);
        var callback = await StartAndSignInAtIssuerAsync(second, "uni-a", Unique("nia"));
        using var mixed = new Browserless(site.BaseUrl);
        foreach (Cookie c in second.Handler.CookieContainer.GetAllCookies().Where(c => !c.Name.StartsWith("gpuc_oidc_nonce.", StringComparison.Ordinal)))
        {
            mixed.Handler.CookieContainer.Add(c);
        }

        var nonces = first.Handler.CookieContainer.GetAllCookies().Where(c => c.Name.StartsWith("gpuc_oidc_nonce.", StringComparison.Ordinal)).ToList();
        nonces.ShouldNotBeEmpty();
        foreach (var c in nonces)
        {
            mixed.Handler.CookieContainer.Add(c);
        }

        using var r = await mixed.Http.GetAsync(callback);
        (await ErrorCodeAsync(mixed, r)).ShouldBe("nonce");
    }

    [OidcFact]
    public async Task AnIssuerThatIsNotConfigured_IsRefusedOnTheSignInPage()
    {
        using var b = new Browserless(site.BaseUrl);
        var form = await (await b.Http.GetAsync("/login")).Content.ReadAsStringAsync();
        using var post = await b.Http.PostAsync("/login?handler=Oidc", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["issuer"] = "uni-z", ["__RequestVerificationToken"] = AntiForgery().Match(form).Groups[1].Value,
        }));
        post.StatusCode.ShouldBe(HttpStatusCode.OK);
        var page = WebUtility.HtmlDecode(await post.Content.ReadAsStringAsync());
        ErrorCode().Match(page).Groups[1].Value.ShouldBe("issuer");
        page.ShouldContain("'uni-z' is not configured");
    }

    [Fact]
    public void ValidationFailures_AreWordedByWhatFailed()
    {
        var issuer = OidcProvider.A();
        PortalSignIn.Classify(new SecurityTokenInvalidAudienceException("IDX10214"), issuer, "gpuc-portal").Code.ShouldBe("audience");
        PortalSignIn.Classify(new SecurityTokenInvalidSignatureException("IDX10511"), issuer, "gpuc-portal").Code.ShouldBe("signature");
        PortalSignIn.Classify(new SecurityTokenSignatureKeyNotFoundException("IDX10503"), issuer, "gpuc-portal").Code.ShouldBe("signature");
        PortalSignIn.Classify(new SecurityTokenExpiredException("IDX10223") { Expires = DateTime.UtcNow }, issuer, "gpuc-portal").Code.ShouldBe("expired");
        PortalSignIn.Classify(new SecurityTokenInvalidIssuerException("IDX10205"), issuer, "gpuc-portal").Code.ShouldBe("issuer");
        PortalSignIn.Classify(new InvalidOperationException("x", new OpenIdConnectProtocolInvalidNonceException("IDX21323")), issuer, "gpuc-portal").Code.ShouldBe("nonce");
        PortalSignIn.Classify(new Microsoft.AspNetCore.Authentication.AuthenticationFailureException("Correlation failed."), issuer, "gpuc-portal").Code.ShouldBe("state");
        var (code, detail) = PortalSignIn.Classify(new SecurityTokenInvalidAudienceException("IDX10214"), issuer, "gpuc-portal");
        detail.ShouldContain("wrong audience");
        code.ShouldBe("audience");
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex AntiForgery();

    [GeneratedRegex("id=\"signin-error\" data-code=\"([^\"]+)\"")]
    private static partial Regex ErrorCode();
}
