using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Server.Data;
using GpuCommons.Server.Security;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Tests.SignIn;

/// <summary>
/// gpuc login's exchange of an ID token (device authorization grant, real issuers of ci/oidc) for an expiring token:
/// first-sign-in onboarding, organisations, invitations, refusals, disable, scopes and the audit trail.
/// </summary>
public sealed class SignInTests : IAsyncLifetime
{
    private ServerHarness _s = null!;

    public async Task InitializeAsync()
    {
        _s = await ServerHarness.StartAsync(configure: o =>
        {
            o.SignIn.Issuers = [OidcProvider.A(), OidcProvider.B()];
            o.SignIn.ClockSkew = TimeSpan.Zero;
        });
        var admin = _s.Client("admin");
        (await admin.PostAsJsonAsync("/api/organisations", new { name = "University A", type = "university" })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await admin.PostAsJsonAsync("/api/organisations", new { name = "University B", type = "university" })).StatusCode.ShouldBe(HttpStatusCode.Created);
        (await admin.PutAsJsonAsync("/api/email-domains/uni-b.ac.kr", new { organisation = "University B" })).StatusCode.ShouldBe(HttpStatusCode.OK);
    }

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private static string Unique(string name) => name + Guid.NewGuid().ToString("N")[..6];

    private async Task<HttpResponseMessage> ExchangeAsync(string idToken, string? scope = null) =>
        await _s.Client(null).PostAsJsonAsync("/api/auth/oidc", scope is null ? new { idToken } : (object)new { idToken, scope });

    private async Task<JsonElement> SignInAsync(string issuer, string login, string? scope = null)
    {
        var r = await ExchangeAsync(await OidcProvider.DeviceIdTokenAsync(issuer, login), scope);
        var body = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement;
    }

    private HttpClient As(string token)
    {
        var c = _s.Client(null);
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return c;
    }

    private async Task<List<EventRow>> EventsAsync(string subject)
    {
        await using var db = _s.Factory.Create();
        return await db.Events.AsNoTracking().Where(e => e.Subject == subject).OrderBy(e => e.Id).ToListAsync();
    }

    private static async Task<string> ProblemAsync(HttpResponseMessage r) =>
        JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("detail").GetString()!;

    [OidcFact]
    public async Task FirstSignIn_CreatesThePersonFromClaims_InTheAffiliationClaimsOrganisation_WithAnExpiringCliToken()
    {
        var login = Unique("ada");
        var r = await SignInAsync(OidcProvider.IssuerA, login);
        r.GetProperty("user").GetString().ShouldBe(login);
        r.GetProperty("created").GetBoolean().ShouldBeTrue();
        r.GetProperty("organisation").GetString().ShouldBe("University A");
        var expires = r.GetProperty("expires").GetDateTimeOffset();
        (expires - DateTimeOffset.UtcNow).ShouldBeInRange(TimeSpan.FromDays(29.9), TimeSpan.FromDays(30.1));

        var me = await As(r.GetProperty("token").GetString()!).GetFromJsonAsync<JsonElement>("/api/me");
        me.GetProperty("name").GetString().ShouldBe(login);
        me.GetProperty("email").GetString().ShouldBe($"{login}@uni-a.ac.kr");
        me.GetProperty("organisation").GetString().ShouldBe("University A");
        me.GetProperty("role").GetString().ShouldBe("user");
        me.GetProperty("tokenExpires").GetDateTimeOffset().ShouldBe(expires, TimeSpan.FromSeconds(1));

        // The token is listed with its kind, scope, expiry and last use; never the token itself.
        var tokens = await As(r.GetProperty("token").GetString()!).GetFromJsonAsync<JsonElement>($"/api/users/{login}/tokens");
        var t = tokens.EnumerateArray().ShouldHaveSingleItem();
        t.GetProperty("kind").GetString().ShouldBe("cli");
        t.GetProperty("scope").GetString().ShouldBe("admin");
        t.GetProperty("expires").GetDateTimeOffset().ShouldBe(expires, TimeSpan.FromSeconds(1));
        t.TryGetProperty("lastUsed", out var used).ShouldBeTrue();
        used.GetDateTimeOffset().ShouldBeGreaterThan(DateTimeOffset.UtcNow.AddMinutes(-1));
        t.GetRawText().ShouldNotContain("gpuc_");

        // A second sign-in finds the same person: no new account.
        var again = await SignInAsync(OidcProvider.IssuerA, login);
        again.GetProperty("user").GetString().ShouldBe(login);
        again.GetProperty("created").GetBoolean().ShouldBeFalse();

        var kinds = (await EventsAsync($"user/{login}")).Select(e => e.Kind).ToList();
        kinds.ShouldBe(["user.created", "user.signed-in", "token.created", "user.signed-in", "token.created"]);
    }

