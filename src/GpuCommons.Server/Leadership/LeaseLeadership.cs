using GpuCommons.Server.Data;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// Runs the lease (PostgreSQL): a standby tries to take it every <see cref="LeadershipOptions.RetryInterval"/>; the leader
/// renews it every <see cref="LeadershipOptions.RenewInterval"/>. Taking it switches the server's database connections to
/// ones carrying the new epoch (every write fenced) and lets <see cref="LeaderGate"/> start the leader's work. Losing it
/// (a renewal finds another epoch, or none succeeds before the lease ends by this machine's clock) fires
/// <see cref="Lost"/> at once and stops the application: <c>gpuc serve</c> starts again as a standby with fresh state.
/// </summary>
public sealed partial class LeaseLeadership : BackgroundService, ILeadership
{
    private readonly LeadershipOptions _options;
    private readonly GpucDbFactory _factory;
    private readonly TimeProvider _time;
    private readonly ILogger<LeaseLeadership> _log;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly NpgsqlDataSource _db;
    private readonly LeaderLease _lease;
    private readonly CancellationTokenSource _lost = new();
    private readonly TaskCompletionSource _led = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _leader;
    private volatile bool _steppedDown;
    private long _epoch;
    private long _observedEpoch;
    private long _validUntil; // monotonic timestamp: the lease ends (less the margin) by this machine's clock
    private volatile string? _leaderUrl;
    private double? _sinceTakeoverAtRead;
    private long _readAt;
    private int _takeovers;

    public LeaseLeadership(ServerOptions options, GpucDbFactory factory, TimeProvider time, ILogger<LeaseLeadership> log, IHostApplicationLifetime lifetime)
    {
        _options = options.Leadership;
        _factory = factory;
        _time = time;
        _log = log;
        _lifetime = lifetime;
        var csb = new NpgsqlConnectionStringBuilder(factory.ConnectionString) { CommandTimeout = Math.Max(1, (int)_options.LeaseDuration.TotalSeconds) };
        _db = NpgsqlDataSource.Create(csb.ConnectionString);
        Holder = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";
        _lease = new LeaderLease(_db, Holder, _options.AdvertiseUrl);
    }

    /// <summary>Who this server is in the lease row: host/pid/random.</summary>
    public string Holder { get; }

    public bool MultiInstance => true;
    public bool IsLeader => _leader;
    public long Epoch => Interlocked.Read(ref _epoch);
    public bool IsLeaseValidLocally => _leader && _time.GetTimestamp() < Interlocked.Read(ref _validUntil);
    public string? LeaderUrl => _leader ? _options.AdvertiseUrl : _leaderUrl;
    public long ObservedEpoch => Interlocked.Read(ref _observedEpoch);
    public double? SecondsSinceTakeover => _sinceTakeoverAtRead is { } s ? s + _time.GetElapsedTime(_readAt).TotalSeconds : null;
    public int Takeovers => _takeovers;
    public CancellationToken Lost => _lost.Token;
    public bool SteppedDown => _steppedDown;

