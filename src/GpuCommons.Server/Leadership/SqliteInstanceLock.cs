using Microsoft.Data.Sqlite;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// SQLite is single-instance: one server per database file. A second <c>gpuc serve</c> on the same file would run a
/// second scheduler over the same jobs (two starts of one job, two charges), so it is refused at start with a message.
/// The lock is an exclusive open of <c>FILE.server-lock</c>, released by the kernel when the process ends (kill -9 too).
/// Leaders and standbys need PostgreSQL.
/// </summary>
public sealed class SqliteInstanceLock : IDisposable
{
    private readonly FileStream? _stream;

    private SqliteInstanceLock(FileStream? stream) => _stream = stream;

    public static SqliteInstanceLock Acquire(string connectionString)
    {
        var csb = new SqliteConnectionStringBuilder(connectionString);
        if (csb.Mode == SqliteOpenMode.Memory || csb.DataSource is "" or ":memory:")
        {
            return new SqliteInstanceLock(null);
        }

        var path = Path.GetFullPath(csb.DataSource) + ".server-lock";
        try
        {
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            stream.SetLength(0);
            stream.Write(System.Text.Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n"));
            stream.Flush();
            return new SqliteInstanceLock(stream);
        }
        catch (IOException e)
        {
            var holder = "";
            try
            {
                using var read = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                holder = new StreamReader(read).ReadToEnd().Trim();
            }
            catch (IOException)
            {
            }

            throw new InvalidOperationException(
                $"another gpuc server{(holder.Length > 0 ? $" (pid {holder})" : "")} already uses the SQLite database {csb.DataSource}: SQLite is single-instance, one server per database. " +
                "For a leader with standbys, run every server on one PostgreSQL database (--db postgres --connection ...).", e);
        }
    }

    public void Dispose() => _stream?.Dispose();
}
