using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace GpuCommons.Server;

/// <summary>Counters and gauges exposed at <c>/metrics</c> in the Prometheus text format.</summary>
public sealed class ServerMetrics
{
    private static readonly double[] Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600];
    private readonly long[] _admissionBuckets = new long[Buckets.Length + 1];
    private readonly ConcurrentDictionary<string, long> _outcomes = new(StringComparer.Ordinal);
    private readonly object _lock = new();
    private double _admissionSum;
    private long _admissionCount;
    private long _submitted;

    /// <summary>Pending jobs by tenant class (organisation type), set by the scheduler loop.</summary>
    public IReadOnlyDictionary<string, int> QueueByClass { get; set; } = new Dictionary<string, int>();
    public double GpusAllocated { get; set; }
    public int GpusTotal { get; set; }
    public int GpusUp { get; set; }
    public int Running { get; set; }
    public long Cycles { get; set; }

    /// <summary>Starts handed to the backend whose result has not come back.</summary>
    public int StartsInFlight { get; set; }

    /// <summary>Longest pass of the scheduler loop so far, and the longest scheduling cycle within one (seconds).</summary>
    public double LoopPassMaxSeconds { get; private set; }

    public double ScheduleMaxSeconds { get; private set; }

    /// <summary>Longest time of each phase of a loop pass (seconds): commands, submissions, schedule, write_starts, publish, deferred.</summary>
    public ConcurrentDictionary<string, double> PhaseMaxSeconds { get; } = new(StringComparer.Ordinal);

    /// <summary>Records one phase of a loop pass.</summary>
    public void Phase(string phase, TimeSpan took) => PhaseMaxSeconds.AddOrUpdate(phase, took.TotalSeconds, (_, v) => Math.Max(v, took.TotalSeconds));

    public void Submitted(int n) => Interlocked.Add(ref _submitted, n);

    private static readonly string[] CyclePhaseNames = ["time_events", "order", "walk"];
    private readonly double[] _cyclePhaseLast = new double[6];
    private readonly double[] _cyclePhaseMax = new double[6];

    /// <summary>Records the engine's phases of one scheduling pass (full or incremental; set by the loop only).</summary>
    public void Cycle(bool full, GpuCommons.Scheduling.CycleTimings timings)
    {
        var at = full ? 0 : 3;
        Span<double> took = [timings.TimeEvents.TotalSeconds, timings.Order.TotalSeconds, timings.Walk.TotalSeconds];
        lock (_lock)
        {
            for (var i = 0; i < 3; i++)
            {
                _cyclePhaseLast[at + i] = took[i];
                _cyclePhaseMax[at + i] = Math.Max(_cyclePhaseMax[at + i], took[i]);
            }
        }
    }

    /// <summary>Records one pass of the scheduler loop (set by the loop only).</summary>
    public void LoopPass(TimeSpan pass, TimeSpan schedule)
    {
        LoopPassMaxSeconds = Math.Max(LoopPassMaxSeconds, pass.TotalSeconds);
        ScheduleMaxSeconds = Math.Max(ScheduleMaxSeconds, schedule.TotalSeconds);
    }

    public void Outcome(GpuCommons.Core.Jobs.JobState state) => _outcomes.AddOrUpdate(GpuCommons.Contracts.JobStateNames.ToWire(state), 1, static (_, v) => v + 1);

    /// <summary>Records the time from submission to start of one job.</summary>
    public void Admitted(TimeSpan wait)
    {
        var s = Math.Max(0, wait.TotalSeconds);
        lock (_lock)
        {
            var i = 0;
            while (i < Buckets.Length && s > Buckets[i])
            {
                i++;
            }

            _admissionBuckets[i]++;
            _admissionSum += s;
            _admissionCount++;
        }
    }

    public string Render()
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        sb.AppendLine("# HELP gpuc_queue_pending_jobs Pending jobs by tenant class.");
        sb.AppendLine("# TYPE gpuc_queue_pending_jobs gauge");
        foreach (var (k, v) in QueueByClass.OrderBy(x => x.Key, StringComparer.Ordinal))
        {
            sb.Append(c, $"gpuc_queue_pending_jobs{{tenant_class=\"{k}\"}} {v}\n");
        }

        sb.AppendLine("# HELP gpuc_gpus_allocated GPUs given to running jobs.");
        sb.AppendLine("# TYPE gpuc_gpus_allocated gauge");
        sb.Append(c, $"gpuc_gpus_allocated {GpusAllocated}\n");
        sb.AppendLine("# HELP gpuc_gpus_total GPUs in the fleet.");
        sb.AppendLine("# TYPE gpuc_gpus_total gauge");
        sb.Append(c, $"gpuc_gpus_total {GpusTotal}\n");
        sb.AppendLine("# HELP gpuc_gpus_up GPUs on nodes that accept jobs.");
        sb.AppendLine("# TYPE gpuc_gpus_up gauge");
        sb.Append(c, $"gpuc_gpus_up {GpusUp}\n");
        sb.AppendLine("# HELP gpuc_jobs_running Running jobs.");
        sb.AppendLine("# TYPE gpuc_jobs_running gauge");
        sb.Append(c, $"gpuc_jobs_running {Running}\n");
        sb.AppendLine("# HELP gpuc_jobs_submitted_total Jobs accepted by the API.");
        sb.AppendLine("# TYPE gpuc_jobs_submitted_total counter");
        sb.Append(c, $"gpuc_jobs_submitted_total {Interlocked.Read(ref _submitted)}\n");
        sb.AppendLine("# HELP gpuc_job_outcomes_total Jobs ended, by final state.");
        sb.AppendLine("# TYPE gpuc_job_outcomes_total counter");
        foreach (var (k, v) in _outcomes.OrderBy(x => x.Key, StringComparer.Ordinal))
        {
            sb.Append(c, $"gpuc_job_outcomes_total{{outcome=\"{k}\"}} {v}\n");
        }

        sb.AppendLine("# HELP gpuc_scheduler_cycles_total Full scheduling cycles.");
        sb.AppendLine("# TYPE gpuc_scheduler_cycles_total counter");
        sb.Append(c, $"gpuc_scheduler_cycles_total {Cycles}\n");
        sb.AppendLine("# HELP gpuc_loop_pass_max_seconds Longest pass of the scheduler loop (requests wait at most this for it).");
        sb.AppendLine("# TYPE gpuc_loop_pass_max_seconds gauge");
        sb.Append(c, $"gpuc_loop_pass_max_seconds {LoopPassMaxSeconds}\n");
        sb.AppendLine("# HELP gpuc_schedule_max_seconds Longest scheduling cycle.");
        sb.AppendLine("# TYPE gpuc_schedule_max_seconds gauge");
        sb.Append(c, $"gpuc_schedule_max_seconds {ScheduleMaxSeconds}\n");
        sb.AppendLine("# HELP gpuc_loop_phase_max_seconds Longest time of each phase of a loop pass.");
        sb.AppendLine("# TYPE gpuc_loop_phase_max_seconds gauge");
        foreach (var (k, v) in PhaseMaxSeconds.OrderBy(x => x.Key, StringComparer.Ordinal))
        {
            sb.Append(c, $"gpuc_loop_phase_max_seconds{{phase=\"{k}\"}} {v}\n");
        }

        sb.AppendLine("# HELP gpuc_schedule_phase_seconds Time of each phase of the engine's last pass, full or incremental (time_events, order, walk).");
        sb.AppendLine("# TYPE gpuc_schedule_phase_seconds gauge");
        lock (_lock)
        {
            for (var k = 0; k < 6; k++)
            {
                sb.Append(c, $"gpuc_schedule_phase_seconds{{pass=\"{(k < 3 ? "full" : "incremental")}\",phase=\"{CyclePhaseNames[k % 3]}\"}} {_cyclePhaseLast[k]}\n");
            }

            sb.AppendLine("# HELP gpuc_schedule_phase_max_seconds Longest time of each phase of the engine's passes, full or incremental.");
            sb.AppendLine("# TYPE gpuc_schedule_phase_max_seconds gauge");
            for (var k = 0; k < 6; k++)
            {
                sb.Append(c, $"gpuc_schedule_phase_max_seconds{{pass=\"{(k < 3 ? "full" : "incremental")}\",phase=\"{CyclePhaseNames[k % 3]}\"}} {_cyclePhaseMax[k]}\n");
            }
        }

        sb.AppendLine("# HELP gpuc_starts_in_flight Starts handed to the backend, not yet answered.");
        sb.AppendLine("# TYPE gpuc_starts_in_flight gauge");
        sb.Append(c, $"gpuc_starts_in_flight {StartsInFlight}\n");
        sb.AppendLine("# HELP gpuc_admission_latency_seconds Time from submission to start.");
        sb.AppendLine("# TYPE gpuc_admission_latency_seconds histogram");
        lock (_lock)
        {
            long cum = 0;
            for (var i = 0; i < Buckets.Length; i++)
            {
                cum += _admissionBuckets[i];
                sb.Append(c, $"gpuc_admission_latency_seconds_bucket{{le=\"{Buckets[i]}\"}} {cum}\n");
            }

            cum += _admissionBuckets[^1];
            sb.Append(c, $"gpuc_admission_latency_seconds_bucket{{le=\"+Inf\"}} {cum}\n");
            sb.Append(c, $"gpuc_admission_latency_seconds_sum {_admissionSum}\n");
            sb.Append(c, $"gpuc_admission_latency_seconds_count {_admissionCount}\n");
        }

        return sb.ToString();
    }
}
