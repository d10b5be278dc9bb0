using System.Collections.Concurrent;
using GpuCommons.Backends;
using GpuCommons.Server.Security;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Engine;

/// <summary>A start the loop has written (the job is running on disk) and hands to the backend.</summary>
internal sealed record StartOrder(long JobId, int Attempt, string User, string Project, BackendJob Job);

/// <summary>
/// What came of a start: the backend's handle, or the error (a <see cref="JobStartRejectedException"/> when the job itself
/// cannot start). <see cref="Voided"/>: the loop had ended or requeued this attempt meanwhile, and the run was cancelled.
/// </summary>
internal sealed record StartResult(StartOrder Order, BackendHandle? Handle, Exception? Error, bool Voided = false);

/// <summary>
/// Calls the backend for starts off the scheduler loop, at most <c>concurrency</c> at once, and posts each result back to
/// the loop. Starts of the same job run one after the other (a requeued job's next attempt waits for its last). The loop
/// never waits for a backend here; it learns what happened from the results, as commands.
/// </summary>
internal sealed partial class StartDispatcher : IAsyncDisposable
{
    private readonly IJobBackend _backend;
    private readonly PosixAccounts _accounts;
    private readonly ILogger _log;
    private readonly SemaphoreSlim _slots;
    private readonly ConcurrentDictionary<long, Task> _byJob = new();
    private readonly ConcurrentDictionary<long, int> _voided = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private int _inFlight;
    private TaskCompletionSource _idle = Completed();

    public StartDispatcher(IJobBackend backend, PosixAccounts accounts, int concurrency, ILogger log)
    {
        _backend = backend;
        _accounts = accounts;
        _log = log;
        _slots = new SemaphoreSlim(Math.Max(1, concurrency));
    }

    /// <summary>Starts and cancels in flight (handed over, not done yet).</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Hands starts to the backend; <paramref name="done"/> gets each result, on a worker thread.</summary>
    public void Dispatch(IReadOnlyList<StartOrder> orders, Action<StartResult> done)
    {
        foreach (var order in orders)
        {
            Enter();
            var before = _byJob.TryGetValue(order.JobId, out var prev) ? prev : Task.CompletedTask;
            var task = RunAsync(order, before, done);
            _byJob[order.JobId] = task;
            _ = task.ContinueWith(t => _byJob.TryRemove(new KeyValuePair<long, Task>(order.JobId, t)), TaskScheduler.Default);
        }
    }

    /// <summary>
    /// The loop ended or requeued this attempt while its start is in flight: if the start succeeds, the run is cancelled
    /// in the backend at once (before any later attempt of the job starts).
    /// </summary>
    public void Void(long jobId, int attempt) => _voided[jobId] = attempt;

    /// <summary>Cancels a run in the backend off the loop (a start that succeeded for a job whose cancel was asked meanwhile).</summary>
    public void Cancel(long jobId, TimeSpan grace)
    {
        Enter();
        _ = Task.Run(async () =>
        {
            try
            {
                await _backend.CancelAsync(jobId, grace, _stop.Token);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogCancelFailed(jobId, e);
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                Leave();
            }
        });
    }

    private void Enter()
    {
        lock (_gate)
        {
            if (_inFlight++ == 0)
            {
                _idle = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    private void Leave()
    {
        lock (_gate)
        {
            if (--_inFlight == 0)
            {
                _idle.TrySetResult();
            }
        }
    }

    /// <summary>Completes when no start (nor a cancel asked through <see cref="Cancel"/>) is in flight.</summary>
    public Task IdleAsync()
    {
        lock (_gate)
        {
            return _idle.Task;
        }
    }

    private async Task RunAsync(StartOrder order, Task before, Action<StartResult> done)
    {
        StartResult result;
        try
        {
            await before.ConfigureAwait(false);
            await _slots.WaitAsync(_stop.Token).ConfigureAwait(false);
            try
            {
                result = await StartAsync(order).ConfigureAwait(false);
            }
            finally
            {
                _slots.Release();
            }
        }
        catch (OperationCanceledException e)
        {
            result = new StartResult(order, null, e);
        }

        try
        {
            done(result);
        }
        finally
        {
            Leave();
        }
    }

    private async Task<StartResult> StartAsync(StartOrder order)
    {
        if (IsVoided(order))
        {
            return new StartResult(order, null, null, Voided: true);
        }

        try
        {
            var runAs = await _accounts.ResolveAsync(order.User, order.Project, _stop.Token).ConfigureAwait(false);
            var handle = await _backend.StartAsync(order.Job with { RunAs = runAs }, _stop.Token).ConfigureAwait(false);
            if (IsVoided(order))
            {
                try
                {
                    await _backend.CancelAsync(order.JobId, TimeSpan.Zero, _stop.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogCancelFailed(order.JobId, e);
                }

                return new StartResult(order, handle, null, Voided: true);
            }

            return new StartResult(order, handle, null);
        }
        catch (Exception e) when (e is not OperationCanceledException || !_stop.IsCancellationRequested)
        {
            return new StartResult(order, null, e);
        }
    }

    private bool IsVoided(StartOrder order) =>
        _voided.TryGetValue(order.JobId, out var a) && a == order.Attempt && _voided.TryRemove(new KeyValuePair<long, int>(order.JobId, a));

    /// <summary>The loop has the result of this start: a void asked for it too late is dropped.</summary>
    public void Forget(StartOrder order) => _voided.TryRemove(new KeyValuePair<long, int>(order.JobId, order.Attempt));

    /// <summary>Stops handing out starts; those already in a backend call are given a moment to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await IdleAsync().WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (TimeoutException)
        {
        }

        _stop.Dispose();
    }

    private static TaskCompletionSource Completed()
    {
        var t = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        t.SetResult();
        return t;
    }

    [LoggerMessage(EventId = 140, Level = LogLevel.Warning, Message = "backend cancel of job {JobId} failed")]
    private partial void LogCancelFailed(long jobId, Exception e);
}
