using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Data;

/// <summary>
/// An interactive session (a Jupyter server) running as a job. Its id is the job's id. The job reports where it listens
/// once (<see cref="Host"/>, <see cref="Port"/>); the secret the job and the portal's proxy share is never stored: both
/// derive it from the server's session key (see <c>SessionSecrets</c>), and only its hash is kept, to tell which run reported.
/// </summary>
public sealed class SessionRow
{
    public long JobId { get; set; }
    /// <summary><c>jupyter</c>.</summary>
    public required string Kind { get; set; }
    public required string User { get; set; }
    public required string Project { get; set; }
    public DateTimeOffset Created { get; set; }
    /// <summary>Where the session listens, as its job reported it (null until then).</summary>
    public string? Host { get; set; }
    public int? Port { get; set; }
    /// <summary>SHA-256 (hex) of the secret that reported, for the attempt that reported.</summary>
    public string? SecretHash { get; set; }
    public int? ReportedAttempt { get; set; }
    public DateTimeOffset? ReadyAt { get; set; }
    /// <summary>The last kernel activity seen (Jupyter's /api/status), for idle stopping.</summary>
    public DateTimeOffset? LastActivity { get; set; }
    /// <summary>When the session was stopped for being idle.</summary>
    public DateTimeOffset? IdleStoppedAt { get; set; }

    internal static void Configure(ModelBuilder b) => b.Entity<SessionRow>(e =>
    {
        e.ToTable("sessions");
        e.HasKey(x => x.JobId);
        e.Property(x => x.JobId).ValueGeneratedNever();
        e.Property(x => x.Kind).HasMaxLength(32);
        e.Property(x => x.User).HasMaxLength(200);
        e.Property(x => x.Project).HasMaxLength(200);
        e.Property(x => x.Host).HasMaxLength(255);
        e.Property(x => x.SecretHash).HasMaxLength(64);
        e.HasIndex(x => x.User);
    });
}
