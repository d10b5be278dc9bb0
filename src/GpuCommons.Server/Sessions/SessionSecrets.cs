using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace GpuCommons.Server.Sessions;

/// <summary>
/// The secret a session job shares with the server: HMAC-SHA256 of the job id and attempt under the server's session key
/// (<c>DATA/session-key</c>, 32 random bytes, 0600). Nothing secret is stored in the database: the job gets it in its
/// environment at start, uses it once to report where it listens and as its Jupyter token, and the portal's proxy
/// derives it again to authenticate to that Jupyter. A new attempt (a requeue) gets a new secret.
/// </summary>
public sealed class SessionSecrets
{
    private readonly byte[] _key;

    public SessionSecrets(ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var path = Path.Combine(options.DataDir, "session-key");
        if (!File.Exists(path))
        {
            var fresh = RandomNumberGenerator.GetBytes(32);
            var tmp = path + ".tmp";
            var create = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var f = new FileStream(tmp, create))
            {
                f.Write(fresh);
            }

            try
            {
                File.Move(tmp, path); // never overwrites: a server that raced us keeps its key
            }
            catch (IOException)
            {
                File.Delete(tmp);
            }
        }

        _key = File.ReadAllBytes(path);
        if (_key.Length < 32)
        {
            throw new InvalidOperationException($"{path} holds {_key.Length} bytes; a session key has 32. Delete it to make a new one (running sessions then need a restart).");
        }
    }

    /// <summary>The secret of one run of a session job (URL-safe base64, 43 characters).</summary>
    public string Secret(long jobId, int attempt)
    {
        var mac = HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"gpuc-session:{jobId}:{attempt}")));
        return Convert.ToBase64String(mac).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>Whether <paramref name="presented"/> is the secret of that run (constant time).</summary>
    public bool Matches(long jobId, int attempt, string presented) =>
        CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(Secret(jobId, attempt)), Encoding.UTF8.GetBytes(presented ?? ""));

    /// <summary>SHA-256 (hex) of a secret: what the database keeps.</summary>
    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));
}
