using System.Collections.Concurrent;
using GpuCommons.Backends;
using GpuCommons.Contracts;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Security;

/// <summary>Whose account jobs run as.</summary>
public enum AccountMode
{
    /// <summary>Multi-user when the server runs as root, single-user otherwise.</summary>
    Auto,

    /// <summary>Every job runs as its user's own POSIX account, with its project's group; never as root or the server.</summary>
    MultiUser,

    /// <summary>A researcher's workstation: every job runs as the account the server runs as.</summary>
    SingleUser,
}

/// <summary>
/// Maps GpuCommons users to POSIX accounts and projects to POSIX groups (docs/accounts.md), and says what account a job
/// runs as. Mappings are kept in the database; the uid and gid are recorded when a name is first resolved, and a later
/// change of the host's uid for that name refuses the job rather than run it as someone else.
/// </summary>
public sealed class PosixAccounts
{
    private static readonly TimeSpan CacheFor = TimeSpan.FromMinutes(1);
    private readonly GpucDbFactory _db;
    private readonly IPosixDirectory _directory;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<(string User, string Project), (PosixIdentity Identity, DateTimeOffset Until)> _cache = new();

    public PosixAccounts(ServerOptions options, GpucDbFactory db, IPosixDirectory directory, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _db = db;
        _directory = directory;
        _time = time;
        ServerUid = (int)Posix.Geteuid();
        ServerAccount = directory.FindUser(Environment.UserName)?.Login ?? Environment.UserName;
        Mode = options.Accounts switch
        {
            AccountMode.Auto => ServerUid == 0 ? AccountMode.MultiUser : AccountMode.SingleUser,
            var m => m,
        };
        if (options.ProvisionAccounts && ServerUid != 0)
        {
            throw new ArgumentException("provisioning accounts (--provision-accounts) needs a server started as root", nameof(options));
        }

        Provisioning = options.ProvisionAccounts;
        MinimumId = options.MinimumPosixId;
    }

    /// <summary>The lowest uid and gid a job may run with: system accounts and groups (shadow, disk, docker…) sit below.</summary>
    public int MinimumId { get; }

    /// <summary>Multi-user or single-user, after <see cref="AccountMode.Auto"/> is decided.</summary>
    public AccountMode Mode { get; }

    public bool MultiUser => Mode == AccountMode.MultiUser;

    /// <summary>The uid the server runs as (its effective uid).</summary>
    public int ServerUid { get; }

    public string ServerAccount { get; }

    public bool Provisioning { get; }

    public AccountsDto Describe() => new(MultiUser ? "multi-user" : "single-user", ServerAccount, Provisioning);

    /// <summary>Forgets cached mappings (after an admin changes one).</summary>
    public void Invalidate() => _cache.Clear();

    /// <summary>
    /// The account a job of <paramref name="user"/> in <paramref name="project"/> runs as; null in single-user mode. Throws
    /// <see cref="JobStartRejectedException"/> with the reason when it has none it may run as.
    /// </summary>
    public async ValueTask<PosixIdentity?> ResolveAsync(string user, string project, CancellationToken ct)
    {
        if (!MultiUser)
        {
            return null;
        }

        var now = _time.GetUtcNow();
        if (_cache.TryGetValue((user, project), out var hit) && hit.Until > now)
        {
            return hit.Identity;
        }

        await using var db = _db.Create();
        var u = await db.Users.FindAsync([user], ct) ?? throw new JobStartRejectedException($"user {user} does not exist");
        var p = await db.Projects.FindAsync([project], ct) ?? throw new JobStartRejectedException($"project {project} does not exist");
        var account = await MapUserAsync(u, ct);
        var (group, gid) = await MapProjectAsync(p, ct);
        await db.SaveChangesAsync(ct);
        var identity = new PosixIdentity(account.Login, account.Uid, group, gid, account.Home);
        _cache[(user, project)] = (identity, now + CacheFor);
        return identity;
    }

    /// <summary>
    /// Resolves (and, when provisioning, creates) a user's account and records its uid on the row. Throws
    /// <see cref="JobStartRejectedException"/> naming what is wrong.
    /// </summary>
    public async Task<PosixUserEntry> MapUserAsync(UserRow row, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(row);
        var login = row.PosixName ?? PosixNames.Default(row.Name);
        var entry = _directory.FindUser(login);
        if (entry is null && Provisioning)
        {
            await _directory.CreateUserAsync(login, "GpuCommons user " + row.Name, ct);
            entry = _directory.FindUser(login);
        }

        if (entry is null)
        {
            throw new JobStartRejectedException(
                $"user {row.Name} has no POSIX account on this host: '{login}' does not exist (an admin maps one with 'gpuc users set {row.Name} --posix-name LOGIN')");
        }

        if (row.Uid is { } recorded && recorded != entry.Uid)
        {
            throw new JobStartRejectedException(
                $"account '{login}' of user {row.Name} now has uid {entry.Uid}, not {recorded} as recorded; an admin re-maps it with 'gpuc users set {row.Name} --posix-name {login}'");
        }

        CheckRunnable(row.Name, entry);
        row.PosixName ??= login;
        row.Uid ??= entry.Uid;
        return entry;
    }

