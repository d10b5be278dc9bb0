using GpuCommons.Contracts;
using GpuCommons.Core.Tenancy;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Api;

public sealed class CreateUserRequest
{
    public string? Name { get; set; }
    /// <summary>admin, operator, reviewer or user (default).</summary>
    public string? Role { get; set; }
    /// <summary>The person's address: their first sign-in through an identity provider that vouches for it links to this user.</summary>
    public string? Email { get; set; }
}

public sealed class CreateOrganisationRequest
{
    public string? Name { get; set; }
    /// <summary>university, institute, companylab, startup or flagship.</summary>
    public string? Type { get; set; }
    public double? Shares { get; set; }
    /// <summary>Quotas per partition (absent: none, and borrowing unlimited).</summary>
    public List<QuotaRequest>? Quotas { get; set; }
}

public sealed class CreateProjectRequest
{
    public string? Name { get; set; }
    public string? Organisation { get; set; }
    public double? Shares { get; set; }
    public string? Description { get; set; }
    /// <summary>User who becomes the project's PI (optional).</summary>
    public string? Pi { get; set; }
    /// <summary>Quotas per partition (absent: none, and borrowing unlimited).</summary>
    public List<QuotaRequest>? Quotas { get; set; }
}

public sealed class AddMemberRequest
{
    public string? User { get; set; }
    /// <summary>pi or member (default).</summary>
    public string? Role { get; set; }
}

/// <summary>The tenancy contracts built from their rows: <c>UserDto.From(row)</c>, ….</summary>
public static class TenancyDtos
{
    extension(UserDto)
    {
        /// <summary>A user as listed: no projects, token or accounts.</summary>
        public static UserDto From(UserRow r) => new(r.Name, r.Role, PosixName: r.PosixName, Uid: r.Uid, Email: r.Email, DisplayName: r.DisplayName,
            Organisation: r.Organisation, Disabled: r.Disabled);
    }

    extension(OrganisationDto)
    {
        /// <summary>An organisation with its stored quotas.</summary>
        public static OrganisationDto From(OrganisationRow r) => new(r.Name, r.Type, r.Shares, QuotasApi.Dtos(r.Quotas));
    }

    extension(ProjectDto)
    {
        /// <summary>A project with its stored quotas and POSIX group.</summary>
        public static ProjectDto From(ProjectRow r) => new(r.Name, r.Organisation, r.Shares, r.Description, QuotasApi.Dtos(r.Quotas), r.PosixGroup, r.Gid);
    }

    extension(TokenDto)
    {
        /// <summary>A token as listed, named by the first 12 hex digits of its hash.</summary>
        public static TokenDto From(TokenRow t) => new(TenancyApi.TokenId(t.Hash), t.Created, t.Kind, t.Scope, t.Expires, t.LastUsed, t.Label);
    }
}