    public Task WaitForLeadershipAsync(CancellationToken cancellationToken) => _led.Task.WaitAsync(cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        LogStandby(Holder, _options.LeaseDuration.TotalSeconds, _options.RenewInterval.TotalSeconds);
        while (!stoppingToken.IsCancellationRequested && !_steppedDown)
        {
            try
            {
                if (!_leader)
                {
                    await TryTakeAsync(stoppingToken);
                    if (!_leader)
                    {
                        await Task.Delay(_options.RetryInterval, _time, stoppingToken);
                    }
                }
                else
                {
                    await Task.Delay(_options.RenewInterval, _time, stoppingToken);
                    await RenewAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (!_leader)
            {
                LogTryFailed(e.Message);
                await Task.Delay(_options.RetryInterval, _time, stoppingToken).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }
    }

    private async Task TryTakeAsync(CancellationToken ct)
    {
        var (epoch, state) = await _lease.TryAcquireAsync(_options.LeaseDuration, ct);
        var sent = _time.GetTimestamp();
        Interlocked.Exchange(ref _observedEpoch, state.Epoch);
        _sinceTakeoverAtRead = state.Holder.Length > 0 ? state.SecondsSinceAcquired : null;
        _readAt = sent;
        _leaderUrl = state.HolderUrl;
        if (epoch is not { } e)
        {
            return;
        }

        // From here every write of this process carries the epoch; tables new since the last takeover get the fence.
        Interlocked.Exchange(ref _validUntil, sent + Ticks(_options.LeaseDuration - _options.SafetyMargin));
        _factory.UseConnectionString(LeaderLease.Fenced(_factory.ConnectionString, e, _options.IdleInTransactionTimeout));
        await _lease.EnsureFenceAsync(ct);
        Interlocked.Exchange(ref _epoch, e);
        _takeovers++;
        _leader = true;
        LogTookLease(e, Holder);
        _led.TrySetResult();
    }

    private async Task RenewAsync(CancellationToken stoppingToken)
    {
        var sent = _time.GetTimestamp();
        var left = _time.GetElapsedTime(sent, Interlocked.Read(ref _validUntil) + Ticks(_options.SafetyMargin));
        bool renewed;
        try
        {
            // Give up on this try when the lease would be over anyway.
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            cts.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
            renewed = await _lease.RenewAsync(Epoch, _options.LeaseDuration, cts.Token);
        }
        catch (Exception e) when (!stoppingToken.IsCancellationRequested)
        {
            if (_time.GetTimestamp() >= Interlocked.Read(ref _validUntil))
            {
                StepDown($"could not renew the lease before it ended ({e.Message})");
            }
            else
            {
                LogRenewFailed(e.Message);
            }

            return;
        }

        if (!renewed)
        {
            StepDown("the lease has moved to another server (a later epoch)");
            return;
        }

        Interlocked.Exchange(ref _validUntil, sent + Ticks(_options.LeaseDuration - _options.SafetyMargin));
        _sinceTakeoverAtRead = null;
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * _time.TimestampFrequency);

    /// <summary>Stops acting at once, then stops the application (serve starts again as a standby).</summary>
    private void StepDown(string why)
    {
        if (!_leader)
        {
            return;
        }

        _leader = false;
        _steppedDown = true;
        LogLost(Epoch, why);
        _lost.Cancel();
        _lifetime.StopApplication();
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_leader)
        {
            // A clean stop hands over at once (a rolling upgrade waits for no lease to run out).
            _leader = false;
            _lost.Cancel();
            try
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _lease.ReleaseAsync(Epoch, cts.Token);
                LogReleased(Epoch);
            }
            catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
            {
                LogRenewFailed(e.Message);
            }
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _lost.Dispose();
        _db.Dispose();
    }

    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "leadership: standing by as {Holder} (lease {Lease} s, renewed every {Renew} s)")]
    private partial void LogStandby(string holder, double lease, double renew);

    [LoggerMessage(EventId = 701, Level = LogLevel.Warning, Message = "leadership: took the lease, epoch {Epoch}, as {Holder}: this server leads")]
    private partial void LogTookLease(long epoch, string holder);

    [LoggerMessage(EventId = 702, Level = LogLevel.Critical, Message = "leadership: lost the lease of epoch {Epoch}: {Why}; stepping down without acting")]
    private partial void LogLost(long epoch, string why);

    [LoggerMessage(EventId = 703, Level = LogLevel.Warning, Message = "leadership: renewal failed ({Reason}); trying again")]
    private partial void LogRenewFailed(string reason);

    [LoggerMessage(EventId = 704, Level = LogLevel.Debug, Message = "leadership: could not try the lease: {Reason}")]
    private partial void LogTryFailed(string reason);

    [LoggerMessage(EventId = 705, Level = LogLevel.Information, Message = "leadership: released the lease of epoch {Epoch}")]
    private partial void LogReleased(long epoch);
}
