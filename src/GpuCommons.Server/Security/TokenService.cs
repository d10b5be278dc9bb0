using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Security;

/// <summary>
/// API tokens: random, shown once, stored only as SHA-256, with a scope, an optional expiry and the time of last use.
/// Resolved callers are cached until a change; an expired token or a disabled person resolves to nobody.
/// </summary>
public sealed class TokenService(GpucDbFactory db, TimeProvider time)
{
    /// <summary>The last use of a token is written at most this often.</summary>
    public static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<string, Entry> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, DateTimeOffset> _lastUsedWritten = new(StringComparer.Ordinal);
    private long _generation;

    private sealed record Entry(Caller? Caller, DateTimeOffset? Expires);

    public static string NewToken() => "gpuc_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>Forget cached callers (after a change of users, tokens or memberships).</summary>
    public void Invalidate()
    {
        Interlocked.Increment(ref _generation);
        _cache.Clear();
    }

    public async ValueTask<Caller?> ResolveAsync(string token, CancellationToken ct)
    {
        var hash = Hash(token);
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(hash, out var cached))
        {
            if (cached.Expires is { } e && e <= now)
            {
                return null;
            }

            if (cached.Caller is not null)
            {
                await TouchAsync(hash, now, ct);
            }

            return cached.Caller;
        }

        // A lookup that raced with a change (a revoked token, a removed member) is answered but not cached.
        var generation = Interlocked.Read(ref _generation);
        await using var ctx = db.Create();
        var row = await ctx.Tokens.AsNoTracking().FirstOrDefaultAsync(t => t.Hash == hash, ct);
        Caller? caller = null;
        if (row is not null && await ctx.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Name == row.User, ct) is { Disabled: null } user)
        {
            var projects = await ctx.Memberships.AsNoTracking().Where(m => m.User == user.Name).ToDictionaryAsync(m => m.Project, m => m.Role, StringComparer.Ordinal, ct);
            // A submit or read-only token of an admin, operator or reviewer acts with a member's powers only (read-only
            // keeps the role's reading).
            var role = row.Scope == TokenScopes.Submit ? Caller.UserRole : user.Role;
            caller = new Caller(user.Name, role, projects, row.Scope);
        }

        if (_cache.Count > 100_000)
        {
            _cache.Clear();
        }

        var entry = new Entry(caller, row?.Expires);
        if (Interlocked.Read(ref _generation) == generation)
        {
            _cache[hash] = entry;
            if (Interlocked.Read(ref _generation) != generation)
            {
                _cache.TryRemove(hash, out _);
            }
        }

        if (entry.Expires is { } expires && expires <= now)
        {
            return null;
        }

        if (caller is not null)
        {
            await TouchAsync(hash, now, ct, row!.LastUsed);
        }

        return caller;
    }

    /// <summary>Records the token's use, at most once per <see cref="LastUsedResolution"/>.</summary>
    private async ValueTask TouchAsync(string hash, DateTimeOffset now, CancellationToken ct, DateTimeOffset? stored = null)
    {
        if (stored is { } s)
        {
            _lastUsedWritten.TryAdd(hash, s);
        }

        if (_lastUsedWritten.TryGetValue(hash, out var last) && now - last < LastUsedResolution)
        {
            return;
        }

        _lastUsedWritten[hash] = now;
        if (_lastUsedWritten.Count > 100_000)
        {
            _lastUsedWritten.Clear();
        }

        await using var ctx = db.Create();
        await ctx.Tokens.Where(t => t.Hash == hash).ExecuteUpdateAsync(u => u.SetProperty(t => t.LastUsed, now), ct);
    }

    /// <summary>Creates a token for a user (the caller saves the context).</summary>
    public static string Issue(GpucDb ctx, string user, DateTimeOffset now, string kind = "api", string scope = TokenScopes.Admin, DateTimeOffset? expires = null,
        string? label = null)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var token = NewToken();
        ctx.Tokens.Add(new TokenRow { Hash = Hash(token), User = user, Created = now, Kind = kind, Scope = scope, Expires = expires, Label = label });
        return token;
    }
}