    [OidcFact]
    public async Task WithoutAnAffiliationClaim_TheEmailDomainTablePlacesThePerson()
    {
        var r = await SignInAsync(OidcProvider.IssuerB, Unique("bea"));
        r.GetProperty("organisation").GetString().ShouldBe("University B");
        // A domain nobody placed: no organisation, and the person still signs in.
        var other = await SignInAsync(OidcProvider.IssuerB, Unique("cy") + "@elsewhere.example");
        other.TryGetProperty("organisation", out _).ShouldBeFalse();
    }

    [OidcFact]
    public async Task AnInvitationByEmail_IsAcceptedAtFirstSignIn_IntoTheProject()
    {
        var login = Unique("ivy");
        var invite = await _s.Client("alice").PostAsJsonAsync("/api/projects/demo/invitations", new { email = $"{login.ToUpperInvariant()}@uni-a.ac.kr" });
        invite.StatusCode.ShouldBe(HttpStatusCode.Created, await invite.Content.ReadAsStringAsync());
        // bob is a member, not the PI: he cannot invite.
        (await _s.Client("bob").PostAsJsonAsync("/api/projects/demo/invitations", new { email = "x@uni-a.ac.kr" })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);

        var r = await SignInAsync(OidcProvider.IssuerA, login);
        r.GetProperty("projects").EnumerateArray().Select(p => p.GetString()).ShouldBe(["demo"]);
        var me = await As(r.GetProperty("token").GetString()!).GetFromJsonAsync<JsonElement>("/api/me");
        me.GetProperty("projects").GetProperty("demo").GetString().ShouldBe("member");
        var invitations = await _s.Client("alice").GetFromJsonAsync<JsonElement>("/api/projects/demo/invitations");
        invitations.EnumerateArray().Single(i => i.GetProperty("email").GetString() == $"{login}@uni-a.ac.kr").GetProperty("acceptedBy").GetString().ShouldBe(login);
        (await EventsAsync("project/demo")).Select(e => e.Kind).ShouldContain("invitation.accepted");
    }

