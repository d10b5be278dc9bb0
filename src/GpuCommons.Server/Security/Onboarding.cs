using System.Security.Claims;
using GpuCommons.Backends;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Security;

/// <summary>A sign-in that succeeded: the person, the token it issued and the projects invitations added them to now.</summary>
public sealed record SignInResult(string User, string Token, DateTimeOffset Expires, bool Created, string? Organisation, IReadOnlyList<string> JoinedProjects);

/// <summary>
/// Sign-in through an OpenID Connect issuer (docs/sign-in.md): the issuer's subject finds the person, or a first
/// sign-in creates them from the claims (name, email, organisation from the affiliation claim or the email-domain
/// table), maps their POSIX account, accepts the invitations sent to their address, and issues an expiring token.
/// Every sign-in, refusal and token is an event.
/// </summary>
public sealed partial class Onboarding(ServerOptions options, GpucDbFactory db, PosixAccounts accounts, TokenService tokens, TimeProvider time, ILogger<Onboarding> log)
{
    /// <summary>Signs a person in with the validated claims of an ID token from <paramref name="issuer"/>.</summary>
    /// <param name="kind"><c>session</c> (portal) or <c>cli</c> (<c>gpuc login</c>).</param>
    /// <exception cref="SignInRefusedException">The person may not sign in; the message says why.</exception>
    public async Task<SignInResult> SignInAsync(OidcIssuerOptions issuer, ClaimsIdentity claims, string kind, string scope, string? label, CancellationToken ct)
    {
        try
        {
            return await SignInOnceAsync(issuer, claims, kind, scope, label, ct);
        }
        catch (DbUpdateException)
        {
            // Two first sign-ins of one person at once (two tabs): the other created them; this one now finds them.
            return await SignInOnceAsync(issuer, claims, kind, scope, label, ct);
        }
    }

    private async Task<SignInResult> SignInOnceAsync(OidcIssuerOptions issuer, ClaimsIdentity claims, string kind, string scope, string? label, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        ArgumentNullException.ThrowIfNull(claims);
        var iss = claims.FindFirst("iss")?.Value ?? issuer.Authority;
        var sub = claims.FindFirst("sub")?.Value ?? claims.FindFirst(ClaimTypes.NameIdentifier)?.Value;
        if (string.IsNullOrEmpty(sub) || sub.Length > 255)
        {
            throw new SignInRefusedException($"the ID token from {issuer.Name} has no usable subject (sub)");
        }

        var email = (claims.FindFirst("email")?.Value ?? claims.FindFirst(ClaimTypes.Email)?.Value)?.Trim().ToLowerInvariant();
        if (email is not null && (email.Length > 320 || email.IndexOf('@', StringComparison.Ordinal) <= 0))
        {
            email = null;
        }

        // Only an address the issuer vouches for links an existing person, accepts invitations or places by domain.
        var verified = email is not null && string.Equals(claims.FindFirst("email_verified")?.Value, "true", StringComparison.OrdinalIgnoreCase);
        var now = time.GetUtcNow();
        var actor = "oidc:" + issuer.Id;

        await using var ctx = db.Create();
        var identity = await ctx.ExternalIdentities.FirstOrDefaultAsync(x => x.Issuer == iss && x.Subject == sub, ct);
        UserRow? user = null;
        var created = false;
        string? placedBy = null;
        if (identity is not null)
        {
            user = await ctx.Users.FindAsync([identity.User], ct);
        }
        else if (verified && await ctx.Users.FirstOrDefaultAsync(u => u.Email == email, ct) is { } byEmail)
        {
            // A person an admin created with this address, or who signs in elsewhere already.
            var bound = await ctx.ExternalIdentities.AsNoTracking().Where(x => x.User == byEmail.Name).Select(x => x.Issuer).ToListAsync(ct);
            if (bound.Count > 0)
            {
                var other = bound.Select(b => Name(b)).First();
                await RefuseAsync(ctx, actor, $"user/{byEmail.Name}", $"{email} from {issuer.Id} (subject {sub}): bound to {other}", ct);
                throw new SignInRefusedException(
                    $"the address {email} belongs to a person who signs in with {other}; {issuer.Name} cannot sign them in (an admin can link the identities)", 403);
            }

            user = byEmail;
        }

        if (user is null)
        {
            if (!options.SignIn.CreatePeople)
            {
                await RefuseAsync(ctx, actor, "user/?", $"{email ?? sub} from {issuer.Id}: no account", ct);
                throw new SignInRefusedException($"no account here for {email ?? sub}: ask the center's administrators to create one", 403);
            }

            (user, placedBy) = await CreatePersonAsync(ctx, issuer, claims, email, verified, now, ct);
            created = true;
        }

        if (user.Disabled is { } disabled)
        {
            await RefuseAsync(ctx, actor, $"user/{user.Name}", $"disabled since {disabled:yyyy-MM-dd HH:mm}Z", ct);
            throw new SignInRefusedException($"the account {user.Name} was disabled by the center's administrators on {disabled:yyyy-MM-dd}; contact them", 403);
        }

        if (identity is null)
        {
            ctx.ExternalIdentities.Add(new ExternalIdentityRow { Issuer = iss, Subject = sub, User = user.Name, Email = email, FirstSeen = now, LastSeen = now });
        }
        else
        {
            identity.LastSeen = now;
            identity.Email = email;
        }

        if (created)
        {
            ctx.Events.Add(Event(now, actor, "user.created", $"user/{user.Name}", null,
                $"first sign-in with {issuer.Id} ({email ?? sub}); organisation {user.Organisation ?? "none"}{(placedBy is null ? "" : " from " + placedBy)}"));
        }

        var joined = verified ? await AcceptInvitationsAsync(ctx, user.Name, email!, now, ct) : [];
        var lifetime = kind == "cli" ? options.SignIn.CliTokenLifetime : options.SignIn.SessionLifetime;
        var expires = now + lifetime;
        var token = TokenService.Issue(ctx, user.Name, now, kind, scope, expires, label);
        ctx.Events.Add(Event(now, user.Name, "user.signed-in", $"user/{user.Name}", null, $"with {issuer.Id} ({(kind == "cli" ? "gpuc login" : "portal")})"));
        ctx.Events.Add(Event(now, user.Name, "token.created", $"user/{user.Name}", null,
            $"{kind} token {TokenId(token)}, scope {scope}, expires {expires:yyyy-MM-dd HH:mm}Z"));
        await ctx.SaveChangesAsync(ct);
        if (joined.Count > 0 || created)
        {
            tokens.Invalidate();
        }

        if (created && accounts.MultiUser)
        {
            await MapAccountAsync(user.Name, ct);
        }

        return new SignInResult(user.Name, token, expires, created, user.Organisation, joined);
    }

