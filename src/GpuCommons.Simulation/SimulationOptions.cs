using GpuCommons.Core.Fleet;
using GpuCommons.Scheduling;

namespace GpuCommons.Simulation;

/// <summary>Everything about a simulation run except the fleet and the workload. Defaults are on each property.</summary>
public sealed class SimulationOptions
{
    /// <summary>The engine's policy. The simulator lifts the 30-day walltime limit (traces have longer jobs).</summary>
    public SchedulerOptions Scheduler { get; init; } = new() { MaxWalltime = null };

    /// <summary>Name of the policy, for reports.</summary>
    public string PolicyName { get; init; } = "multifactor";

    /// <summary>
    /// Virtual seconds between full scheduling cycles (re-order, backfill reservations, preemption). Between them every
    /// event gets an incremental cycle, as in the server. 0: a full cycle at every instant something happens.
    /// </summary>
    /// <value>Default 60 s.</value>
    public double CycleIntervalSeconds { get; init; } = 60;

    /// <summary>Stop at this many seconds after the start of the workload; null: run until every job has ended.</summary>
    public double? HorizonSeconds { get; init; }

    /// <summary>Walltime of jobs whose trace gives none: this factor × the run time, in whole seconds.</summary>
    /// <value>Default 1 (users' estimates are exact: the most favourable case for backfill).</value>
    public double WalltimeFactor { get; init; } = 1;

    /// <summary>Seconds between time-series samples; 0 picks about 2,000 samples over the workload's span.</summary>
    public double SampleIntervalSeconds { get; init; }

    /// <summary>Mean hours between failures of one node (exponential); 0: nodes never fail.</summary>
    public double NodeMtbfHours { get; init; }

    /// <summary>Mean hours to repair a failed node (exponential).</summary>
    /// <value>Default 24 h.</value>
    public double RepairHours { get; init; } = 24;

    /// <summary>Seed of the failure process.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Changes of the fleet over time (capacity planning).</summary>
    public IReadOnlyList<FleetEvent> Timeline { get; init; } = [];

    /// <summary>Where the schedule CSV goes (one row per run segment), streamed as jobs end; null: not written.</summary>
    public TextWriter? ScheduleOut { get; init; }

    /// <summary>Where the time-series CSV goes; null: not written.</summary>
    public TextWriter? TimeSeriesOut { get; init; }

    /// <summary>Length of a "month" in the monthly figures.</summary>
    /// <value>Default 30 days.</value>
    public double MonthSeconds { get; init; } = 30 * 86400.0;

    /// <summary>Called now and then with the progress of the run.</summary>
    public Action<SimulationProgress>? Progress { get; init; }
}

