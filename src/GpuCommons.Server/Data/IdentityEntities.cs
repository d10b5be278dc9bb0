using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Data;

// Sign-in with the researcher's institution (docs/sign-in.md): who an issuer's subject is here, which organisation an
// email domain belongs to, and invitations by email accepted at first sign-in.

/// <summary>A person's identity at an OpenID Connect issuer: (issuer, subject) is theirs alone, for good.</summary>
public sealed class ExternalIdentityRow
{
    /// <summary>The issuer's URL, exactly as its ID tokens name it (<c>iss</c>).</summary>
    public required string Issuer { get; set; }
    /// <summary>The subject (<c>sub</c>) the issuer gives the person.</summary>
    public required string Subject { get; set; }
    public required string User { get; set; }
    public string? Email { get; set; }
    public DateTimeOffset FirstSeen { get; set; }
    public DateTimeOffset LastSeen { get; set; }
}

/// <summary>An email domain whose people belong to an organisation (kept by admins).</summary>
public sealed class EmailDomainRow
{
    /// <summary>Lower-case domain, such as <c>uni-a.ac.kr</c>; it also covers its subdomains.</summary>
    public required string Domain { get; set; }
    public required string Organisation { get; set; }
    public DateTimeOffset Created { get; set; }
}

/// <summary>A PI's invitation of a person, by email, into a project; accepted when that address first signs in.</summary>
public sealed class InvitationRow
{
    public long Id { get; set; }
    /// <summary>Lower-case email address.</summary>
    public required string Email { get; set; }
    public required string Project { get; set; }
    /// <summary>pi or member.</summary>
    public required string Role { get; set; }
    public required string InvitedBy { get; set; }
    public DateTimeOffset Created { get; set; }
    public DateTimeOffset Expires { get; set; }
    /// <summary>The user who accepted it (null: open).</summary>
    public string? AcceptedBy { get; set; }
    public DateTimeOffset? Accepted { get; set; }
}

internal static class IdentityModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<ExternalIdentityRow>(e =>
        {
            e.ToTable("external_identities");
            e.HasKey(x => new { x.Issuer, x.Subject });
            e.Property(x => x.Issuer).HasMaxLength(512);
            e.Property(x => x.Subject).HasMaxLength(255);
            e.Property(x => x.User).HasMaxLength(128);
            e.HasIndex(x => x.User);
        });
        b.Entity<EmailDomainRow>(e =>
        {
            e.ToTable("email_domains");
            e.HasKey(x => x.Domain);
            e.Property(x => x.Domain).HasMaxLength(255);
            e.Property(x => x.Organisation).HasMaxLength(128);
        });
        b.Entity<InvitationRow>(e =>
        {
            e.ToTable("invitations");
            e.HasKey(x => x.Id);
            e.Property(x => x.Email).HasMaxLength(320);
            e.HasIndex(x => x.Email);
            e.HasIndex(x => x.Project);
        });
    }
}
