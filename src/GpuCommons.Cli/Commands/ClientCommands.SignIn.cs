using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

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
            var url = parse.GetValue(server) ?? Environment.GetEnvironmentVariable("GPUC_URL") ?? cfg?["server"]?.GetValue<string>()
                ?? throw new CliException("no server: give --server or set GPUC_URL", CliRunner.Usage);
            var wanted = parse.GetValue(scope)!;
            if (wanted is not ("read-only" or "submit" or "admin"))
            {
                throw new CliException($"--scope must be read-only, submit or admin, got '{wanted}'", CliRunner.Usage);
            }

            using var api = Api.Anonymous(url);
            var issuers = (await api.SendAsync(HttpMethod.Get, "/api/auth/issuers", null, ct))?.AsArray().Where(i => i?["cliClientId"] is not null).ToList() ?? [];
            if (issuers.Count == 0)
            {
                throw new CliException($"{url} has no identity provider set up for gpuc login: ask its administrators for a token (gpuc --token, GPUC_TOKEN)", CliRunner.Usage);
            }

            var id = parse.GetValue(issuer);
            var chosen = id is null
                ? issuers.Count == 1 ? issuers[0]! : throw new CliException(
                    $"this server has several identity providers: give --issuer {string.Join(" | ", issuers.Select(i => $"{S(i?["id"])} ({S(i?["name"])})"))}", CliRunner.Usage)
                : issuers.FirstOrDefault(i => S(i?["id"]) == id) ?? throw new CliException(
                    $"--issuer: '{id}' is not an identity provider of this server for gpuc login (it has: {string.Join(", ", issuers.Select(i => S(i?["id"])))})", CliRunner.Usage);

            var idToken = await DeviceFlowAsync(chosen, ct);
            var answer = await api.SendAsync(HttpMethod.Post, "/api/auth/oidc",
                new JsonObject { ["idToken"] = idToken, ["scope"] = wanted, ["label"] = $"gpuc login on {Environment.MachineName}" }, ct);
            var token = S(answer?["token"]);
            var expires = S(answer?["expires"]);
            var saved = cfg ?? new JsonObject();
            saved["server"] = url;
            saved["token"] = token;
            saved["expires"] = expires;
            saved["user"] = S(answer?["user"]);
            saved["issuer"] = S(chosen["id"]);
            WritePrivate(path, saved.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            var user = S(answer?["user"]);
            var projects = answer?["projects"]?.AsArray().Select(S).ToList() ?? [];
            if (parse.GetValue(json))
            {
                Print(new JsonObject
                {
                    ["user"] = user, ["expires"] = expires, ["scope"] = wanted, ["created"] = answer?["created"]?.GetValue<bool>() ?? false,
                    ["organisation"] = answer?["organisation"]?.DeepClone(), ["projects"] = new JsonArray(projects.Select(p => (JsonNode?)p).ToArray()), ["config"] = path,
                });
                return 0;
            }

            Console.WriteLine($"signed in as {Display.Safe(user)}{(answer?["created"]?.GetValue<bool>() == true ? " (new account)" : "")}"
                + (answer?["organisation"] is { } org ? $", {Display.Safe(S(org))}" : "") + $", scope {wanted}, until {Time(answer?["expires"])}Z");
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
    private static async Task<string> DeviceFlowAsync(JsonNode issuer, CancellationToken ct)
    {
        var authority = S(issuer["issuer"]).TrimEnd('/');
        var clientId = S(issuer["cliClientId"]);
        var scopes = string.Join(' ', issuer["scopes"]?.AsArray().Select(S) ?? ["openid", "email", "profile"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        JsonNode? discovery;
        try
        {
            discovery = JsonNode.Parse(await http.GetStringAsync(authority + "/.well-known/openid-configuration", ct));
        }
        catch (Exception e) when (e is HttpRequestException or JsonException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            throw new CliException($"the identity provider {S(issuer["name"])} ({authority}) does not answer: {e.Message}", CliRunner.Unavailable);
        }

        var deviceEndpoint = S(discovery?["device_authorization_endpoint"]);
        var tokenEndpoint = S(discovery?["token_endpoint"]);
        if (deviceEndpoint.Length == 0)
        {
            throw new CliException($"the identity provider {S(issuer["name"])} does not offer the device authorization grant", CliRunner.Unavailable);
        }

        using var start = await http.PostAsync(deviceEndpoint, new FormUrlEncodedContent(new Dictionary<string, string> { ["client_id"] = clientId, ["scope"] = scopes }), ct);
        var device = JsonNode.Parse(await start.Content.ReadAsStringAsync(ct));
        if (!start.IsSuccessStatusCode)
        {
            throw new CliException($"the identity provider refused to start the sign-in: {S(device?["error"])} {S(device?["error_description"])}", CliRunner.Denied);
        }

        var interval = TimeSpan.FromSeconds(device?["interval"]?.GetValue<int>() ?? 5);
        var until = TimeProvider.System.GetUtcNow().AddSeconds(device?["expires_in"]?.GetValue<int>() ?? 600);
        Console.WriteLine($"To sign in with {Display.Safe(S(issuer["name"]))}, open: {S(device?["verification_uri_complete"] ?? device?["verification_uri"])}");
        Console.WriteLine($"and check that it shows the code: {S(device?["user_code"])}");
        Console.WriteLine("waiting for you to sign in there …");
        Console.Out.Flush();
        while (TimeProvider.System.GetUtcNow() < until)
        {
            await Task.Delay(interval, ct);
            using var poll = await http.PostAsync(tokenEndpoint, new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["grant_type"] = "urn:ietf:params:oauth:grant-type:device_code",
                ["device_code"] = S(device?["device_code"]),
                ["client_id"] = clientId,
            }), ct);
            var body = JsonNode.Parse(await poll.Content.ReadAsStringAsync(ct));
            if (poll.IsSuccessStatusCode)
            {
                return S(body?["id_token"]) is { Length: > 0 } idToken
                    ? idToken
                    : throw new CliException("the identity provider answered without an ID token (is the openid scope allowed for this client?)", CliRunner.Failure);
            }

            switch (S(body?["error"]))
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
                    throw new CliException($"the identity provider refused: {S(body?["error"])} {S(body?["error_description"])}", CliRunner.Denied);
            }
        }

        throw new CliException("the code expired before you signed in: run gpuc login again", CliRunner.Denied);
    }

    private static Command Logout()
    {
        var c = new Command("logout", "Sign out: revoke the token gpuc login saved and forget it");
        c.SetAction(async (parse, ct) =>
        {
            var path = Api.ConfigPath();
            var cfg = Api.ReadConfig(path);
            if (cfg?["token"]?.GetValue<string>() is not { } token || cfg["server"]?.GetValue<string>() is not { } server)
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

            cfg.Remove("token");
            cfg.Remove("expires");
            WritePrivate(path, cfg.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
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
            var who = parse.GetValue(user) ?? S((await api.SendAsync(HttpMethod.Get, "/api/me", null, ct))?["name"]);
            var rows = await api.SendAsync(HttpMethod.Get, $"/api/users/{Uri.EscapeDataString(who)}/tokens", null, ct);
            if (parse.GetValue(c1.Json))
            {
                Print(rows);
                return 0;
            }

            Console.WriteLine($"{"ID",-13} {"KIND",-8} {"SCOPE",-9} {"CREATED",-20} {"EXPIRES",-20} {"LAST USED",-20} LABEL");
            foreach (var t in rows?.AsArray() ?? [])
            {
                Console.WriteLine($"{S(t?["id"]),-13} {S(t?["kind"]),-8} {S(t?["scope"]),-9} {Time(t?["created"]),-20} {(t?["expires"] is null ? "never" : Time(t["expires"])),-20} {(t?["lastUsed"] is null ? "-" : Time(t["lastUsed"])),-20} {Display.Safe(S(t?["label"]))}");
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
            var who = S((await api.SendAsync(HttpMethod.Get, "/api/me", null, ct))?["name"]);
            var body = new JsonObject();
            if (parse.GetValue(scope) is { } s)
            {
                body["scope"] = s;
            }

            if (parse.GetValue(days) is { } d)
            {
                body["expiresInDays"] = d;
            }

            if (parse.GetValue(label) is { } l)
            {
                body["label"] = l;
            }

            var r = await api.SendAsync(HttpMethod.Post, $"/api/users/{Uri.EscapeDataString(who)}/tokens", body, ct);
            if (parse.GetValue(c2.Json))
            {
                Print(r);
                return 0;
            }

            Console.WriteLine(S(r?["token"]));
            return 0;
        });
        var revoke = new Command("revoke", "Revoke one of your tokens by id, or all with 'all'");
        var id = new Argument<string>("id");
        revoke.Arguments.Add(id);
        var c3 = AddCommon(revoke);
        revoke.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c3.Server), parse.GetValue(c3.Token));
            var who = S((await api.SendAsync(HttpMethod.Get, "/api/me", null, ct))?["name"]);
            await api.SendAsync(HttpMethod.Delete, $"/api/users/{Uri.EscapeDataString(who)}/tokens/{Uri.EscapeDataString(parse.GetValue(id)!)}", null, ct);
            Console.WriteLine("revoked");
            return 0;
        });
        tokens.Subcommands.Add(list);
        tokens.Subcommands.Add(create);
        tokens.Subcommands.Add(revoke);
        return tokens;
    }

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
