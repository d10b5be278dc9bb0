using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Api;

/// <summary>An admin's disabling of a person; <c>jobs</c> is the policy for their queued and running jobs (docs/sign-in.md).</summary>
public sealed class DisableUserRequest
{
    /// <summary>keep (default: their jobs run to their end) or cancel (queued jobs leave the queue, running ones are stopped).</summary>
    public string? Jobs { get; set; }
    public string? Reason { get; set; }
}

public sealed record DisabledDto(string User, DateTimeOffset Disabled, int TokensRevoked, int JobsCancelled);

public sealed class EmailDomainRequest
{
    public string? Organisation { get; set; }
}

public sealed record EmailDomainDto(string Domain, string Organisation);

public sealed class InvitationRequest
{
    public string? Email { get; set; }
    /// <summary>pi or member (default).</summary>
    public string? Role { get; set; }
}

public sealed record InvitationDto(long Id, string Email, string Project, string Role, string InvitedBy, DateTimeOffset Created, DateTimeOffset Expires, string? AcceptedBy,
    DateTimeOffset? Accepted);

internal static class SignInApi
{
    public static void Map(RouteGroupBuilder api)
    {
        var auth = api.MapGroup("/auth").WithTags("sign-in");
        auth.MapGet("/issuers", (ServerOptions o) => Results.Ok(o.SignIn.Issuers
                .Select(i => new IssuerDto(i.Id, i.Name, i.Authority, i.ClientId is not null, i.CliClientId, i.Scopes)).ToList()))
            .Produces<List<IssuerDto>>().WithSummary("The OpenID Connect issuers people sign in with (no token needed)");
        auth.MapPost("/oidc", ExchangeAsync).Accepts<OidcTokenRequest>("application/json").Produces<SignInDto>().ProducesProblem(400).ProducesProblem(401).ProducesProblem(403)
            .WithSummary("Exchange an ID token from the device authorization grant (gpuc login) for an expiring token of this server (no token needed)");

        var users = api.MapGroup("/users").WithTags("users");
        users.MapPost("/{name}/disable", DisableAsync).Accepts<DisableUserRequest>("application/json").Produces<DisabledDto>().ProducesProblem(404)
            .WithSummary("Disable a person: every token is revoked at once, portal sessions end, sign-in is refused (admin)");
        users.MapPost("/{name}/enable", async (HttpContext ctx, GpucDbFactory f, TokenService tokens, Coordinator co, string name) =>
        {
            var c = ctx.Caller();
            TenancyApi.Require(c.IsAdmin);
            await using var db = f.Create();
            var row = await db.Users.FindAsync(name) ?? throw ApiException.NotFound($"user {name}");
            row.Disabled = null;
            db.Events.Add(co.Event(c.User, "user.enabled", $"user/{name}", null, null));
            await db.SaveChangesAsync();
            tokens.Invalidate();
            return Results.Ok(UserDto.From(row));
        }).Produces<UserDto>().ProducesProblem(404).WithSummary("Let a disabled person sign in again (admin)");

        var domains = api.MapGroup("/email-domains").WithTags("sign-in");
        domains.MapGet("/", async (HttpContext ctx, GpucDbFactory f) =>
        {
            TenancyApi.Require(ctx.Caller().SeesAllTenancy);
            await using var db = f.Create();
            var rows = await db.EmailDomains.AsNoTracking().OrderBy(d => d.Domain).ToListAsync();
            return Results.Ok(rows.Select(d => new EmailDomainDto(d.Domain, d.Organisation)).ToList());
        }).Produces<List<EmailDomainDto>>().WithSummary("Email domains and the organisations their people join at first sign-in");
        domains.MapPut("/{domain}", PutDomainAsync).Accepts<EmailDomainRequest>("application/json").Produces<EmailDomainDto>().ProducesProblem(400)
            .WithSummary("Place a domain's people (and its subdomains') in an organisation at first sign-in (admin)");
        domains.MapDelete("/{domain}", async (HttpContext ctx, GpucDbFactory f, Coordinator co, string domain) =>
        {
            var c = ctx.Caller();
            TenancyApi.Require(c.IsAdmin);
            await using var db = f.Create();
            var row = await db.EmailDomains.FindAsync(domain.ToLowerInvariant()) ?? throw ApiException.NotFound($"email domain {domain}");
            db.EmailDomains.Remove(row);
            db.Events.Add(co.Event(c.User, "email-domain.removed", $"email-domain/{row.Domain}", null, row.Organisation));
            await db.SaveChangesAsync();
            return Results.NoContent();
        }).Produces(204).ProducesProblem(404).WithSummary("Remove an email domain (admin)");

        var projects = api.MapGroup("/projects").WithTags("tenancy");
        projects.MapPost("/{name}/invitations", InviteAsync).Accepts<InvitationRequest>("application/json").Produces<InvitationDto>(201).ProducesProblem(400)
            .WithSummary("Invite a person by email; they join the project at their first sign-in (admin or the project's PI)");
        projects.MapGet("/{name}/invitations", async (HttpContext ctx, GpucDbFactory f, string name) =>
        {
            await using var db = f.Create();
            await RequirePiAsync(ctx.Caller(), db, name);
            var rows = await db.Invitations.AsNoTracking().Where(i => i.Project == name).OrderBy(i => i.Id).ToListAsync();
            return Results.Ok(rows.Select(Dto).ToList());
        }).Produces<List<InvitationDto>>().WithSummary("A project's invitations (admin or the project's PI)");
        projects.MapDelete("/{name}/invitations/{id:long}", async (HttpContext ctx, GpucDbFactory f, Coordinator co, string name, long id) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            await RequirePiAsync(c, db, name);
            var row = await db.Invitations.FirstOrDefaultAsync(i => i.Id == id && i.Project == name) ?? throw ApiException.NotFound($"invitation {id}");
            db.Invitations.Remove(row);
            db.Events.Add(co.Event(c.User, "invitation.withdrawn", $"project/{name}", name, row.Email));
            await db.SaveChangesAsync();
            return Results.NoContent();
        }).Produces(204).ProducesProblem(404).WithSummary("Withdraw an invitation (admin or the project's PI)");
    }

    private static InvitationDto Dto(InvitationRow i) => new(i.Id, i.Email, i.Project, i.Role, i.InvitedBy, i.Created, i.Expires, i.AcceptedBy, i.Accepted);

    private static async Task<IResult> ExchangeAsync(HttpContext ctx, ServerOptions o, OidcIssuers issuers, Onboarding onboarding)
    {
        var req = await Http.ReadAsync<OidcTokenRequest>(ctx, o);
        if (string.IsNullOrWhiteSpace(req.IdToken))
        {
            throw ApiException.Field("idToken", "is required");
        }

        if (req.IdToken.Length > 16 * 1024)
        {
            throw ApiException.Field("idToken", "is longer than 16 KiB");
        }

        var scope = req.Scope ?? TokenScopes.Admin;
        if (!TokenScopes.IsValid(scope))
        {
            throw ApiException.Field("scope", "must be read-only, submit or admin");
        }

        if (req.Label is { Length: > 200 })
        {
            throw ApiException.Field("label", "at most 200 characters");
        }

        try
        {
            var (issuer, claims) = await issuers.ValidateCliTokenAsync(req.IdToken.Trim(), ctx.RequestAborted);
            var r = await onboarding.SignInAsync(issuer, claims, "cli", scope, req.Label ?? "gpuc login", ctx.RequestAborted);
            return Results.Ok(new SignInDto(r.User, r.Token, r.Expires, r.Created, r.Organisation, r.JoinedProjects));
        }
        catch (SignInRefusedException e)
        {
            throw new ApiException(e.Status, e.Status switch { 400 => "invalid request", 403 => "forbidden", 503 => "unavailable", _ => "sign-in refused" },
                e.Status == 400 ? "idToken" : null, e.Message);
        }
    }

    private static async Task<IResult> DisableAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, TokenService tokens, Coordinator co, TimeProvider time, string name)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin);
        var req = Http.HasBody(ctx) ? await Http.ReadAsync<DisableUserRequest>(ctx, o) : new DisableUserRequest();
        var policy = req.Jobs ?? "keep";
        if (policy is not ("keep" or "cancel"))
        {
            throw ApiException.Field("jobs", "must be keep or cancel");
        }

        if (name == c.User)
        {
            throw ApiException.Field("name", "an admin cannot disable themselves");
        }

        var now = time.GetUtcNow();
        int revoked;
        List<long> jobs;
        await using (var db = f.Create())
        {
            var row = await db.Users.FindAsync(name) ?? throw ApiException.NotFound($"user {name}");
            row.Disabled ??= now;
            var all = await db.Tokens.Where(t => t.User == name).ToListAsync();
            revoked = all.Count;
            db.Tokens.RemoveRange(all);
            db.Events.Add(co.Event(c.User, "user.disabled", $"user/{name}", null, $"jobs: {policy}{(req.Reason is { } why ? "; " + why : "")}"));
            db.Events.Add(co.Event(c.User, "token.revoked", $"user/{name}", null, $"all {revoked} tokens (account disabled)"));
            await db.SaveChangesAsync();
            jobs = policy == "cancel"
                ? await db.Jobs.AsNoTracking().Where(j => j.User == name && (j.State == JobState.Pending || j.State == JobState.Running)).Select(j => j.Id).ToListAsync()
                : [];
        }

        // Revoked now: the next request of any token or portal session of theirs is refused.
        tokens.Invalidate();
        var cancelled = 0;
        foreach (var id in jobs)
        {
            if (await co.CancelAsync(id, $"{c.User} (account {name} disabled)"))
            {
                cancelled++;
            }
        }

        return Results.Ok(new DisabledDto(name, now, revoked, cancelled));
    }

    private static async Task<IResult> PutDomainAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, Coordinator co, TimeProvider time, string domain)
    {
        var c = ctx.Caller();
        TenancyApi.Require(c.IsAdmin);
        var req = await Http.ReadAsync<EmailDomainRequest>(ctx, o);
        var d = domain.Trim().TrimEnd('.').ToLowerInvariant();
        if (d.Length is 0 or > 255 || !d.Contains('.', StringComparison.Ordinal) || d.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '.' or '-')))
        {
            throw ApiException.Field("domain", $"'{domain}' is not a domain name (letters, digits, '-' and '.', such as uni-a.ac.kr)");
        }

        TenancyApi.CheckName(req.Organisation, "organisation");
        await using var db = f.Create();
        if (await db.Organisations.FindAsync(req.Organisation) is null)
        {
            throw ApiException.Field("organisation", $"unknown organisation '{req.Organisation}'");
        }

        var row = await db.EmailDomains.FindAsync(d);
        if (row is null)
        {
            db.EmailDomains.Add(new EmailDomainRow { Domain = d, Organisation = req.Organisation!, Created = time.GetUtcNow() });
        }
        else
        {
            row.Organisation = req.Organisation!;
        }

        db.Events.Add(co.Event(c.User, "email-domain.set", $"email-domain/{d}", null, req.Organisation));
        await db.SaveChangesAsync();
        return Results.Ok(new EmailDomainDto(d, req.Organisation!));
    }

    private static async Task<IResult> InviteAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, Coordinator co, TimeProvider time, string name)
    {
        var c = ctx.Caller();
        await using var db = f.Create();
        await RequirePiAsync(c, db, name);
        var req = await Http.ReadAsync<InvitationRequest>(ctx, o);
        var email = req.Email?.Trim().ToLowerInvariant();
        if (string.IsNullOrEmpty(email) || email.Length > 320 || email.IndexOf('@', StringComparison.Ordinal) is var at && (at <= 0 || at == email.Length - 1)
            || email.Any(ch => char.IsWhiteSpace(ch) || char.IsControl(ch) || ch is ',' or '<' or '>'))
        {
            throw ApiException.Field("email", "must be an email address, such as ada@uni-a.ac.kr");
        }

        var role = req.Role ?? "member";
        if (role is not ("pi" or "member"))
        {
            throw ApiException.Field("role", "must be pi or member");
        }

        var now = time.GetUtcNow();
        var row = new InvitationRow { Email = email, Project = name, Role = role, InvitedBy = c.User, Created = now, Expires = now + o.SignIn.InvitationLifetime };
        db.Invitations.Add(row);
        db.Events.Add(co.Event(c.User, "invitation.created", $"project/{name}", name, $"{email} as {role}"));
        await db.SaveChangesAsync();
        return Results.Created(InputRules.Location("projects", name) + $"/invitations/{row.Id}", Dto(row));
    }

    private static async Task RequirePiAsync(Caller c, GpucDb db, string project)
    {
        if (!c.IsAdmin && !c.IsPi(project))
        {
            throw c.InProject(project) || c.SeesAllTenancy ? ApiException.Forbidden("only the PI or an admin manages invitations") : ApiException.NotFound($"project {project}");
        }

        if (await db.Projects.FindAsync(project) is null)
        {
            throw ApiException.NotFound($"project {project}");
        }
    }
}
