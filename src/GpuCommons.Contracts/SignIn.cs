namespace GpuCommons.Contracts;

/// <summary>An OpenID Connect issuer as <c>GET /api/auth/issuers</c> lists it (no secret).</summary>
/// <param name="Id">Its id on this server (<c>gpuc login --issuer</c>).</param>
/// <param name="Name">Its name, for people.</param>
/// <param name="Issuer">Its issuer URL (the authority).</param>
/// <param name="Portal">Whether the portal signs in with it.</param>
/// <param name="CliClientId">Its public client for <c>gpuc login</c> (the device authorization grant); absent: none.</param>
/// <param name="Scopes">The scopes to ask for.</param>
public sealed record IssuerDto(string Id, string Name, string Issuer, bool Portal, string? CliClientId, IReadOnlyList<string> Scopes);

/// <summary><c>gpuc login</c>'s exchange (<c>POST /api/auth/oidc</c>): the ID token of the device authorization grant for a token of this server.</summary>
public sealed class OidcTokenRequest
{
    /// <summary>The ID token the identity provider gave.</summary>
    public string? IdToken { get; set; }

    /// <summary>read-only, submit or admin (default: admin, everything the person's role allows).</summary>
    public string? Scope { get; set; }

    /// <summary>What the token is for (say, the host it was made on).</summary>
    public string? Label { get; set; }
}

/// <summary>The answer to a sign-in (<c>POST /api/auth/oidc</c>): the token and who it is for.</summary>
/// <param name="User">The user signed in.</param>
/// <param name="Token">The token; keep it private.</param>
/// <param name="Expires">When it expires.</param>
/// <param name="Created">Whether this sign-in made the user.</param>
/// <param name="Organisation">The organisation the user belongs to (by their email's domain), if any.</param>
/// <param name="Projects">Projects joined by accepting invitations at this sign-in.</param>
public sealed record SignInDto(string User, string Token, DateTimeOffset Expires, bool Created, string? Organisation, IReadOnlyList<string> Projects);
