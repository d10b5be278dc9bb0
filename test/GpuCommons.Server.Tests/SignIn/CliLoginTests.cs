using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace GpuCommons.Server.Tests.SignIn;

/// <summary>
/// <c>gpuc login</c> and <c>gpuc logout</c> as processes against <c>gpuc serve --oidc-issuer …</c> and the real test
/// issuers: the device authorization grant, the saved token's file mode, its use, and its revocation.
/// </summary>
public sealed partial class CliLoginTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gpuc-login-").FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, true);
        }
        catch (IOException)
        {
        }
    }

    private static ProcessStartInfo Gpuc(string config, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "gpuc.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["GPUC_CONFIG"] = config;
        psi.Environment.Remove("GPUC_TOKEN");
        psi.Environment.Remove("GPUC_URL");
        return psi;
    }

    private static (int Code, string Out) Run(ProcessStartInfo psi)
    {
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit(120_000).ShouldBeTrue("gpuc did not finish in 2 minutes");
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    [Fact]
    public void LoginHelp_AndServeHelp_NameTheSignInOptions()
    {
        var config = Path.Combine(_dir, "config.json");
        var (code, login) = Run(Gpuc(config, "login", "--help"));
        code.ShouldBe(0, login);
        login.ShouldContain("--issuer");
        login.ShouldContain("device authorization");
        var (code2, serve) = Run(Gpuc(config, "serve", "--help"));
        code2.ShouldBe(0, serve);
        serve.ShouldContain("--oidc-issuer");
        serve.ShouldContain("OpenID Connect");
        Run(Gpuc(config, "logout", "--help")).Code.ShouldBe(0);
    }

    [OidcFact]
    public async Task Login_RunsTheDeviceFlow_SavesAnExpiringTokenReadableByTheUserOnly_AndLogoutRevokesIt()
    {
        var issuer = $"id=uni-a,url={OidcProvider.IssuerA},client-id=gpuc-portal,client-secret=gpuc-portal-secret,cli-client-id=gpuc-cli,name=University A,affiliation-claim=org,scopes=openid email profile org";
        await using var server = await ServeProcess.StartAsync(Path.Combine(_dir, "data"), null, "--accounts", "single-user", "--oidc-issuer", issuer, "--oidc-cli-token-days", "7");
        server.Output.ShouldContain("sign-in with University A");
        var config = Path.Combine(_dir, "home", ".config", "gpuc", "config.json");
        var login = "cli" + Guid.NewGuid().ToString("N")[..6];

        using var p = Process.Start(Gpuc(config, "login", "--server", server.Url, "--scope", "submit"))!;
        var output = new StringBuilder();
        var stderr = p.StandardError.ReadToEndAsync();
        string? url = null;
        while (await p.StandardOutput.ReadLineAsync() is { } line)
        {
            output.AppendLine(line);
            if (OpenLine().Match(line) is { Success: true } m)
            {
                url = m.Groups[1].Value;
                break;
            }
        }

        if (url is null)
        {
            p.WaitForExit(30_000);
            url.ShouldNotBeNull($"gpuc login printed no link: {output}{await stderr}");
        }

        url.ShouldStartWith(OidcProvider.IssuerA + "/device");
        // The person opens the link in a browser and signs in at their institution.
        await OidcProvider.ApproveAsync(url, login);
        output.Append(await p.StandardOutput.ReadToEndAsync());
        (await Task.Run(() => p.WaitForExit(60_000))).ShouldBeTrue("gpuc login did not finish after the sign-in");
        p.ExitCode.ShouldBe(0, output + await stderr);
        output.ToString().ShouldContain($"signed in as {login} (new account), scope submit");

        // Saved for the user only, with its expiry.
        if (!OperatingSystem.IsWindows())
        {
            File.GetUnixFileMode(config).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.GetUnixFileMode(Path.GetDirectoryName(config)!).ShouldBe(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var saved = JsonDocument.Parse(await File.ReadAllTextAsync(config)).RootElement;
        saved.GetProperty("server").GetString().ShouldBe(server.Url);
        var token = saved.GetProperty("token").GetString()!;
        (saved.GetProperty("expires").GetDateTimeOffset() - DateTimeOffset.UtcNow).ShouldBeInRange(TimeSpan.FromDays(6.9), TimeSpan.FromDays(7.1));

        // The client uses it.
        var (code, whoami) = Run(Gpuc(config, "whoami"));
        code.ShouldBe(0, whoami);
        whoami.ShouldContain($"user:      {login} (user)");
        var (code2, list) = Run(Gpuc(config, "tokens", "list"));
        code2.ShouldBe(0, list);
        list.ShouldContain("cli");
        list.ShouldContain("submit");

        // Logout revokes it on the server and forgets it here.
        var (code3, logout) = Run(Gpuc(config, "logout"));
        code3.ShouldBe(0, logout);
        logout.ShouldContain("token revoked");
        JsonDocument.Parse(await File.ReadAllTextAsync(config)).RootElement.TryGetProperty("token", out _).ShouldBeFalse();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        (await http.GetAsync("/api/me")).StatusCode.ShouldBe(HttpStatusCode.Unauthorized);
        var (code4, after) = Run(Gpuc(config, "whoami"));
        code4.ShouldBe(2);
        after.ShouldContain("gpuc login");
    }

    [OidcFact]
    public async Task Login_WithSeveralIssuers_AsksWhichOne_AndRefusesAnUnknownOne()
    {
        var a = $"id=uni-a,url={OidcProvider.IssuerA},cli-client-id=gpuc-cli,name=University A";
        var b = $"id=uni-b,url={OidcProvider.IssuerB},cli-client-id=gpuc-cli,name=University B";
        await using var server = await ServeProcess.StartAsync(Path.Combine(_dir, "data2"), null, "--accounts", "single-user", "--oidc-issuer", a, "--oidc-issuer", b);
        var config = Path.Combine(_dir, "c2.json");
        var (code, text) = Run(Gpuc(config, "login", "--server", server.Url));
        code.ShouldBe(2);
        text.ShouldContain("--issuer uni-a (University A) | uni-b (University B)");
        var (code2, text2) = Run(Gpuc(config, "login", "--server", server.Url, "--issuer", "uni-z"));
        code2.ShouldBe(2);
        text2.ShouldContain("'uni-z' is not an identity provider");
    }

    [GeneratedRegex(@"open: (\S+)")]
    private static partial Regex OpenLine();
}