    private static string TokenId(string token) => TokenService.Hash(token)[..12];

    private string Name(string issuerUrl) =>
        options.SignIn.Issuers.FirstOrDefault(i => string.Equals(i.Authority.TrimEnd('/'), issuerUrl.TrimEnd('/'), StringComparison.Ordinal))?.Name ?? issuerUrl;

    private async Task<(UserRow User, string? PlacedBy)> CreatePersonAsync(GpucDb ctx, OidcIssuerOptions issuer, ClaimsIdentity claims, string? email, bool verified,
        DateTimeOffset now, CancellationToken ct)
    {
        var baseName = NameFrom(claims.FindFirst("preferred_username")?.Value) ?? NameFrom(email?[..email.IndexOf('@', StringComparison.Ordinal)]) ?? "user";
        var name = baseName;
        for (var n = 2; await ctx.Users.AnyAsync(u => u.Name == name, ct); n++)
        {
            name = baseName + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        var (organisation, placedBy) = await OrganisationAsync(ctx, issuer, claims, verified ? email : null, ct);
        var displayName = claims.FindFirst("name")?.Value;
        var row = new UserRow
        {
            Name = name,
            Role = Caller.UserRole,
            Created = now,
            // Only an address the issuer vouches for is the person's: an unverified one could claim someone else's.
            Email = verified ? email : null,
            DisplayName = displayName is { Length: <= 200 } ? displayName : null,
            Organisation = organisation,
        };
        ctx.Users.Add(row);
        return (row, placedBy);
    }

    /// <summary>
    /// The organisation of a new person: the affiliation claim's value when it names an organisation (or, scoped as
    /// <c>member@domain</c> or a bare domain, through the email-domain table); else the email domain (and its parents) in the table.
    /// </summary>
    internal static async Task<(string? Organisation, string? PlacedBy)> OrganisationAsync(GpucDb ctx, OidcIssuerOptions issuer, ClaimsIdentity claims, string? verifiedEmail,
        CancellationToken ct)
    {
        if (issuer.AffiliationClaim is { } claim)
        {
            foreach (var value in claims.FindAll(claim).Select(c => c.Value.Trim()).Where(v => v.Length is > 0 and <= 255))
            {
                if (await ctx.Organisations.AsNoTracking().AnyAsync(o => o.Name == value, ct))
                {
                    return (value, $"claim {claim}");
                }

                var domain = value.Contains('@', StringComparison.Ordinal) ? value[(value.LastIndexOf('@') + 1)..] : value;
                if (await DomainAsync(ctx, domain, ct) is { } byScope)
                {
                    return (byScope, $"claim {claim} ({domain})");
                }
            }
        }

        if (verifiedEmail is not null)
        {
            var domain = verifiedEmail[(verifiedEmail.LastIndexOf('@') + 1)..];
            if (await DomainAsync(ctx, domain, ct) is { } byDomain)
            {
                return (byDomain, $"email domain {domain}");
            }
        }

        return (null, null);
    }

    /// <summary>The organisation of a domain or of its closest parent in the table (<c>cs.uni-a.ac.kr</c> → <c>uni-a.ac.kr</c>).</summary>
    private static async Task<string?> DomainAsync(GpucDb ctx, string domain, CancellationToken ct)
    {
        domain = domain.Trim().TrimEnd('.').ToLowerInvariant();
        var candidates = new List<string>();
        for (var d = domain; d.Contains('.', StringComparison.Ordinal); d = d[(d.IndexOf('.', StringComparison.Ordinal) + 1)..])
        {
            candidates.Add(d);
        }

        if (candidates.Count == 0)
        {
            return null;
        }

        var rows = await ctx.EmailDomains.AsNoTracking().Where(x => candidates.Contains(x.Domain)).ToListAsync(ct);
        return rows.OrderByDescending(r => r.Domain.Length).FirstOrDefault()?.Organisation;
    }

    private static async Task<List<string>> AcceptInvitationsAsync(GpucDb ctx, string user, string email, DateTimeOffset now, CancellationToken ct)
    {
        var open = await ctx.Invitations.Where(i => i.Email == email && i.AcceptedBy == null).ToListAsync(ct);
        var joined = new List<string>();
        foreach (var inv in open.Where(i => i.Expires > now).OrderBy(i => i.Id))
        {
            if (await ctx.Projects.FindAsync([inv.Project], ct) is null)
            {
                continue;
            }

            var m = await ctx.Memberships.FindAsync([inv.Project, user], ct);
            if (m is null)
            {
                ctx.Memberships.Add(new MembershipRow { Project = inv.Project, User = user, Role = inv.Role });
            }
            else if (inv.Role == "pi")
            {
                m.Role = "pi";
            }

            inv.AcceptedBy = user;
            inv.Accepted = now;
            ctx.Events.Add(Event(now, user, "invitation.accepted", $"project/{inv.Project}", inv.Project, $"{email} as {inv.Role}, invited by {inv.InvitedBy}"));
            ctx.Events.Add(Event(now, user, "member.added", $"project/{inv.Project}", inv.Project, $"{user} as {inv.Role} (invitation {inv.Id})"));
            joined.Add(inv.Project);
        }

        return joined;
    }

    /// <summary>Maps (or, with --provision-accounts, creates) the new person's POSIX account by the rules of docs/accounts.md.</summary>
    private async Task MapAccountAsync(string name, CancellationToken ct)
    {
        try
        {
            await using var ctx = db.Create();
            var row = await ctx.Users.FindAsync([name], ct);
            if (row is null || await PosixAccounts.LoginTakenAsync(ctx, name, row.PosixName ?? PosixNames.Default(name), ct))
            {
                return;
            }

            var entry = await accounts.MapUserAsync(row, ct);
            ctx.Events.Add(Event(time.GetUtcNow(), "system", "user.account", $"user/{name}", null, $"{entry.Login} (uid {entry.Uid}) at first sign-in"));
            await ctx.SaveChangesAsync(ct);
            accounts.Invalidate();
        }
        catch (JobStartRejectedException e)
        {
            // No account yet: the person can sign in and look around; their jobs fail at start with this reason until an admin maps one.
            LogNoAccount(name, e.Message);
        }
    }

    private async Task RefuseAsync(GpucDb ctx, string actor, string subject, string detail, CancellationToken ct)
    {
        ctx.ChangeTracker.Clear();
        ctx.Events.Add(new EventRow { Time = time.GetUtcNow(), Actor = actor, Kind = "user.sign-in-refused", Subject = subject, Detail = detail });
        await ctx.SaveChangesAsync(ct);
    }

    private static EventRow Event(DateTimeOffset now, string actor, string kind, string subject, string? project, string? detail) =>
        new() { Time = now, Actor = actor, Kind = kind, Subject = subject, Project = project, Detail = detail };

    private static string? NameFrom(string? s)
    {
        if (string.IsNullOrWhiteSpace(s))
        {
            return null;
        }

        var cleaned = new string(s.Trim().ToLowerInvariant().Where(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or '-').Take(32).ToArray()).Trim('.', '-');
        return cleaned.Length == 0 ? null : cleaned;
    }

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "user {User} signed in for the first time but has no POSIX account yet: {Reason}")]
    private partial void LogNoAccount(string user, string reason);
}
