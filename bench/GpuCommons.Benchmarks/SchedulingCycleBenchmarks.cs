using BenchmarkDotNet.Attributes;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling;
using GpuCommons.Scheduling.Scenarios;

namespace GpuCommons.Benchmarks;

/// <summary>
/// The engine on the national fleet, full of running jobs, with a queue of pending jobs:
/// a full cycle (order + placement + backfill + preemption over the whole queue) and incremental decisions.
/// Run: <c>dotnet run -c Release --project bench/GpuCommons.Benchmarks -- --filter '*'</c>.
/// </summary>
[MemoryDiagnoser]
public class SchedulingCycleBenchmarks
{
    private LoadedEngine _loaded = null!;
    private List<long> _running = null!;
    private Random _random = null!;

    [Params(10_000, 100_000)]
    public int Pending { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _loaded = LoadedEngine.Create(BuiltInFleets.Get("national"), Pending);
        _random = new Random(7);
        _running = _loaded.Engine.JobIds.Where(id => _loaded.Engine.GetJob(id)!.State == JobState.Running).ToList();
    }

    [Benchmark(Description = "full cycle")]
    public int FullCycle()
    {
        _loaded.Time.Advance(TimeSpan.FromSeconds(30));
        return _loaded.Engine.Schedule(full: true).Started.Count;
    }

    [Benchmark(Description = "arrival + incremental decision")]
    public int Arrival()
    {
        _loaded.Time.Advance(TimeSpan.FromMilliseconds(100));
        _loaded.Engine.Submit(_loaded.Scenario.NextJob(_loaded.Time.GetUtcNow()));
        return _loaded.Engine.Schedule(full: false).Started.Count;
    }

    [Benchmark(Description = "completion + incremental decision")]
    public int Completion()
    {
        _loaded.Time.Advance(TimeSpan.FromMilliseconds(100));
        if (_running.Count == 0)
        {
            return 0;
        }

        var k = _random.Next(_running.Count);
        var id = _running[k];
        _running[k] = _running[^1];
        _running.RemoveAt(_running.Count - 1);
        _loaded.Engine.Complete(id, JobOutcome.Finished);
        var result = _loaded.Engine.Schedule(full: false);
        foreach (var s in result.Started)
        {
            _running.Add(s.JobId);
        }

        return result.Started.Count;
    }
}
