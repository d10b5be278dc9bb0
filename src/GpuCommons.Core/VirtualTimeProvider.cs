namespace GpuCommons.Core;

/// <summary>
/// A clock that only moves when told to: the simulator's virtual time and the benchmarks' deterministic time.
/// Timers are not supported; the simulator drives time by its own event queue.
/// </summary>
public sealed class VirtualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    /// <summary>The virtual now: where the clock was last set.</summary>
    public override DateTimeOffset GetUtcNow() => _now;

    /// <summary>UTC, whatever the machine's time zone.</summary>
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    /// <summary>Moves the clock to <paramref name="time"/>; it never goes back.</summary>
    public void SetUtcNow(DateTimeOffset time)
    {
        if (time < _now)
        {
            throw new ArgumentOutOfRangeException(nameof(time), $"virtual time cannot go back from {_now:o} to {time:o}");
        }

        _now = time;
    }

    /// <summary>Moves the clock forward by <paramref name="by"/>; a negative span is refused as in <see cref="SetUtcNow"/>.</summary>
    public void Advance(TimeSpan by) => SetUtcNow(_now + by);
}
