using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Security;

/// <summary>API tokens: random, shown once, stored only as SHA-256. Resolved callers are cached until a change.</summary>
public sealed class TokenService(GpucDbFactory db)
{
    private readonly ConcurrentDictionary<string, Caller?> _cache = new(StringComparer.Ordinal);
    private long _generation;

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
        if (_cache.TryGetValue(hash, out var cached))
        {
            return cached;
        }

        // A lookup that raced with a change (a revoked token, a removed member) is answered but not cached.
        var generation = Interlocked.Read(ref _generation);
        await using var ctx = db.Create();
        var row = await ctx.Tokens.AsNoTracking().FirstOrDefaultAsync(t => t.Hash == hash, ct);
        Caller? caller = null;
        if (row is not null && await ctx.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Name == row.User, ct) is { } user)
        {
            var projects = await ctx.Memberships.AsNoTracking().Where(m => m.User == user.Name).ToDictionaryAsync(m => m.Project, m => m.Role, StringComparer.Ordinal, ct);
            caller = new Caller(user.Name, user.Role, projects);
        }

        if (_cache.Count > 100_000)
        {
            _cache.Clear();
        }

        if (Interlocked.Read(ref _generation) == generation)
        {
            _cache[hash] = caller;
            if (Interlocked.Read(ref _generation) != generation)
            {
                _cache.TryRemove(hash, out _);
            }
        }

        return caller;
    }

    /// <summary>Creates a token for a user (the caller saves the context).</summary>
    public static string Issue(GpucDb ctx, string user, DateTimeOffset now)
    {
        var token = NewToken();
        ctx.Tokens.Add(new TokenRow { Hash = Hash(token), User = user, Created = now });
        return token;
    }
}