    /// <summary>Resolves (and, when provisioning, creates) a project's group and records its gid on the row.</summary>
    public async Task<(string Group, int Gid)> MapProjectAsync(ProjectRow row, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(row);
        var group = row.PosixGroup ?? PosixNames.Default(row.Name);
        var gid = _directory.FindGroup(group);
        if (gid is null && Provisioning)
        {
            await _directory.CreateGroupAsync(group, ct);
            gid = _directory.FindGroup(group);
        }

        if (gid is null)
        {
            throw new JobStartRejectedException(
                $"project {row.Name} has no POSIX group on this host: '{group}' does not exist (an admin maps one with 'gpuc projects set {row.Name} --posix-group GROUP')");
        }

        if (row.Gid is { } recorded && recorded != gid)
        {
            throw new JobStartRejectedException($"group '{group}' of project {row.Name} now has gid {gid}, not {recorded} as recorded; an admin re-maps it");
        }

        if (gid < MinimumId)
        {
            throw new JobStartRejectedException($"project {row.Name} maps to group '{group}', gid {gid}: a system group (below {MinimumId}); jobs never run with it");
        }

        row.PosixGroup ??= group;
        row.Gid ??= gid;
        return (group, gid.Value);
    }

    private void CheckRunnable(string user, PosixUserEntry entry)
    {
        if (entry.Uid == 0)
        {
            throw new JobStartRejectedException($"user {user} maps to '{entry.Login}', uid 0: jobs never run as root");
        }

        if (entry.Uid == ServerUid)
        {
            throw new JobStartRejectedException($"user {user} maps to '{entry.Login}', the account the server runs as: jobs never run as the server");
        }

        if (entry.Uid < MinimumId)
        {
            throw new JobStartRejectedException($"user {user} maps to '{entry.Login}', uid {entry.Uid}: a system account (below {MinimumId}); jobs never run as one");
        }
    }

    /// <summary>Checks an admin's mapping of a user to a login before it is stored (400 naming the field otherwise).</summary>
    public async Task<PosixUserEntry> CheckLoginAsync(string user, string login, CancellationToken ct)
    {
        if (!PosixNames.IsValid(login))
        {
            throw Api.ApiException.Field("posixName", $"'{login}' is not a POSIX login name (lower-case letters, digits, '_' and '-', at most 32, starting with a letter or '_')");
        }

        var entry = _directory.FindUser(login);
        if (entry is null && Provisioning)
        {
            await _directory.CreateUserAsync(login, "GpuCommons user " + user, ct);
            entry = _directory.FindUser(login);
        }

        if (entry is null)
        {
            throw Api.ApiException.Field("posixName", $"no account '{login}' on this host (create it in the directory first, or start the server with --provision-accounts)");
        }

        try
        {
            CheckRunnable(user, entry);
        }
        catch (JobStartRejectedException e)
        {
            throw Api.ApiException.Field("posixName", e.Message);
        }

        return entry;
    }

    /// <summary>Checks an admin's mapping of a project to a group before it is stored.</summary>
    public async Task<int> CheckGroupAsync(string group, CancellationToken ct)
    {
        if (!PosixNames.IsValid(group))
        {
            throw Api.ApiException.Field("posixGroup", $"'{group}' is not a POSIX group name");
        }

        var gid = _directory.FindGroup(group);
        if (gid is null && Provisioning)
        {
            await _directory.CreateGroupAsync(group, ct);
            gid = _directory.FindGroup(group);
        }

        return gid switch
        {
            null => throw Api.ApiException.Field("posixGroup", $"no group '{group}' on this host (create it first, or start the server with --provision-accounts)"),
            var g when g < MinimumId => throw Api.ApiException.Field("posixGroup", $"'{group}' is gid {g}, a system group (below {MinimumId})"),
            var g => g.Value,
        };
    }

    /// <summary>
    /// Gives the demo tenancy accounts of its own when the server runs as root in multi-user mode: each demo user maps
    /// to <c>gpuc-NAME</c> and each demo project to the group <c>gpuc-NAME</c>, created when missing.
    /// </summary>
    internal async Task MapDemoAsync(IEnumerable<UserRow> users, IEnumerable<ProjectRow> projects, CancellationToken ct)
    {
        if (!MultiUser || ServerUid != 0)
        {
            return;
        }

        foreach (var u in users)
        {
            u.PosixName = "gpuc-" + u.Name;
            await _directory.CreateUserAsync(u.PosixName, "GpuCommons demo user " + u.Name, ct);
            u.Uid = _directory.FindUser(u.PosixName)?.Uid;
        }

        foreach (var p in projects)
        {
            p.PosixGroup = "gpuc-" + p.Name;
            await _directory.CreateGroupAsync(p.PosixGroup, ct);
            p.Gid = _directory.FindGroup(p.PosixGroup);
        }
    }

    /// <summary>Whether another user already holds this login (one account, one person).</summary>
    public static Task<bool> LoginTakenAsync(GpucDb db, string user, string login, CancellationToken ct) =>
        db.Users.AnyAsync(u => u.PosixName == login && u.Name != user, ct);
}

internal static partial class Posix
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint Geteuid();
}
