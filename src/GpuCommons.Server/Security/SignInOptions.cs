using System.Text.RegularExpressions;

namespace GpuCommons.Server.Security;

/// <summary>One OpenID Connect issuer people sign in with (a federation or an institution); docs/sign-in.md.</summary>
public sealed partial class OidcIssuerOptions
{
    /// <summary>Short name in URLs and on the sign-in page: lower-case letters, digits and '-' (<c>uni-a</c>).</summary>
    public required string Id { get; set; }
    /// <summary>The name shown on the sign-in button (default: the id).</summary>
    public string? DisplayName { get; set; }
    /// <summary>The issuer URL; its <c>/.well-known/openid-configuration</c> is read, and ID tokens must name it as <c>iss</c>.</summary>
    public required string Authority { get; set; }
    /// <summary>The portal's client id at the issuer (authorization code + PKCE); null: this issuer is for the CLI only.</summary>
    public string? ClientId { get; set; }
    /// <summary>The portal client's secret.</summary>
    public string? ClientSecret { get; set; }
    /// <summary>The public client <c>gpuc login</c> uses for the device authorization grant; null: no CLI sign-in with this issuer.</summary>
    public string? CliClientId { get; set; }
    /// <summary>The claim naming the person's organisation (an organisation's name, or a scoped value such as <c>member@uni-a.ac.kr</c>); null: email domains only.</summary>
    public string? AffiliationClaim { get; set; }
    /// <summary>Scopes asked for. Default <c>openid email profile</c> (and the affiliation claim's scope when it is one).</summary>
    public List<string> Scopes { get; set; } = ["openid", "email", "profile"];

    public string Name => DisplayName ?? Id;

    /// <summary>Where the issuer sends the browser back: <c>/signin-oidc/ID</c>.</summary>
    public string CallbackPath => "/signin-oidc/" + Id;

    /// <summary>The authentication scheme of the portal's handler for this issuer.</summary>
    public string Scheme => "oidc-" + Id;

