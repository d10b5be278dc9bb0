using System.ComponentModel.DataAnnotations;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// Timings of the leader lease (PostgreSQL only; SQLite is single-instance). A standby takes over at most
/// <see cref="LeaseDuration"/> + <see cref="RetryInterval"/> after the leader's last renewal, plus the engine's rebuild:
/// with the defaults, about 5.5 s + the rebuild, inside the 10 s target.
/// </summary>
public sealed class LeadershipOptions
{
    /// <summary>How long a renewal holds the lease, by the database's clock. Default 5 s.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Time between renewals by the leader. Default 1.5 s (three tries inside one lease).</summary>
    public TimeSpan RenewInterval { get; set; } = TimeSpan.FromMilliseconds(1500);

    /// <summary>Time between a standby's tries to take the lease. Default 0.5 s.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The leader stops acting (no backend start or cancel) this long before its lease ends by its own clock, measured from
    /// when the renewal was sent: room for clock-rate drift between machines and the renewal's flight. Default 1 s.
    /// </summary>
    public TimeSpan SafetyMargin { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a standby waits for the leader to take a submission before answering 202 instead of 201. Default 5 s.</summary>
    public TimeSpan StandbySubmitWait { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The leader looks for submissions taken by standbys this often even without a notification. Default 1 s.</summary>
    public TimeSpan InboxPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The leader deletes inbox rows it took this long ago (the job itself holds the idempotency key, so a retry after that
    /// still replays it): the inbox holds open rows and the last few minutes of taken ones, never more. Default 2 min; it
    /// must outlast <see cref="StandbySubmitWait"/>.
    /// </summary>
    public TimeSpan InboxRetention { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The URL other servers use to reach this one (standbys forward what they cannot serve to the leader's). Default: the
    /// first <c>--urls</c> entry.
    /// </summary>
    public string? AdvertiseUrl { get; set; }

    /// <summary>Postgres kills a leader's session idle inside a transaction this long (a paused leader cannot hold the fence). Default 3 s.</summary>
    [Range(typeof(TimeSpan), "00:00:00.1", "01:00:00")]
    public TimeSpan IdleInTransactionTimeout { get; set; } = TimeSpan.FromSeconds(3);

    public void Validate()
    {
        if (LeaseDuration <= TimeSpan.Zero || RenewInterval <= TimeSpan.Zero || RetryInterval <= TimeSpan.Zero || SafetyMargin < TimeSpan.Zero)
        {
            throw new ArgumentException("leadership: lease, renew and retry intervals must be positive", nameof(LeaseDuration));
        }

        if (RenewInterval >= LeaseDuration - SafetyMargin)
        {
            throw new ArgumentException(
                $"leadership: the renew interval ({RenewInterval.TotalSeconds} s) must be shorter than the lease ({LeaseDuration.TotalSeconds} s) less the safety margin ({SafetyMargin.TotalSeconds} s)",
                nameof(RenewInterval));
        }

        if (InboxRetention <= StandbySubmitWait)
        {
            throw new ArgumentException(
                $"leadership: the inbox retention ({InboxRetention.TotalSeconds} s) must be longer than a standby's wait for the leader ({StandbySubmitWait.TotalSeconds} s)",
                nameof(InboxRetention));
        }
    }
}
