using GpuCommons.Core;
using GpuCommons.Core.Fleet;

namespace GpuCommons.Scheduling.Scenarios;

/// <summary>An engine on a fleet that is already full of running jobs, with a given number of jobs pending: the state a busy center is in.</summary>
public sealed class LoadedEngine
{
    private LoadedEngine(SchedulerEngine engine, VirtualTimeProvider time, NationalScenario scenario)
    {
        Engine = engine;
        Time = time;
        Scenario = scenario;
    }

    /// <summary>The loaded engine.</summary>
    public SchedulerEngine Engine { get; }

    /// <summary>The engine's clock; advance it to move the engine's time.</summary>
    public VirtualTimeProvider Time { get; }

    /// <summary>The tenants and the job generator the engine was loaded with; draw more jobs from it.</summary>
    public NationalScenario Scenario { get; }

    /// <summary>
    /// Builds the engine on <paramref name="fleet"/> with the national tenant mix, fills the fleet with running jobs, and
    /// tops the queue up to <paramref name="pending"/> pending jobs. Deterministic for a given <paramref name="seed"/>.
    /// </summary>
    /// <param name="fleet">The fleet to fill.</param>
    /// <param name="pending">How many jobs to leave pending.</param>
    /// <param name="seed">Seed of the job generator.</param>
    /// <param name="organisations">How many organisations the tenant mix has.</param>
    /// <param name="projects">How many projects the tenant mix has.</param>
    /// <param name="options">The engine's options; <see langword="null"/> for the defaults.</param>
    public static LoadedEngine Create(Fleet fleet, int pending, int seed = 42, int organisations = 500, int projects = 2000, SchedulerOptions? options = null)
    {
        var time = new VirtualTimeProvider(new DateTimeOffset(2026, 3, 2, 9, 0, 0, TimeSpan.Zero));
        var scenario = new NationalScenario(fleet, seed, organisations, projects);
        var engine = new SchedulerEngine(fleet, scenario.Tenancy, options, time);

        // Fill the fleet: submit in batches and schedule until a batch leaves most of its jobs pending.
        while (true)
        {
            var batch = Math.Max(256, fleet.TotalGpus / 20);
            for (var i = 0; i < batch; i++)
            {
                engine.Submit(scenario.NextJob(time.GetUtcNow()));
            }

            time.Advance(TimeSpan.FromSeconds(1));
            engine.Schedule(full: true);
            var stats = engine.GetStats();
            if (engine.PendingCount >= batch / 2 || stats.FreeGpus < fleet.TotalGpus / 50)
            {
                break;
            }
        }

        while (engine.PendingCount < pending)
        {
            engine.Submit(scenario.NextJob(time.GetUtcNow()));
        }

        // Let the queue settle, then top it up to exactly the asked number of pending jobs.
        for (var round = 0; round < 3; round++)
        {
            time.Advance(TimeSpan.FromSeconds(30));
            engine.Schedule(full: true);
            while (engine.PendingCount < pending)
            {
                engine.Submit(scenario.NextJob(time.GetUtcNow()));
            }
        }

        return new LoadedEngine(engine, time, scenario);
    }
}
