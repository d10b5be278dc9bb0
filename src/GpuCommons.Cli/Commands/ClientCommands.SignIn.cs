using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using GpuCommons.Contracts;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc login</c> (the OAuth device authorization grant with one of the server's OpenID Connect issuers), <c>gpuc
/// logout</c> and <c>gpuc tokens</c>: docs/sign-in.md.
/// </summary>
internal static partial class ClientCommands
{
    private static Command Login()
    {
        var server = new Option<string?>("--server") { Description = "Server URL (env GPUC_URL, or the server of ~/.config/gpuc/config.json)" };
        var issuer = new Option<string?>("--issuer") { Description = "Which identity provider (its id on the server; needed when there are several: gpuc login lists them)" };
        var scope = new Option<string>("--scope") { Description = "What the token may do: read-only, submit, or admin (everything your role allows)", DefaultValueFactory = _ => "admin" };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON (the token is never printed)" };
        var c = new Command("login", "Sign in with your institution (OAuth device authorization grant): open the link shown, sign in there, and the token is saved to ~/.config/gpuc/config.json (mode 0600) until it expires")
        {
            server, issuer, scope, json,
        };
        c.SetAction(async (parse, ct) =>
        {
            var path = Api.ConfigPath();
            var cfg = Api.ReadConfig(path);
            var url = parse.GetValue(server) ?? Environment.GetEnvironmentVariable("GPUC_URL") ?? cfg?.Server
                ?? throw new CliException("no server: give --server or set GPUC_URL", CliRunner.Usage);
            var wanted = parse.GetValue(scope)!;
            if (wanted is not ("read-only" or "submit" or "admin"))
            {
                throw new CliException($"--scope must be read-only, submit or admin, got '{wanted}'", CliRunner.Usage);
            }

            using var api = Api.Anonymous(url);
            var issuers = Read(await api.SendAsync(HttpMethod.Get, "/api/auth/issuers", null, ct), ContractsJson.Default.ListIssuerDto)
                .Where(i => i?.CliClientId is not null).Select(i => i!).ToList();
            if (issuers.Count == 0)
            {
                throw new CliException($"{url} has no identity provider set up for gpuc login: ask its administrators for a token (gpuc --token, GPUC_TOKEN)", CliRunner.Usage);
            }

            var id = parse.GetValue(issuer);
            var chosen = id is null
                ? issuers.Count == 1 ? issuers[0] : throw new CliException(
                    $"this server has several identity providers: give --issuer {string.Join(" | ", issuers.Select(i => $"{S(i.Id)} ({S(i.Name)})"))}", CliRunner.Usage)
                : issuers.FirstOrDefault(i => S(i.Id) == id) ?? throw new CliException(
                    $"--issuer: '{id}' is not an identity provider of this server for gpuc login (it has: {string.Join(", ", issuers.Select(i => S(i.Id)))})", CliRunner.Usage);

            var idToken = await DeviceFlowAsync(chosen, ct);
            var request = new OidcTokenRequest { IdToken = idToken, Scope = wanted, Label = $"gpuc login on {Environment.MachineName}" };
            var answer = Read(await api.SendAsync(HttpMethod.Post, "/api/auth/oidc", Body(request, ContractsJson.Default.OidcTokenRequest), ct), ContractsJson.Default.SignInDto);
            if (string.IsNullOrEmpty(answer.Token))
            {
                throw new CliException("the server's sign-in answer has no token", CliRunner.Failure);
            }

            var saved = cfg ?? new CliConfig();
            saved.Server = url;
            saved.Token = answer.Token;
            saved.Expires = answer.Expires;
            saved.User = answer.User;
            saved.Issuer = chosen.Id;
            WritePrivate(path, JsonSerializer.Serialize(saved, CliJson.Default.CliConfig));
            var user = S(answer.User);
            var projects = (answer.Projects ?? []).Select(S).ToList();
            if (parse.GetValue(json))
            {
                Print(JsonSerializer.SerializeToNode(new LoginSummary(user, answer.Expires, wanted, answer.Created, answer.Organisation, projects, path), CliJson.Default.LoginSummary));
                return 0;
            }

            Console.WriteLine($"signed in as {Display.Safe(user)}{(answer.Created ? " (new account)" : "")}"
                + (answer.Organisation is { } org ? $", {Display.Safe(S(org))}" : "") + $", scope {wanted}, until {Time(answer.Expires)}Z");
            if (projects.Count > 0)
            {
                Console.WriteLine($"joined: {Display.Safe(string.Join(", ", projects))} (invitations)");
            }

            Console.WriteLine($"token saved to {path} (readable by you only)");
            return 0;
        });
        return c;
    }

    /// <summary>RFC 8628 with the issuer's public CLI client: shows the link and code, polls until the person signed in, returns the ID token.</summary>
    private static async Task<string> DeviceFlowAsync(IssuerDto issuer, CancellationToken ct)
    {
        var authority = S(issuer.Issuer).TrimEnd('/');
        var clientId = S(issuer.CliClientId);
        var scopes = string.Join(' ', issuer.Scopes is { } listed ? listed.Select(S) : ["openid", "email", "profile"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        OidcDiscovery? discovery;
        try
        {
            discovery = JsonSerializer.Deserialize(await http.GetStringAsync(authority + "/.well-known/openid-configuration", ct), CliJson.Default.OidcDiscovery);
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw new CliException($"the identity provider {S(issuer.Name)} ({authority}) does not answer: {e.Message}", CliRunner.Unavailable);
        }

        var deviceEndpoint = S(discovery?.DeviceAuthorizationEndpoint);
        var tokenEndpoint = S(discovery?.TokenEndpoint);
        if (deviceEndpoint.Length == 0)
        {
            throw new CliException($"the identity provider {S(issuer.Name)} does not offer the device authorization grant", CliRunner.Unavailable);
        }

        using var start = await http.PostAsync(deviceEndpoint, new FormUrlEncodedContent(new Dictionary<string, string> { { "client_id", clientId }, { "scope", scopes } }), ct);
        var device = ReadIdp(await start.Content.ReadAsStringAsync(ct), CliJson.Default.DeviceAuthorization);
        if (!start.IsSuccessStatusCode)
        {
            throw new CliException($"the identity provider refused to start the sign-in: {S(device?.Error)} {S(device?.ErrorDescription)}", CliRunner.Denied);
        }

        var interval = TimeSpan.FromSeconds(device?.Interval ?? 5);
        var until = TimeProvider.System.GetUtcNow().AddSeconds(device?.ExpiresIn ?? 600);
        Console.WriteLine($"To sign in with {Display.Safe(S(issuer.Name))}, open: {S(device?.VerificationUriComplete ?? device?.VerificationUri)}");
        Console.WriteLine($"and check that it shows the code: {S(device?.UserCode)}");
        Console.WriteLine("waiting for you to sign in there …");
        Console.Out.Flush();
        while (TimeProvider.System.GetUtcNow() < until)
        {
            await Task.Delay(interval, ct);
            using var poll = await http.PostAsync(tokenEndpoint, new FormUrlEncodedContent(new Dictionary<string, string>
            {
                { "grant_type", "urn:ietf:params:oauth:grant-type:device_code" },
                { "device_code", S(device?.DeviceCode) },
                { "client_id", clientId },
            }), ct);
            var body = ReadIdp(await poll.Content.ReadAsStringAsync(ct), CliJson.Default.OidcTokenAnswer);
            if (poll.IsSuccessStatusCode)
            {
                return S(body?.IdToken) is { Length: > 0 } idToken
                    ? idToken
                    : throw new CliException("the identity provider answered without an ID token (is the openid scope allowed for this client?)", CliRunner.Failure);
            }

            switch (S(body?.Error))
            {
                case "authorization_pending":
                    continue;
                case "slow_down":
                    interval += TimeSpan.FromSeconds(5);
                    continue;
                case "access_denied":
                    throw new CliException("the sign-in was refused at the identity provider", CliRunner.Denied);
                case "expired_token":
                    throw new CliException("the code expired before you signed in: run gpuc login again", CliRunner.Denied);
                default:
                    throw new CliException($"the identity provider refused: {S(body?.Error)} {S(body?.ErrorDescription)}", CliRunner.Denied);
            }
        }

        throw new CliException("the code expired before you signed in: run gpuc login again", CliRunner.Denied);
    }

    /// <summary>An identity provider's JSON answer; a clear error when it is not JSON of that shape.</summary>
    private static T? ReadIdp<T>(string text, JsonTypeInfo<T> type)
    {
        try
        {
            return JsonSerializer.Deserialize(text, type);
        }
        catch (JsonException e)
        {
            throw new CliException($"the identity provider's answer is not what OAuth's device flow sends: {e.Message}", CliRunner.Unavailable);
        }
    }

    private static Command Logout()
    {
        var c = new Command("logout", "Sign out: revoke the token gpuc login saved and forget it");
        c.SetAction(async (parse, ct) =>
        {
            var path = Api.ConfigPath();
            var cfg = Api.ReadConfig(path);
            if (cfg?.Token is not { } token || cfg.Server is not { } server)
            {
                Console.WriteLine($"not signed in ({path} has no token)");
                return 0;
            }

            string note;
            try
            {
                using var api = Api.From(server, token);
                await api.SendAsync(HttpMethod.Delete, "/api/tokens/current", null, ct);
                note = "token revoked";
            }
            catch (CliException e) when (e.ExitCode == CliRunner.Denied)
            {
                note = "the server no longer knew the token (expired or revoked)";
            }

            cfg.Token = null;
            cfg.Expires = null;
            WritePrivate(path, JsonSerializer.Serialize(cfg, CliJson.Default.CliConfig));
            Console.WriteLine($"signed out: {note}; {path} keeps no token");
            return 0;
        });
        return c;
    }

    private static Command Tokens()
    {
        var tokens = new Command("tokens", "Your personal access tokens: scope, expiry and last use");
        var list = new Command("list", "Your tokens (never the tokens themselves)");
        var user = new Option<string?>("--user") { Description = "Whose (admin); default: yours" };
        list.Options.Add(user);
        var c1 = AddCommon(list);
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c1.Server), parse.GetValue(c1.Token));
            var who = parse.GetValue(user) ?? await MyNameAsync(api, ct);
            var rows = await api.SendAsync(HttpMethod.Get, $"/api/users/{Uri.EscapeDataString(who)}/tokens", null, ct);
            if (parse.GetValue(c1.Json))
            {
                Print(rows);
                return 0;
            }

            Console.WriteLine($"{"ID",-13} {"KIND",-8} {"SCOPE",-9} {"CREATED",-20} {"EXPIRES",-20} {"LAST USED",-20} LABEL");
            foreach (var t in Read(rows, ContractsJson.Default.ListTokenDto))
            {
                Console.WriteLine($"{S(t.Id),-13} {S(t.Kind),-8} {S(t.Scope),-9} {Time(t.Created),-20} {(t.Expires is null ? "never" : Time(t.Expires)),-20} {(t.LastUsed is null ? "-" : Time(t.LastUsed)),-20} {Display.Safe(S(t.Label))}");
            }

            return 0;
        });
        var create = new Command("create", "A new personal access token (printed once)");
        var scope = new Option<string?>("--scope") { Description = "read-only, submit or admin (default: your token's)" };
        var days = new Option<int?>("--days") { Description = "Days until it expires (default: never)" };
        var label = new Option<string?>("--label") { Description = "What it is for" };
        create.Options.Add(scope);
        create.Options.Add(days);
        create.Options.Add(label);
        var c2 = AddCommon(create);
        create.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c2.Server), parse.GetValue(c2.Token));
            var who = await MyNameAsync(api, ct);
            var body = new CreateTokenRequest { Scope = parse.GetValue(scope), ExpiresInDays = parse.GetValue(days), Label = parse.GetValue(label) };
            var r = await api.SendAsync(HttpMethod.Post, $"/api/users/{Uri.EscapeDataString(who)}/tokens", Body(body, ContractsJson.Default.CreateTokenRequest), ct);
            if (parse.GetValue(c2.Json))
            {
                Print(r);
                return 0;
            }

            Console.WriteLine(S(Read(r, ContractsJson.Default.UserDto).Token));
            return 0;
        });
        var revoke = new Command("revoke", "Revoke one of your tokens by id, or all with 'all'");
        var id = new Argument<string>("id");
        revoke.Arguments.Add(id);
        var c3 = AddCommon(revoke);
        revoke.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c3.Server), parse.GetValue(c3.Token));
            var who = await MyNameAsync(api, ct);
            await api.SendAsync(HttpMethod.Delete, $"/api/users/{Uri.EscapeDataString(who)}/tokens/{Uri.EscapeDataString(parse.GetValue(id)!)}", null, ct);
            Console.WriteLine("revoked");
            return 0;
        });
        tokens.Subcommands.Add(list);
        tokens.Subcommands.Add(create);
        tokens.Subcommands.Add(revoke);
        return tokens;
    }

    /// <summary>The name of the user the token belongs to (<c>GET /api/me</c>).</summary>
    private static async Task<string> MyNameAsync(Api api, CancellationToken ct) =>
        S(Read(await api.SendAsync(HttpMethod.Get, "/api/me", null, ct), ContractsJson.Default.UserDto).Name);

    /// <summary>Writes the file readable by its owner only (0600, its folder 0700), replacing it whole.</summary>
    private static void WritePrivate(string path, string text)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (!Directory.Exists(dir))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(dir);
            }
            else
            {
                Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        var tmp = path + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var w = new StreamWriter(tmp, new System.Text.UTF8Encoding(false), options))
        {
            w.Write(text);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(tmp, path, true);
    }
}
