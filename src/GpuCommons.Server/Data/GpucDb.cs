using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace GpuCommons.Server.Data;

/// <summary>The control plane's database. One subclass per provider so each has its own migrations.</summary>
public abstract class GpucDb(DbContextOptions options) : DbContext(options)
{
    public DbSet<OrganisationRow> Organisations => Set<OrganisationRow>();
    public DbSet<ProjectRow> Projects => Set<ProjectRow>();
    public DbSet<UserRow> Users => Set<UserRow>();
    public DbSet<TokenRow> Tokens => Set<TokenRow>();
    public DbSet<MembershipRow> Memberships => Set<MembershipRow>();
    public DbSet<AllocationRequestRow> AllocationRequests => Set<AllocationRequestRow>();
    public DbSet<AllocationRow> Allocations => Set<AllocationRow>();
    public DbSet<JobRow> Jobs => Set<JobRow>();
    public DbSet<LedgerRow> Ledger => Set<LedgerRow>();
    public DbSet<EventRow> Events => Set<EventRow>();
    public DbSet<NodeStateRow> NodeStates => Set<NodeStateRow>();
    public DbSet<ReservationRow> Reservations => Set<ReservationRow>();
    public DbSet<ServerStateRow> ServerState => Set<ServerStateRow>();
    public DbSet<DiscrepancyRow> Discrepancies => Set<DiscrepancyRow>();
    public DbSet<ExternalIdentityRow> ExternalIdentities => Set<ExternalIdentityRow>();
    public DbSet<EmailDomainRow> EmailDomains => Set<EmailDomainRow>();
    public DbSet<InvitationRow> Invitations => Set<InvitationRow>();
    public DbSet<SessionRow> Sessions => Set<SessionRow>();

    protected override void OnModelCreating(ModelBuilder b)
    {
        SessionRow.Configure(b);
        b.Entity<OrganisationRow>(e =>
        {
            e.ToTable("organisations");
            e.HasKey(x => x.Name);
            e.Property(x => x.Name).HasMaxLength(128);
            e.Property(x => x.Type).HasMaxLength(32);
        });
        b.Entity<ProjectRow>(e =>
        {
            e.ToTable("projects");
            e.HasKey(x => x.Name);
            e.Property(x => x.Name).HasMaxLength(128);
            e.Property(x => x.Organisation).HasMaxLength(128);
            e.Property(x => x.PosixGroup).HasMaxLength(32);
            e.HasIndex(x => x.Organisation);
        });
        b.Entity<UserRow>(e =>
        {
            e.ToTable("users");
            e.HasKey(x => x.Name);
            e.Property(x => x.Name).HasMaxLength(128);
            e.Property(x => x.PosixName).HasMaxLength(32);
            // One login belongs to one person: two users mapped to the same account could read each other's jobs.
            e.HasIndex(x => x.PosixName).IsUnique();
            e.Property(x => x.Email).HasMaxLength(320);
            e.HasIndex(x => x.Email);
        });
        b.Entity<TokenRow>(e =>
        {
            e.ToTable("tokens");
            e.HasKey(x => x.Hash);
            e.HasIndex(x => x.User);
            e.Property(x => x.Kind).HasMaxLength(16).HasDefaultValue("api");
            e.Property(x => x.Scope).HasMaxLength(16).HasDefaultValue("admin");
        });
        b.Entity<MembershipRow>(e =>
        {
            e.ToTable("memberships");
            e.HasKey(x => new { x.Project, x.User });
            e.HasIndex(x => x.User);
        });
        b.Entity<AllocationRequestRow>(e =>
        {
            e.ToTable("allocation_requests");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Project);
        });
        b.Entity<AllocationRow>(e =>
        {
            e.ToTable("allocations");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Project);
            e.Ignore(x => x.ReleasedGpuHours);
        });
        b.Entity<JobRow>(e =>
        {
            e.ToTable("jobs");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).ValueGeneratedNever();
            // The state is stored as its wire name, the text earlier releases wrote and read: no migration, and a server of
            // the previous release can share the database.
            e.Property(x => x.State).HasConversion(JobStateColumn.Converter);
            // Keyset pages: by id within a state, and by id within a project.
            e.HasIndex(x => new { x.State, x.Id });
            e.HasIndex(x => new { x.Project, x.Id });
            e.HasIndex(x => new { x.Project, x.State, x.Id });
            e.HasIndex(x => new { x.User, x.IdempotencyKey }).IsUnique();
            // An array's tasks, each index once (a task is never expanded, run or charged twice).
            e.HasIndex(x => new { x.ArrayJobId, x.ArrayTaskId }).IsUnique();
        });
        b.Entity<LedgerRow>(e =>
        {
            e.ToTable("ledger");
            e.HasKey(x => x.Id);
            // Nothing is charged twice: one entry per job attempt, enforced by the database.
            e.HasIndex(x => new { x.JobId, x.Attempt }).IsUnique();
            e.HasIndex(x => x.AllocationId);
            e.Property(x => x.Amount).HasPrecision(20, 4);
            e.Property(x => x.Payable).HasPrecision(20, 4);
        });
        b.Entity<EventRow>(e =>
        {
            e.ToTable("events");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Kind);
        });
        b.Entity<NodeStateRow>(e =>
        {
            e.ToTable("node_states");
            e.HasKey(x => x.Node);
        });
        b.Entity<ReservationRow>(e =>
        {
            e.ToTable("reservations");
            e.HasKey(x => x.Name);
        });
        b.Entity<ServerStateRow>(e =>
        {
            e.ToTable("server_state");
            e.HasKey(x => x.Key);
            e.Property(x => x.Key).HasMaxLength(128);
        });
        b.Entity<DiscrepancyRow>(e =>
        {
            e.ToTable("discrepancies");
            e.HasKey(x => x.Id);
            e.Property(x => x.Key).HasMaxLength(512);
            e.Property(x => x.Kind).HasMaxLength(32);
            // Open ones by key (every pass), and the newest first for the operator view.
            e.HasIndex(x => new { x.Resolved, x.Key });
            e.HasIndex(x => x.LastSeen);
        });
        IdentityModel.Configure(b);
        RoundModel.Configure(b);
    }
}