    [OidcFact]
    public async Task AnIdTokenForAnotherApplication_IsRefused_AsTheWrongAudience()
    {
        var r = await ExchangeAsync(await OidcProvider.DeviceIdTokenAsync(OidcProvider.IssuerA, Unique("eve"), "other-app"));
        r.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await ProblemAsync(r)).ShouldContain("wrong audience");
    }

    [OidcFact]
    public async Task AnIdTokenWithABadSignature_IsRefused()
    {
        var jwt = await OidcProvider.DeviceIdTokenAsync(OidcProvider.IssuerA, Unique("eve"));
        var parts = jwt.Split('.');
        var sig = parts[2].ToCharArray();
        sig[10] = sig[10] == 'A' ? 'B' : 'A';
        var r = await ExchangeAsync($"{parts[0]}.{parts[1]}.{new string(sig)}");
        r.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await ProblemAsync(r)).ShouldContain("bad signature");

        // Claims changed under a valid signature: refused too.
        var forged = parts[1].Replace(parts[1][..8], parts[1][..7] + (parts[1][7] == 'a' ? 'b' : 'a'), StringComparison.Ordinal);
        var r2 = await ExchangeAsync($"{parts[0]}.{forged}.{parts[2]}");
        r2.StatusCode.ShouldBeOneOf(HttpStatusCode.Unauthorized, HttpStatusCode.BadRequest);
        (await EventsAsync("user/eve")).ShouldBeEmpty();
    }

    [OidcFact]
    public async Task AnExpiredIdToken_IsRefused()
    {
        var jwt = await OidcProvider.DeviceIdTokenAsync(OidcProvider.IssuerA, Unique("old"), "gpuc-cli-short");
        var exp = DateTimeOffset.FromUnixTimeSeconds(OidcProvider.Payload(jwt).GetProperty("exp").GetInt64());
        var wait = exp - DateTimeOffset.UtcNow + TimeSpan.FromSeconds(1.5);
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait);
        }

        // Issued to gpuc-cli-short: the server of this test accepts it as its CLI client, and then only its expiry fails.
        await using var short_ = await ServerHarness.StartAsync(configure: o =>
        {
            var a = OidcProvider.A();
            a.CliClientId = "gpuc-cli-short";
            o.SignIn.Issuers = [a];
            o.SignIn.ClockSkew = TimeSpan.Zero;
        });
        var r = await short_.Client(null).PostAsJsonAsync("/api/auth/oidc", new { idToken = jwt });
        r.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await ProblemAsync(r)).ShouldContain("expired");
    }

    [OidcFact]
    public async Task AnIdTokenFromAnIssuerNotConfigured_IsRefused()
    {
        await using var onlyA = await ServerHarness.StartAsync(configure: o => o.SignIn.Issuers = [OidcProvider.A()]);
        var r = await onlyA.Client(null).PostAsJsonAsync("/api/auth/oidc", new { idToken = await OidcProvider.DeviceIdTokenAsync(OidcProvider.IssuerB, Unique("bob")) });
        r.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await ProblemAsync(r)).ShouldContain($"'{OidcProvider.IssuerB}' is not configured");
    }

    [OidcFact]
    public async Task AnIdTokenFromIssuerA_CannotSignInAPersonBoundToIssuerB()
    {
        // bea is bound to issuer B (address bea…@uni-b.ac.kr, subject bea…).
        var bea = Unique("bea");
        var atB = await SignInAsync(OidcProvider.IssuerB, bea);
        atB.GetProperty("user").GetString().ShouldBe(bea);

        // Issuer A vouches for the same address: refused, bea stays bound to B.
        var sameEmail = await ExchangeAsync(await OidcProvider.DeviceIdTokenAsync(OidcProvider.IssuerA, $"{bea}@uni-b.ac.kr"));
        sameEmail.StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await ProblemAsync(sameEmail)).ShouldContain("signs in with University B");

        // Issuer A's subject of the same name (sub=bea…, another address) is another person.
        var sameSub = await SignInAsync(OidcProvider.IssuerA, bea);
        sameSub.GetProperty("user").GetString().ShouldNotBe(bea);
        sameSub.GetProperty("created").GetBoolean().ShouldBeTrue();
        var me = await As(sameSub.GetProperty("token").GetString()!).GetFromJsonAsync<JsonElement>("/api/me");
        me.GetProperty("email").GetString().ShouldBe($"{bea}@uni-a.ac.kr");

        await using var db = _s.Factory.Create();
        var identities = await db.ExternalIdentities.AsNoTracking().Where(x => x.User == bea).ToListAsync();
        identities.ShouldHaveSingleItem().Issuer.ShouldBe(OidcProvider.IssuerB);
        (await EventsAsync($"user/{bea}")).Select(e => e.Kind).ShouldContain("user.sign-in-refused");
    }

    [OidcFact]
    public async Task DisablingAPerson_RevokesEveryTokenAtOnce_AndRefusesTheirSignIn()
    {
        var login = Unique("dora");
        var cli = (await SignInAsync(OidcProvider.IssuerA, login)).GetProperty("token").GetString()!;
        var pat = await (await As(cli).PostAsJsonAsync($"/api/users/{login}/tokens", new { scope = "read-only", expiresInDays = 7, label = "notebook" }))
            .Content.ReadFromJsonAsync<JsonElement>();
        var api = pat.GetProperty("token").GetString()!;
        (await As(api).GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.OK);

        var d = await _s.Client("admin").PostAsJsonAsync($"/api/users/{login}/disable", new { reason = "left the university" });
        d.StatusCode.ShouldBe(HttpStatusCode.OK, await d.Content.ReadAsStringAsync());
        (await d.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("tokensRevoked").GetInt32().ShouldBe(2);
        (await As(cli).GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await As(api).GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);

        var again = await ExchangeAsync(await OidcProvider.DeviceIdTokenAsync(OidcProvider.IssuerA, login));
        again.StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await ProblemAsync(again)).ShouldContain("disabled");

        (await _s.Client("admin").PostAsync($"/api/users/{login}/enable", null)).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await SignInAsync(OidcProvider.IssuerA, login)).GetProperty("user").GetString().ShouldBe(login);

        var kinds = (await EventsAsync($"user/{login}")).Select(e => e.Kind).ToList();
        kinds.ShouldContain("user.disabled");
        kinds.ShouldContain("user.sign-in-refused");
        kinds.ShouldContain("user.enabled");
        kinds.Count(k => k == "token.revoked").ShouldBe(1);
    }

    [OidcFact]
    public async Task LoggingOut_RevokesTheCliToken_AndIsAnEvent()
    {
        var login = Unique("lou");
        var token = (await SignInAsync(OidcProvider.IssuerA, login, "submit")).GetProperty("token").GetString()!;
        (await As(token).DeleteAsync("/api/tokens/current")).StatusCode.ShouldBe(HttpStatusCode.NoContent);
        (await As(token).GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        var revoked = (await EventsAsync($"user/{login}")).Last();
        revoked.Kind.ShouldBe("token.revoked");
        revoked.Detail!.ShouldContain("cli token");
    }

    [Fact]
    public async Task TheIssuersAreListedWithoutAToken_AndWithoutSecrets()
    {
        var r = await _s.Client(null).GetAsync("/api/auth/issuers");
        r.StatusCode.ShouldBe(HttpStatusCode.OK);
        var text = await r.Content.ReadAsStringAsync();
        text.ShouldNotContain(OidcProvider.PortalSecret);
        var ids = JsonDocument.Parse(text).RootElement.EnumerateArray().Select(i => i.GetProperty("id").GetString()).ToList();
        ids.ShouldBe(["uni-a", "uni-b"]);
    }

    [Fact]
    public async Task TheExchange_RefusesMissingOrMalformedInput_NamingTheField()
    {
        var c = _s.Client(null);
        var empty = await c.PostAsJsonAsync("/api/auth/oidc", new { });
        empty.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(empty)).ShouldContain("idToken");
        var junk = await c.PostAsJsonAsync("/api/auth/oidc", new { idToken = "not-a-jwt" });
        junk.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(junk)).ShouldContain("idToken");
        var scope = await c.PostAsJsonAsync("/api/auth/oidc", new { idToken = "a.b.c", scope = "root" });
        scope.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(scope)).ShouldContain("scope");
    }

    [Fact]
    public async Task AReadOnlyToken_Reads_AndChangesNothing()
    {
        var r = await _s.Client("bob").PostAsJsonAsync("/api/users/bob/tokens", new { scope = "read-only", expiresInDays = 30, label = "dashboards" });
        r.StatusCode.ShouldBe(HttpStatusCode.Created);
        var ro = As((await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!);
        (await ro.GetAsync("/api/jobs")).StatusCode.ShouldBe(HttpStatusCode.OK);
        var submit = await ro.PostAsJsonAsync("/api/jobs", ApiTests.Job());
        submit.StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await ProblemAsync(submit)).ShouldContain("read-only");
        // It cannot make itself a stronger token either; but it can sign itself out.
        (await ro.PostAsJsonAsync("/api/users/bob/tokens", new { scope = "admin" })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await ro.DeleteAsync("/api/tokens/current")).StatusCode.ShouldBe(HttpStatusCode.NoContent);
    }

    [Fact]
    public async Task ASubmitTokenOfAnAdmin_ActsAsAMemberOnly_AndCannotIssueAnAdminToken()
    {
        var r = await _s.Client("admin").PostAsJsonAsync("/api/users/admin/tokens", new { scope = "submit" });
        var submit = As((await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!);
        (await submit.PostAsJsonAsync("/api/users", new { name = "mallory" })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        var up = await submit.PostAsJsonAsync("/api/users/admin/tokens", new { scope = "admin" });
        up.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(up)).ShouldContain("scope");
        (await _s.Client("admin").PostAsJsonAsync("/api/users/admin/tokens", new { scope = "everything" })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await _s.Client("admin").PostAsJsonAsync("/api/users/admin/tokens", new { expiresInDays = 0 })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task AnExpiredToken_IsRefused()
    {
        await using (var db = _s.Factory.Create())
        {
            db.Tokens.Add(new TokenRow { Hash = TokenService.Hash("gpuc_expired-test-token"), User = "bob", Created = DateTimeOffset.UtcNow.AddDays(-2), Expires = DateTimeOffset.UtcNow.AddSeconds(-1) });
            await db.SaveChangesAsync();
        }

        var r = await As("gpuc_expired-test-token").GetAsync("/api/me");
        r.StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        (await ProblemAsync(r)).ShouldContain("expired");
    }

    [Fact]
    public async Task DisablingWithJobsCancel_StopsTheirJobs_AndKeep_LeavesThemRunning()
    {
        var bobJob = await (await _s.Client("bob").PostAsJsonAsync("/api/jobs", ApiTests.Job())).Content.ReadFromJsonAsync<JsonElement>();
        var aliceJob = await (await _s.Client("alice").PostAsJsonAsync("/api/jobs", ApiTests.Job())).Content.ReadFromJsonAsync<JsonElement>();
        var bobId = bobJob.GetProperty("id").GetInt64();
        var aliceId = aliceJob.GetProperty("id").GetInt64();
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(bobId)).GetProperty("state").GetString() == "running"
            && (await _s.JobAsync(aliceId)).GetProperty("state").GetString() == "running", "both jobs running");

        var bad = await _s.Client("admin").PostAsJsonAsync("/api/users/bob/disable", new { jobs = "pause" });
        bad.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(bad)).ShouldContain("jobs");
        (await _s.Client("bob").GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.OK);

        var cancel = await (await _s.Client("admin").PostAsJsonAsync("/api/users/bob/disable", new { jobs = "cancel" })).Content.ReadFromJsonAsync<JsonElement>();
        cancel.GetProperty("jobsCancelled").GetInt32().ShouldBe(1);
        (await _s.Client("bob").GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        await ServerHarness.EventuallyAsync(async () => (await _s.JobAsync(bobId)).GetProperty("state").GetString() == "cancelled", "bob's job cancelled");

        (await _s.Client("admin").PostAsJsonAsync("/api/users/alice/disable", new { jobs = "keep" })).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await _s.JobAsync(aliceId)).GetProperty("state").GetString().ShouldBe("running");
        (await _s.Client("bob").GetAsync("/api/users/admin")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        // Only admins disable; nobody disables themselves.
        (await _s.Client("carol").PostAsJsonAsync("/api/users/sam/disable", new { })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        (await _s.Client("admin").PostAsJsonAsync("/api/users/admin/disable", new { })).StatusCode.ShouldBe(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task EmailDomainsAndInvitations_RefuseBadInput_NamingTheField()
    {
        var admin = _s.Client("admin");
        var notDomain = await admin.PutAsJsonAsync("/api/email-domains/not a domain", new { organisation = "University A" });
        notDomain.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(notDomain)).ShouldContain("domain");
        var noOrg = await admin.PutAsJsonAsync("/api/email-domains/uni-c.ac.kr", new { organisation = "Nowhere" });
        noOrg.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(noOrg)).ShouldContain("organisation");
        (await _s.Client("bob").PutAsJsonAsync("/api/email-domains/uni-c.ac.kr", new { organisation = "University A" })).StatusCode.ShouldBe(HttpStatusCode.Forbidden);
        var badEmail = await _s.Client("alice").PostAsJsonAsync("/api/projects/demo/invitations", new { email = "no-at-sign" });
        badEmail.StatusCode.ShouldBe(HttpStatusCode.BadRequest);
        (await ProblemAsync(badEmail)).ShouldContain("email");
        // Another tenant's project is not there for sam.
        (await _s.Client("sam").PostAsJsonAsync("/api/projects/demo/invitations", new { email = "x@uni-a.ac.kr" })).StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }

    [Fact]
    public void IssuerOptions_ParseTheServeOption_AndRefuseBadOnes()
    {
        var o = OidcIssuerOptions.Parse("id=uni-a,url=https://idp.uni-a.ac.kr,client-id=portal,client-secret=s3,cli-client-id=cli,name=University A,affiliation-claim=org,scopes=openid email org");
        o.Id.ShouldBe("uni-a");
        o.Name.ShouldBe("University A");
        o.Scopes.ShouldBe(["openid", "email", "org"]);
        o.CallbackPath.ShouldBe("/signin-oidc/uni-a");
        o.Validate();
        Should.Throw<ArgumentException>(() => OidcIssuerOptions.Parse("url=https://x")).Message.ShouldContain("id=");
        Should.Throw<ArgumentException>(() => OidcIssuerOptions.Parse("id=a,url=https://x,colour=red")).Message.ShouldContain("colour");
        Should.Throw<ArgumentException>(() => OidcIssuerOptions.Parse("id=a,url=http://idp.example.org,cli-client-id=c").Validate()).Message.ShouldContain("https");
        Should.Throw<ArgumentException>(() => OidcIssuerOptions.Parse("id=a,url=https://idp.example.org,client-id=c").Validate()).Message.ShouldContain("secret");
        Should.Throw<ArgumentException>(() => OidcIssuerOptions.Parse("id=A B,url=https://idp.example.org,cli-client-id=c").Validate()).Message.ShouldContain("id");
        var twice = new ServerOptions();
        twice.SignIn.Issuers = [OidcIssuerOptions.Parse("id=a,url=https://x.example,cli-client-id=c"), OidcIssuerOptions.Parse("id=a,url=https://y.example,cli-client-id=c")];
        Should.Throw<ArgumentException>(twice.Validate).Message.ShouldContain("twice");
    }
}
