namespace GpuCommons.Simulation.Metrics;

/// <summary>
/// Bounds no scheduler can beat on the same jobs and fleet, computed as jobs arrive (memory ∝ jobs in the pooled queue):
/// <list type="bullet">
/// <item>average JCT ≥ max(mean run time, mean flow time of preemptive SRPT on one pooled server that runs
/// <c>G</c> GPU-seconds per second): pooling and free preemption only relax the real problem.</item>
/// <item>makespan ≥ max(latest submit + run time, the time the pooled server finishes all the work).</item>
/// </list>
/// </summary>
public sealed class LowerBounds(double capacityGpus)
{
    private readonly PriorityQueue<(double Release, double Remaining), double> _queue = new();
    private double _clock;
    private double _flowSum;
    private double _runSum;
    private long _jobs;
    private double _latestEnd;
    private double _work;
    private double _firstSubmit = double.NaN;
    private double _lastSubmit;

    public long Jobs => _jobs;
    public double WorkGpuSeconds => _work;
    public double FirstSubmit => double.IsNaN(_firstSubmit) ? 0 : _firstSubmit;
    public double LastSubmit => _lastSubmit;

    /// <summary>A job arrives (in submit order) needing <paramref name="runSeconds"/> on <paramref name="gpus"/> GPUs.</summary>
    public void Add(double submit, double runSeconds, double gpus)
    {
        if (double.IsNaN(_firstSubmit))
        {
            _firstSubmit = submit;
            _clock = submit;
        }

        AdvanceTo(submit);
        _lastSubmit = submit;
        var work = gpus * runSeconds;
        _jobs++;
        _runSum += runSeconds;
        _work += work;
        _latestEnd = Math.Max(_latestEnd, submit + runSeconds);
        if (work <= 0)
        {
            return;
        }

        _queue.Enqueue((submit, work), work);
    }

    private void AdvanceTo(double t)
    {
        while (_queue.Count > 0 && _clock < t)
        {
            var (release, remaining) = _queue.Dequeue();
            var finish = _clock + (remaining / capacityGpus);
            if (finish <= t)
            {
                _clock = finish;
                _flowSum += finish - release;
            }
            else
            {
                var left = remaining - ((t - _clock) * capacityGpus);
                _queue.Enqueue((release, left), left);
                _clock = t;
            }
        }

        if (double.IsFinite(t))
        {
            _clock = Math.Max(_clock, t);
        }
    }

    public (double AvgJct, double Makespan) Finish()
    {
        AdvanceTo(double.PositiveInfinity);
        if (_jobs == 0)
        {
            return (0, 0);
        }

        var avg = Math.Max(_runSum / _jobs, _flowSum / _jobs);
        var makespan = Math.Max(_latestEnd, _clock) - FirstSubmit;
        return (avg, makespan);
    }
}