    /// <summary>
    /// Parses <c>id=uni-a,url=https://…,client-id=…,client-secret=…,client-secret-file=…,cli-client-id=…,name=…,affiliation-claim=…,scopes=openid email</c>
    /// (the <c>--oidc-issuer</c> option); values may not contain ','.
    /// </summary>
    public static OidcIssuerOptions Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new ArgumentException($"--oidc-issuer: '{part}' is not key=value (keys: id, url, client-id, client-secret, client-secret-file, cli-client-id, name, affiliation-claim, scopes)");
            }

            fields[part[..eq].ToLowerInvariant()] = part[(eq + 1)..];
        }

        string? Take(string k) => fields.Remove(k, out var v) ? v : null;
        var o = new OidcIssuerOptions
        {
            Id = Take("id") ?? throw new ArgumentException("--oidc-issuer: id= is required"),
            Authority = Take("url") ?? throw new ArgumentException("--oidc-issuer: url= is required"),
            ClientId = Take("client-id"),
            ClientSecret = Take("client-secret"),
            CliClientId = Take("cli-client-id"),
            DisplayName = Take("name"),
            AffiliationClaim = Take("affiliation-claim"),
        };
        if (Take("client-secret-file") is { } file)
        {
            try
            {
                o.ClientSecret = File.ReadAllText(file).Trim();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ArgumentException($"--oidc-issuer {o.Id}: client-secret-file {file}: {e.Message}");
            }
        }

        if (Take("scopes") is { } scopes)
        {
            o.Scopes = scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        }

        if (fields.Count > 0)
        {
            throw new ArgumentException($"--oidc-issuer {o.Id}: unknown key '{fields.Keys.First()}'");
        }

        // A secret in the environment stays out of the process list: GPUC_OIDC_SECRET_UNI_A for id uni-a.
        o.ClientSecret ??= Environment.GetEnvironmentVariable("GPUC_OIDC_SECRET_" + o.Id.ToUpperInvariant().Replace('-', '_'));
        return o;
    }

    public void Validate()
    {
        if (!IdPattern().IsMatch(Id))
        {
            throw new ArgumentException($"OpenID issuer id '{Id}' must be 1-32 lower-case letters, digits or '-'", nameof(Id));
        }

        if (!Uri.TryCreate(Authority, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
        {
            throw new ArgumentException($"OpenID issuer {Id}: url '{Authority}' is not an http(s) URL", nameof(Authority));
        }

        if (uri.Scheme == "http" && !uri.IsLoopback)
        {
            throw new ArgumentException($"OpenID issuer {Id}: url '{Authority}' must use https (plain http only on this machine's loopback)", nameof(Authority));
        }

        if (ClientId is null && CliClientId is null)
        {
            throw new ArgumentException($"OpenID issuer {Id}: give client-id (portal) or cli-client-id (gpuc login), or both", nameof(ClientId));
        }

        if (ClientId is not null && string.IsNullOrEmpty(ClientSecret))
        {
            throw new ArgumentException($"OpenID issuer {Id}: the portal client {ClientId} needs client-secret, client-secret-file or GPUC_OIDC_SECRET_{Id.ToUpperInvariant().Replace('-', '_')}", nameof(ClientSecret));
        }

        if (!Scopes.Contains("openid"))
        {
            throw new ArgumentException($"OpenID issuer {Id}: scopes must include openid", nameof(Scopes));
        }
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,31}$")]
    private static partial Regex IdPattern();
}

/// <summary>Sign-in through OpenID Connect, and the lifetimes of the tokens it issues (docs/sign-in.md).</summary>
public sealed class SignInOptions
{
    /// <summary>The issuers people sign in with; empty: sign-in by pasting a token only.</summary>
    public List<OidcIssuerOptions> Issuers { get; set; } = [];

    /// <summary>Whether a first sign-in creates the person (true, default) or only people an admin created may sign in.</summary>
    public bool CreatePeople { get; set; } = true;

    /// <summary>How long a portal sign-in lasts. Default 12 h.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>How long the token of <c>gpuc login</c> lasts. Default 30 days.</summary>
    public TimeSpan CliTokenLifetime { get; set; } = TimeSpan.FromDays(30);

    /// <summary>The longest a personal access token may live. Default 365 days.</summary>
    public TimeSpan MaxTokenLifetime { get; set; } = TimeSpan.FromDays(365);

    /// <summary>Tolerated clock difference with the issuers when checking an ID token's times. Default 2 min.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>How long an invitation by email stays open. Default 30 days.</summary>
    public TimeSpan InvitationLifetime { get; set; } = TimeSpan.FromDays(30);

    public OidcIssuerOptions? Find(string id) => Issuers.FirstOrDefault(i => i.Id == id);

    public void Validate()
    {
        foreach (var i in Issuers)
        {
            i.Validate();
        }

        if (Issuers.GroupBy(i => i.Id).FirstOrDefault(g => g.Count() > 1) is { } dupId)
        {
            throw new ArgumentException($"OpenID issuer id '{dupId.Key}' is configured twice", nameof(Issuers));
        }

        if (Issuers.GroupBy(i => i.Authority.TrimEnd('/')).FirstOrDefault(g => g.Count() > 1) is { } dupUrl)
        {
            throw new ArgumentException($"OpenID issuer url '{dupUrl.Key}' is configured twice", nameof(Issuers));
        }

        if (SessionLifetime <= TimeSpan.Zero || CliTokenLifetime <= TimeSpan.Zero || MaxTokenLifetime <= TimeSpan.Zero)
        {
            throw new ArgumentException("sign-in lifetimes must be positive", nameof(SessionLifetime));
        }

        if (ClockSkew < TimeSpan.Zero)
        {
            throw new ArgumentException("the clock skew cannot be negative", nameof(ClockSkew));
        }
    }
}