internal static class TenancyApi
{
    public static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/me", async (HttpContext ctx, GpucDbFactory f, PosixAccounts accounts) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var row = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Name == c.User);
            // In single-user mode every job runs as the server's own account, whoever submits it.
            var (login, uid) = accounts.MultiUser ? (row?.PosixName ?? PosixNames.Default(c.User), row?.Uid) : (accounts.ServerAccount, accounts.ServerUid);
            var hash = TokenService.Hash(ctx.Request.Headers.Authorization.ToString()["Bearer ".Length..].Trim());
            var token = await db.Tokens.AsNoTracking().FirstOrDefaultAsync(t => t.Hash == hash);
            return Results.Ok(new UserDto(c.User, c.Role, c.Projects, null, login, uid, accounts.Describe(), row?.Email, row?.DisplayName, row?.Organisation,
                TokenExpires: token?.Expires, Scope: c.Scope));
        }).WithTags("users").Produces<UserDto>().WithSummary("Who the token belongs to, their projects, and the account their jobs run as");

        var users = api.MapGroup("/users").WithTags("users");
        users.MapPost("/", CreateUserAsync).Accepts<CreateUserRequest>("application/json").Produces<UserDto>(201).WithSummary("Create a user and their first token (admin)");
        users.MapGet("/", async (HttpContext ctx, GpucDbFactory f, ServerOptions o, string? after, int? limit) =>
        {
            Require(ctx.Caller().IsAdmin);
            await using var db = f.Create();
            var take = Http.Limit(limit, o);
            var q = db.Users.AsNoTracking();
            if (after is not null)
            {
                q = q.Where(u => string.Compare(u.Name, after) > 0);
            }

            var rows = await q.OrderBy(u => u.Name).Take(take + 1).ToListAsync();
            return Results.Ok(PageOf(rows, take, UserDto.From, r => r.Name));
        }).Produces<Page<UserDto>>();
        users.MapGet("/{name}", async (HttpContext ctx, GpucDbFactory f, string name) =>
        {
            var c = ctx.Caller();
            if (!c.IsAdmin && c.User != name)
            {
                throw ApiException.NotFound($"user {name}");
            }

            await using var db = f.Create();
            var row = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Name == name) ?? throw ApiException.NotFound($"user {name}");
            return Results.Ok(UserDto.From(row));
        }).Produces<UserDto>().ProducesProblem(404).WithSummary("A user and their POSIX account (admin or the user)");
        users.MapPatch("/{name}", UpdateUserAsync).Accepts<UpdateUserRequest>("application/json").Produces<UserDto>().ProducesProblem(400)
            .WithSummary("Map a user to the POSIX account their jobs run as (admin)");
        users.MapPost("/{name}/tokens", CreateTokenAsync).Accepts<CreateTokenRequest>("application/json").Produces<UserDto>(201).ProducesProblem(400)
            .WithSummary("Issue a personal access token with a scope (read-only, submit, admin), an expiry and a label (admin or the user)");

        users.MapGet("/{name}/tokens", async (HttpContext ctx, GpucDbFactory f, string name) =>
        {
            var c = ctx.Caller();
            if (!c.IsAdmin && c.User != name)
            {
                throw ApiException.NotFound("user");
            }

            await using var db = f.Create();
            var rows = await db.Tokens.AsNoTracking().Where(t => t.User == name).OrderBy(t => t.Created).ToListAsync();
            return Results.Ok(rows.Select(TokenDto.From).ToList());
        }).Produces<List<TokenDto>>().WithSummary("A user's tokens: id, kind, scope, creation, expiry and last use, never the tokens (admin or the user)");
        users.MapDelete("/{name}/tokens/{id}", async (HttpContext ctx, GpucDbFactory f, TokenService tokens, Coordinator co, string name, string id) =>
        {
            var c = ctx.Caller();
            if (!c.IsAdmin && c.User != name)
            {
                throw ApiException.NotFound("user");
            }

            await using var db = f.Create();
            var mine = await db.Tokens.Where(t => t.User == name).ToListAsync();
            var gone = id == "all" ? mine : mine.Where(t => TokenId(t.Hash) == id).ToList();
            if (gone.Count == 0)
            {
                throw ApiException.NotFound($"token {id}");
            }

            db.Tokens.RemoveRange(gone);
            db.Events.Add(co.Event(c.User, "token.revoked", $"user/{name}", null, id == "all" ? $"all {gone.Count} tokens" : $"{gone[0].Kind} token {id}"));
            await db.SaveChangesAsync();
            tokens.Invalidate();
            return Results.NoContent();
        }).Produces(204).ProducesProblem(404).WithSummary("Revoke one token by id, or all of a user's tokens with id 'all' (admin or the user)");
        api.MapDelete("/tokens/current", async (HttpContext ctx, GpucDbFactory f, TokenService tokens, Coordinator co) =>
        {
            var hash = TokenService.Hash(ctx.Request.Headers.Authorization.ToString()["Bearer ".Length..].Trim());
            await using var db = f.Create();
            var row = await db.Tokens.FindAsync(hash) ?? throw ApiException.NotFound("token");
            db.Tokens.Remove(row);
            db.Events.Add(co.Event(ctx.Caller().User, "token.revoked", $"user/{row.User}", null, $"{row.Kind} token {TokenId(hash)} (its own: signed out)"));
            await db.SaveChangesAsync();
            tokens.Invalidate();
            return Results.NoContent();
        }).WithTags("users").Produces(204).WithSummary("Revoke the token this request carries (log out)");

        var orgs = api.MapGroup("/organisations").WithTags("tenancy");
        orgs.MapGet("/", async (HttpContext ctx, GpucDbFactory f, ServerOptions o, string? after, int? limit) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var q = db.Organisations.AsNoTracking();
            if (!c.SeesAllTenancy)
            {
                var mine = c.Projects.Keys.ToList();
                var myOrgs = db.Projects.Where(p => mine.Contains(p.Name)).Select(p => p.Organisation);
                q = q.Where(x => myOrgs.Contains(x.Name));
            }

            if (after is not null)
            {
                q = q.Where(x => string.Compare(x.Name, after) > 0);
            }

            var take = Http.Limit(limit, o);
            var rows = await q.OrderBy(x => x.Name).Take(take + 1).ToListAsync();
            return Results.Ok(PageOf(rows, take, OrganisationDto.From, r => r.Name));
        }).Produces<Page<OrganisationDto>>();
        orgs.MapGet("/{name}", async (HttpContext ctx, GpucDbFactory f, string name) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var mine = c.Projects.Keys.ToList();
            if (!c.SeesAllTenancy && !await db.Projects.AnyAsync(p => p.Organisation == name && mine.Contains(p.Name)))
            {
                throw ApiException.NotFound($"organisation {name}");
            }

            var row = await db.Organisations.FindAsync(name) ?? throw ApiException.NotFound($"organisation {name}");
            return Results.Ok(OrganisationDto.From(row));
        }).Produces<OrganisationDto>().ProducesProblem(404);
        orgs.MapPost("/", CreateOrganisationAsync).Accepts<CreateOrganisationRequest>("application/json").Produces<OrganisationDto>(201).WithSummary("Create an organisation (admin)");

        var projects = api.MapGroup("/projects").WithTags("tenancy");
        projects.MapGet("/", async (HttpContext ctx, GpucDbFactory f, ServerOptions o, string? after, int? limit) =>
        {
            var c = ctx.Caller();
            await using var db = f.Create();
            var q = db.Projects.AsNoTracking();
            if (!c.SeesAllTenancy)
            {
                var mine = c.Projects.Keys.ToList();
                q = q.Where(p => mine.Contains(p.Name));
            }

            if (after is not null)
            {
                q = q.Where(x => string.Compare(x.Name, after) > 0);
            }

            var take = Http.Limit(limit, o);
            var rows = await q.OrderBy(x => x.Name).Take(take + 1).ToListAsync();
            return Results.Ok(PageOf(rows, take, ProjectDto.From, r => r.Name));
        }).Produces<Page<ProjectDto>>();
        projects.MapGet("/{name}", async (HttpContext ctx, GpucDbFactory f, string name) =>
        {
            var c = ctx.Caller();
            if (!c.SeesAllTenancy && !c.InProject(name))
            {
                throw ApiException.NotFound($"project {name}");
            }

            await using var db = f.Create();
            var p = await db.Projects.FindAsync(name) ?? throw ApiException.NotFound($"project {name}");
            return Results.Ok(ProjectDto.From(p));
        }).Produces<ProjectDto>().ProducesProblem(404);
        projects.MapPatch("/{name}", UpdateProjectAsync).Accepts<UpdateProjectRequest>("application/json").Produces<ProjectDto>().ProducesProblem(400)
            .WithSummary("Map a project to the POSIX group its jobs run with (admin)");
        projects.MapPost("/", CreateProjectAsync).Accepts<CreateProjectRequest>("application/json").Produces<ProjectDto>(201).WithSummary("Create a project (admin)");
        projects.MapGet("/{name}/members", async (HttpContext ctx, GpucDbFactory f, string name) =>
        {
            var c = ctx.Caller();
            if (!c.SeesAllTenancy && !c.InProject(name))
            {
                throw ApiException.NotFound($"project {name}");
            }

            await using var db = f.Create();
            if (await db.Projects.FindAsync(name) is null)
            {
                throw ApiException.NotFound($"project {name}");
            }

            var rows = await db.Memberships.AsNoTracking().Where(m => m.Project == name).OrderBy(m => m.User).ToListAsync();
            return Results.Ok(rows.Select(m => new MemberDto(m.User, m.Role)).ToList());
        }).Produces<List<MemberDto>>();
        projects.MapPost("/{name}/members", AddMemberAsync).Accepts<AddMemberRequest>("application/json").Produces<MemberDto>(201).WithSummary("Add a member (admin or the project's PI)");
        projects.MapDelete("/{name}/members/{user}", async (HttpContext ctx, GpucDbFactory f, TokenService tokens, Coordinator co, string name, string user) =>
        {
            var c = ctx.Caller();
            if (!c.IsAdmin && !c.IsPi(name))
            {
                throw c.InProject(name) || c.SeesAllTenancy ? ApiException.Forbidden("only the PI or an admin manages members") : ApiException.NotFound($"project {name}");
            }

            await using var db = f.Create();
            var m = await db.Memberships.FindAsync(name, user) ?? throw ApiException.NotFound($"member {user}");
            db.Memberships.Remove(m);
            db.Events.Add(co.Event(c.User, "member.removed", $"project/{name}", name, user));
            await db.SaveChangesAsync();
            tokens.Invalidate();
            return Results.NoContent();
        });
    }

    internal static string TokenId(string hash) => hash[..12];

    private static async Task<IResult> CreateTokenAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, TimeProvider time, Coordinator co, string name)
    {
        var c = ctx.Caller();
        if (!c.IsAdmin && c.User != name)
        {
            throw ApiException.NotFound($"user {name}");
        }

        var req = Http.HasBody(ctx) ? await Http.ReadAsync<CreateTokenRequest>(ctx, o) : new CreateTokenRequest();
        var scope = req.Scope ?? c.Scope;
        if (!TokenScopes.IsValid(scope))
        {
            throw ApiException.Field("scope", "must be read-only, submit or admin");
        }

        // A token never makes a stronger one: a submit token makes submit or read-only tokens.
        if (Rank(scope) > Rank(c.Scope))
        {
            throw ApiException.Field("scope", $"a {c.Scope} token cannot issue a {scope} token");
        }

        var now = time.GetUtcNow();
        DateTimeOffset? expires = null;
        if (req.ExpiresInDays is { } days)
        {
            if (days < 1 || TimeSpan.FromDays(days) > o.SignIn.MaxTokenLifetime)
            {
                throw ApiException.Field("expiresInDays", $"must be 1 to {o.SignIn.MaxTokenLifetime.TotalDays:0}");
            }

            expires = now.AddDays(days);
        }

        if (req.Label is { Length: > 200 } || req.Label?.Any(char.IsControl) == true)
        {
            throw ApiException.Field("label", "at most 200 characters, without control characters");
        }

        await using var db = f.Create();
        var user = await db.Users.FindAsync(name) ?? throw ApiException.NotFound($"user {name}");
        if (user.Disabled is not null)
        {
            throw ApiException.Field("name", $"user {name} is disabled");
        }

        var token = TokenService.Issue(db, name, now, "api", scope, expires, req.Label);
        db.Events.Add(co.Event(c.User, "token.created", $"user/{name}", null,
            $"api token {TokenId(TokenService.Hash(token))}, scope {scope}, {(expires is { } e ? $"expires {e:yyyy-MM-dd}" : "no expiry")}{(req.Label is null ? "" : ", " + req.Label)}"));
        await db.SaveChangesAsync();
        return Results.Created(InputRules.Location("users", name), new UserDto(user.Name, user.Role, null, token, TokenExpires: expires, Scope: scope));
    }

    private static int Rank(string scope) => scope switch { TokenScopes.ReadOnly => 0, TokenScopes.Submit => 1, _ => 2 };

    private static async Task<IResult> UpdateUserAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, PosixAccounts accounts, Coordinator co, string name)
    {
        var c = ctx.Caller();
        Require(c.IsAdmin);
        var req = await Http.ReadAsync<UpdateUserRequest>(ctx, o);
        await using var db = f.Create();
        var row = await db.Users.FindAsync(name) ?? throw ApiException.NotFound($"user {name}");
        if (req.PosixName is not { } login)
        {
            throw ApiException.Field("posixName", "is required");
        }

        var entry = await accounts.CheckLoginAsync(name, login, ctx.RequestAborted);
        if (await PosixAccounts.LoginTakenAsync(db, name, login, ctx.RequestAborted))
        {
            throw ApiException.Field("posixName", $"'{login}' is already the account of another user: one account belongs to one person");
        }

        row.PosixName = entry.Login;
        row.Uid = entry.Uid;
        db.Events.Add(co.Event(c.User, "user.account", $"user/{name}", null, $"{entry.Login} (uid {entry.Uid})"));
        await db.SaveChangesAsync();
        accounts.Invalidate();
        return Results.Ok(UserDto.From(row));
    }

    private static async Task<IResult> UpdateProjectAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, PosixAccounts accounts, Coordinator co, string name)
    {
        var c = ctx.Caller();
        Require(c.IsAdmin);
        var req = await Http.ReadAsync<UpdateProjectRequest>(ctx, o);
        await using var db = f.Create();
        var row = await db.Projects.FindAsync(name) ?? throw ApiException.NotFound($"project {name}");
        if (req.PosixGroup is not { } group)
        {
            throw ApiException.Field("posixGroup", "is required");
        }

        row.Gid = await accounts.CheckGroupAsync(group, ctx.RequestAborted);
        row.PosixGroup = group;
        db.Events.Add(co.Event(c.User, "project.group", $"project/{name}", name, $"{group} (gid {row.Gid})"));
        await db.SaveChangesAsync();
        accounts.Invalidate();
        return Results.Ok(ProjectDto.From(row));
    }

    internal static void Require(bool allowed, string why = "your role does not allow this")
    {
        if (!allowed)
        {
            throw ApiException.Forbidden(why);
        }
    }

    internal static Page<TDto> PageOf<TRow, TDto>(List<TRow> rows, int take, Func<TRow, TDto> map, Func<TRow, string> key)
    {
        string? next = null;
        if (rows.Count > take)
        {
            rows.RemoveAt(rows.Count - 1);
            next = key(rows[^1]);
        }

        return new Page<TDto>(rows.Select(map).ToList(), next);
    }

    internal static void CheckName(string? name, string field) => InputRules.CheckName(name, field);

    private static async Task<IResult> CreateUserAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, TimeProvider time, Coordinator co)
    {
        var c = ctx.Caller();
        Require(c.IsAdmin);
        var req = await Http.ReadAsync<CreateUserRequest>(ctx, o);
        CheckName(req.Name, "name");
        var role = req.Role ?? Caller.UserRole;
        if (role is not (Caller.Admin or Caller.Operator or Caller.Reviewer or Caller.UserRole))
        {
            throw ApiException.Field("role", "must be admin, operator, reviewer or user");
        }

        await using var db = f.Create();
        if (await db.Users.FindAsync(req.Name) is not null)
        {
            throw new ApiException(409, "conflict", "name", $"name: user '{req.Name}' exists");
        }

        var email = req.Email?.Trim().ToLowerInvariant();
        if (email is not null && (email.Length > 320 || email.IndexOf('@', StringComparison.Ordinal) <= 0 || email.Any(ch => char.IsWhiteSpace(ch) || char.IsControl(ch))))
        {
            throw ApiException.Field("email", "must be an email address");
        }

        if (email is not null && await db.Users.AnyAsync(u => u.Email == email))
        {
            throw new ApiException(409, "conflict", "email", $"email: {email} is the address of another user");
        }

        db.Users.Add(new UserRow { Name = req.Name!, Role = role, Created = time.GetUtcNow(), Email = email });
        var token = TokenService.Issue(db, req.Name!, time.GetUtcNow());
        db.Events.Add(co.Event(c.User, "user.created", $"user/{req.Name}", null, role));
        await db.SaveChangesAsync();
        return Results.Created(InputRules.Location("users", req.Name!), new UserDto(req.Name!, role, null, token));
    }

    private static async Task<IResult> CreateOrganisationAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time)
    {
        var c = ctx.Caller();
        Require(c.IsAdmin);
        var req = await Http.ReadAsync<CreateOrganisationRequest>(ctx, o);
        CheckName(req.Name, "name");
        if (req.Type is null || !Enum.TryParse<OrganisationType>(req.Type, true, out var type) || int.TryParse(req.Type, out _))
        {
            throw ApiException.Field("type", "must be university, institute, companylab, startup or flagship");
        }

        var shares = req.Shares ?? 1;
        if (!(shares > 0) || !double.IsFinite(shares))
        {
            throw ApiException.Field("shares", "must be a positive number");
        }

        var quotas = QuotasApi.Parse(req.Quotas, co.Fleet);
        var row = new OrganisationRow { Name = req.Name!, Type = type.ToString().ToLowerInvariant(), Shares = shares, Quotas = QuotasApi.ToJson(quotas), Created = time.GetUtcNow() };
        await co.CreateOrganisationAsync(row, c.User);
        return Results.Created(InputRules.Location("organisations", row.Name), OrganisationDto.From(row));
    }

    private static async Task<IResult> CreateProjectAsync(HttpContext ctx, ServerOptions o, Coordinator co, TimeProvider time, TokenService tokens)
    {
        var c = ctx.Caller();
        Require(c.IsAdmin);
        var req = await Http.ReadAsync<CreateProjectRequest>(ctx, o);
        CheckName(req.Name, "name");
        CheckName(req.Organisation, "organisation");
        var shares = req.Shares ?? 1;
        if (!(shares > 0) || !double.IsFinite(shares))
        {
            throw ApiException.Field("shares", "must be a positive number");
        }

        var quotas = QuotasApi.Parse(req.Quotas, co.Fleet);
        var row = new ProjectRow { Name = req.Name!, Organisation = req.Organisation!, Shares = shares, Description = req.Description, Quotas = QuotasApi.ToJson(quotas), Created = time.GetUtcNow() };
        await co.CreateProjectAsync(row, req.Pi, c.User);
        tokens.Invalidate();
        return Results.Created(InputRules.Location("projects", row.Name), ProjectDto.From(row));
    }

    private static async Task<IResult> AddMemberAsync(HttpContext ctx, ServerOptions o, GpucDbFactory f, Coordinator co, TokenService tokens, string name)
    {
        var c = ctx.Caller();
        if (!c.IsAdmin && !c.IsPi(name))
        {
            throw c.InProject(name) || c.SeesAllTenancy ? ApiException.Forbidden("only the PI or an admin manages members") : ApiException.NotFound($"project {name}");
        }

        var req = await Http.ReadAsync<AddMemberRequest>(ctx, o);
        CheckName(req.User, "user");
        var role = req.Role ?? "member";
        if (role is not ("pi" or "member"))
        {
            throw ApiException.Field("role", "must be pi or member");
        }

        await using var db = f.Create();
        if (await db.Projects.FindAsync(name) is null)
        {
            throw ApiException.NotFound($"project {name}");
        }

        if (await db.Users.FindAsync(req.User) is null)
        {
            throw ApiException.Field("user", $"unknown user '{req.User}'");
        }

        var m = await db.Memberships.FindAsync(name, req.User);
        if (m is null)
        {
            db.Memberships.Add(new MembershipRow { Project = name, User = req.User!, Role = role });
        }
        else
        {
            m.Role = role;
        }

        db.Events.Add(co.Event(c.User, "member.added", $"project/{name}", name, $"{req.User} as {role}"));
        await db.SaveChangesAsync();
        tokens.Invalidate();
        return Results.Created(InputRules.Location("projects", name, "members"), new MemberDto(req.User!, role));
    }
}