public sealed class SqliteGpucDb(DbContextOptions<SqliteGpucDb> options) : GpucDb(options)
{
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // SQLite has no DateTimeOffset type: store UTC ticks so values sort and compare.
        configurationBuilder.Properties<DateTimeOffset>().HaveConversion<DateTimeOffsetTicksConverter>();
        configurationBuilder.Properties<decimal>().HaveConversion<double>();
    }
}

public sealed class PostgresGpucDb(DbContextOptions<PostgresGpucDb> options) : GpucDb(options);

internal sealed class DateTimeOffsetTicksConverter() : Microsoft.EntityFrameworkCore.Storage.ValueConversion.ValueConverter<DateTimeOffset, long>(
    v => v.UtcTicks,
    v => new DateTimeOffset(v, TimeSpan.Zero));

/// <summary>Durable SQLite: WAL with a full sync on every commit, and a busy timeout instead of failing on a lock.</summary>
internal sealed class SqlitePragmas : DbConnectionInterceptor
{
    public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData) => Apply(connection);

    public override Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Apply(connection);
        return Task.CompletedTask;
    }

    private static void Apply(DbConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;";
        cmd.ExecuteNonQuery();
    }
}

/// <summary>Creates a database context for the configured provider.</summary>
public sealed class GpucDbFactory
{
    private readonly DbContextOptions<SqliteGpucDb>? _sqlite;
    private DbContextOptions<PostgresGpucDb>? _postgres;

    public GpucDbFactory(string provider, string connectionString)
    {
        Provider = provider;
        ConnectionString = connectionString;
        if (provider == "postgres")
        {
            _postgres = PostgresOptions(connectionString);
        }
        else
        {
            _sqlite = new DbContextOptionsBuilder<SqliteGpucDb>()
                .UseSqlite(connectionString)
                .AddInterceptors(new SqlitePragmas())
                .Options;
        }
    }

    /// <summary>The connection string as given (without a leader's fencing epoch).</summary>
    public string ConnectionString { get; }

    /// <summary>
    /// PostgreSQL: from now on contexts connect with <paramref name="connectionString"/> (a leader's, carrying its fencing
    /// epoch: Leadership/FenceSql.cs).
    /// </summary>
    public void UseConnectionString(string connectionString)
    {
        if (_postgres is null)
        {
            throw new InvalidOperationException("only PostgreSQL connections are fenced");
        }

        _postgres = PostgresOptions(connectionString);
    }

    private static DbContextOptions<PostgresGpucDb> PostgresOptions(string connectionString)
    {
        // Statements the server repeats (a group of submissions, a job's end) are prepared once per connection,
        // unless the connection string says otherwise.
        var csb = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString }.Keys.Cast<string>();
        if (!given.Any(k => k.Replace(" ", "", StringComparison.Ordinal).Equals("MaxAutoPrepare", StringComparison.OrdinalIgnoreCase)))
        {
            csb.MaxAutoPrepare = 64;
        }

        return new DbContextOptionsBuilder<PostgresGpucDb>()
            .UseNpgsql(csb.ConnectionString, o => o.MigrationsAssembly(typeof(GpucDb).Assembly.FullName))
            .Options;
    }

    public string Provider { get; }

    public GpucDb Create() => _postgres is not null ? new PostgresGpucDb(_postgres) : new SqliteGpucDb(_sqlite!);

    /// <summary>Applies the provider's migrations.</summary>
    public async Task MigrateAsync(CancellationToken cancellationToken)
    {
        await using var db = Create();
        await db.Database.MigrateAsync(cancellationToken);
    }
}

internal sealed class SqliteDesignFactory : IDesignTimeDbContextFactory<SqliteGpucDb>
{
    public SqliteGpucDb CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SqliteGpucDb>().UseSqlite("Data Source=design.db").Options);
}

internal sealed class PostgresDesignFactory : IDesignTimeDbContextFactory<PostgresGpucDb>
{
    public PostgresGpucDb CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<PostgresGpucDb>().UseNpgsql("Host=127.0.0.1;Database=design;Username=app;Password=app").Options);
}
