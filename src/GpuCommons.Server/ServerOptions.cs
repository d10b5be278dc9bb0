using System.ComponentModel.DataAnnotations;

namespace GpuCommons.Server;

/// <summary>Settings of one control-plane server. Each default is documented; <see cref="Validate"/> runs at start.</summary>
public sealed class ServerOptions
{
    /// <summary>Directory for the SQLite file, job logs and the admin token. Default: <c>./gpuc-data</c>.</summary>
    public string DataDir { get; set; } = "gpuc-data";

    /// <summary><c>sqlite</c> (default) or <c>postgres</c>.</summary>
    public string Provider { get; set; } = "sqlite";

    /// <summary>Connection string; default: a SQLite file <c>gpuc.db</c> in <see cref="DataDir"/>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Charge per GPU-hour for partitions discovered from a backend. Default 1,000.</summary>
    [Range(0, 1e9)]
    public decimal RatePerGpuHour { get; set; } = 1000;

    /// <summary>Longest walltime a job may ask for. Default 7 days.</summary>
    public TimeSpan MaxWalltime { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Time between full scheduling cycles. Default 2 s.</summary>
    public TimeSpan FullCycleInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Time between polls of the backend for job events. Default 100 ms.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Time between reconciliation passes with the backend, when it has a reconciler (Slurm). Longer while the cluster
    /// manager does not answer (its back-off). Default 60 s.
    /// </summary>
    public TimeSpan ReconcileInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Whether a live backend job named like ours is cancelled when the database proves it is a leftover: the job exists,
    /// and is ended or runs a later attempt, and two passes in a row saw it. Jobs with ids the database does not have
    /// are only reported. Default true.
    /// </summary>
    public bool CancelStrayBackendJobs { get; set; } = true;

    /// <summary>
    /// First wait before a start that failed in the infrastructure (not in the job) is tried again; it doubles up to
    /// <see cref="StartRetryMax"/>. Default 2 s.
    /// </summary>
    public TimeSpan StartRetryMin { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest wait between tries of a failed start. Default 5 min.</summary>
    public TimeSpan StartRetryMax { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Tries of a start that keeps failing in the infrastructure before the job fails. Default 5.</summary>
    [Range(1, 1000)]
    public int MaxStartTries { get; set; } = 5;

    /// <summary>
    /// Backend starts in flight at once, called off the scheduler loop (a wave of starts on Slurm is that many sbatch at a
    /// time). Default: the machine's core count, at least 2 and at most 8, so that on a small control plane a wave of
    /// starts leaves CPU for the API and the loop (docs/server.md has the figures).
    /// </summary>
    [Range(1, 1024)]
    public int MaxConcurrentStarts { get; set; } = DefaultConcurrentStarts;

    /// <summary>The default of <see cref="MaxConcurrentStarts"/> on this machine.</summary>
    public static int DefaultConcurrentStarts => Math.Clamp(Environment.ProcessorCount, 2, 8);

    /// <summary>Grace between the stop signal and the kill when cancelling. Default 10 s.</summary>
    public TimeSpan CancelGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Warn this long before an allocation expires. Default 7 days.</summary>
    public TimeSpan ExpiryWarning { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Where allocation alerts are POSTed as JSON; null: events only. Delivery is at least once: a failed POST is
    /// retried with exponential back-off, across restarts, and each alert carries its event id for deduplication.
    /// </summary>
    public string? WebhookUrl { get; set; }

    /// <summary>First wait before retrying a failed webhook POST; it doubles up to <see cref="WebhookRetryMax"/>. Default 2 s.</summary>
    public TimeSpan WebhookRetryMin { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest wait between webhook retries. Default 5 min.</summary>
    public TimeSpan WebhookRetryMax { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Largest request body accepted by the API. Default 256 KiB.</summary>
    [Range(1024, 64 * 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 256 * 1024;

    /// <summary>Largest page of a list. Default 1,000 (default page 100).</summary>
    [Range(1, 100_000)]
    public int MaxPageSize { get; set; } = 1000;

    /// <summary>Most submissions written in one transaction (group commit). Default 2,048.</summary>
    [Range(1, 100_000)]
    public int MaxSubmitBatch { get; set; } = 2048;

    /// <summary>
    /// Pending tasks of one job array the engine holds at once (more are expanded as these start); with the array's
    /// <c>%N</c> the lower bound applies. Default 16.
    /// </summary>
    public int ArrayPendingWindow { get; set; } = 16;

    /// <summary>Tasks one array may have. Default 1,000,000 (Slurm's MaxArraySize is 1001 by default, at most 4,000,001).</summary>
    public long MaxArrayTasks { get; set; } = 1_000_000;

    /// <summary>Seed a demo tenancy (organisations, projects, users, an allocation) into an empty database. Default true.</summary>
    public bool SeedDemo { get; set; } = true;

    /// <summary>
    /// Whose account jobs run as: <see cref="AccountMode.Auto"/> (default) is multi-user when the server runs as root,
    /// single-user otherwise (docs/accounts.md).
    /// </summary>
    public Security.AccountMode Accounts { get; set; } = Security.AccountMode.Auto;

    /// <summary>Create missing local accounts and groups with useradd/groupadd when a user or project is mapped or first runs a job (root only). Default false.</summary>
    public bool ProvisionAccounts { get; set; }

    /// <summary>The lowest uid and gid a job may run with; system accounts and groups sit below. Default 1,000 (Debian's UID_MIN).</summary>
    [Range(1, int.MaxValue)]
    public int MinimumPosixId { get; set; } = 1000;

    /// <summary>Sign-in with OpenID Connect issuers and the lifetimes of sign-in tokens (docs/sign-in.md).</summary>
    public Security.SignInOptions SignIn { get; set; } = new();

    /// <summary>The leader lease's timings and a standby's behaviour (PostgreSQL only).</summary>
    public Leadership.LeadershipOptions Leadership { get; set; } = new();

    /// <summary>
    /// Registries container images may come from (host names, e.g. <c>registry.example.org</c>; <c>docker.io</c> for
    /// Docker Hub's short names). Local images (<c>localhost/…</c>, <c>oci-archive:/…</c>, <c>oci:/…</c>) are always
    /// allowed. <value>Default: none (local images only).</value>
    /// </summary>
    public IList<string> ContainerRegistries { get; } = [];

    /// <summary>A notebook session whose kernels have been idle this long is stopped, so its GPUs go back to the queue. <value>Default 1 hour.</value></summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How often sessions are asked for their last activity. <value>Default 30 s.</value></summary>
    public TimeSpan SessionIdleCheckInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The URL a session job reports back to (<c>POST {url}/api/sessions/ID/ready</c>). <value>Default: the server's first
    /// listening address (0.0.0.0 and [::] read as loopback), which suits the local backend; set it for Slurm nodes.</value>
    /// </summary>
    public string? SessionCallbackUrl { get; set; }

    public string LogDirectory => Path.Combine(DataDir, "logs");

    public string ResolveConnectionString() =>
        ConnectionString ?? $"Data Source={Path.Combine(DataDir, "gpuc.db")};Pooling=True";

    public void Validate()
    {
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(this, new ValidationContext(this), results, true))
        {
            throw new ArgumentException(results[0].ErrorMessage, results[0].MemberNames.FirstOrDefault());
        }

        SignIn.Validate();
        Leadership.Validate();
        if (Provider is not ("sqlite" or "postgres"))
        {
            throw new ArgumentException($"provider must be sqlite or postgres, got '{Provider}'", nameof(Provider));
        }

        if (Provider == "postgres" && string.IsNullOrWhiteSpace(ConnectionString))
        {
            throw new ArgumentException("postgres needs a connection string", nameof(ConnectionString));
        }

        if (ConnectionString is { } cs)
        {
            try
            {
                _ = Provider == "postgres"
                    ? new Npgsql.NpgsqlConnectionStringBuilder(cs).ConnectionString
                    : new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(cs).ConnectionString;
            }
            catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException)
            {
                throw new ArgumentException($"connection string is not one for {Provider}: {e.Message}", nameof(ConnectionString), e);
            }
        }
    }
}
