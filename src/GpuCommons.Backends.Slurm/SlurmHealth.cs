namespace GpuCommons.Backends.Slurm;

/// <summary>
/// Whether slurmctld answers, and how fast: consecutive failures drive an exponential back-off so that a down
/// controller is not hammered, and the first success after an outage resets it. Thread-safe.
/// </summary>
public sealed class SlurmHealth
{
    private readonly SlurmBackendOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private int _failures;
    private DateTimeOffset _nextAttempt;

    internal SlurmHealth(SlurmBackendOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
    }

    /// <summary>Failures in a row (0 when the last command reached Slurm).</summary>
    public int ConsecutiveFailures
    {
        get { lock (_lock) { return _failures; } }
    }

    public bool Available => ConsecutiveFailures == 0;

    public DateTimeOffset? LastSuccess { get; private set; }
    public DateTimeOffset? LastFailure { get; private set; }
    public string? LastError { get; private set; }
    public TimeSpan LastLatency { get; private set; }
    public string? LastSlowCommand { get; private set; }

    /// <summary>Outages seen since start (a run of failures counts once).</summary>
    public int Outages { get; private set; }

    /// <summary>When the next call may go to Slurm while backing off.</summary>
    public DateTimeOffset NextAttempt
    {
        get { lock (_lock) { return _nextAttempt; } }
    }

    /// <summary>False while backing off after failures.</summary>
    public bool MayTry() => _time.GetUtcNow() >= NextAttempt;

    internal void Success(TimeSpan latency, string command)
    {
        lock (_lock)
        {
            _failures = 0;
            _nextAttempt = default;
            LastSuccess = _time.GetUtcNow();
            LastLatency = latency;
            if (latency >= _options.SlowCommandThreshold)
            {
                LastSlowCommand = command;
            }
        }
    }

    internal void Failure(string error)
    {
        lock (_lock)
        {
            if (_failures == 0)
            {
                Outages++;
            }

            _failures++;
            var factor = Math.Pow(2, Math.Min(_failures - 1, 20));
            var wait = TimeSpan.FromTicks((long)Math.Min(_options.MaxBackoff.Ticks, _options.InitialBackoff.Ticks * factor));
            LastFailure = _time.GetUtcNow();
            _nextAttempt = LastFailure.Value + wait;
            LastError = error;
        }
    }

    /// <summary>Clears the slow-command marker once it has been reported.</summary>
    internal string? TakeSlowCommand()
    {
        lock (_lock)
        {
            var s = LastSlowCommand;
            LastSlowCommand = null;
            return s;
        }
    }
}
