namespace GpuCommons.Server.Leadership;

/// <summary>
/// Who leads. Only the leader runs the engine, starts, cancels, reconciles and charges; a standby serves reads from the
/// database and takes submissions into it. With SQLite there is one server and it always leads (epoch 0).
/// </summary>
public interface ILeadership
{
    /// <summary>True where several servers share the database (PostgreSQL) and a lease decides who leads.</summary>
    bool MultiInstance { get; }

    /// <summary>This server holds the lease now.</summary>
    bool IsLeader { get; }

    /// <summary>This server's fencing epoch while it leads (0: never led, or single-instance).</summary>
    long Epoch { get; }

    /// <summary>
    /// The lease is held and, by this machine's monotonic clock, unexpired with the safety margin to spare: the check made
    /// before every backend start and cancel.
    /// </summary>
    bool IsLeaseValidLocally { get; }

    /// <summary>The current leader's URL as last read from the lease (null: unknown or none).</summary>
    string? LeaderUrl { get; }

    /// <summary>The lease's epoch as last read (this server's own while it leads).</summary>
    long ObservedEpoch { get; }

    /// <summary>Seconds since the current leader took the lease, as last seen (null: no leader seen).</summary>
    double? SecondsSinceTakeover { get; }

    /// <summary>Takeovers by this server since it started.</summary>
    int Takeovers { get; }

    /// <summary>Fires when this server's leadership ends (never for a single instance).</summary>
    CancellationToken Lost { get; }

    /// <summary>This server led and lost the lease: it has stopped acting and is stepping down.</summary>
    bool SteppedDown { get; }

    /// <summary>Completes when this server becomes the leader.</summary>
    Task WaitForLeadershipAsync(CancellationToken cancellationToken);
}
