using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Scenarios;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>The national fleet, full of running jobs with thousands pending: the invariants hold at that size too.</summary>
public sealed class NationalScaleTests
{
    /// <param name="pending">Jobs pending: 6,000 is more than twice the sorted head, so full passes leave a tail unsorted
    /// and look for its candidates (with the national tenants' grants, which cover more hours than a walltime holds).</param>
    [Theory]
    [InlineData(3000)]
    [InlineData(6000)]
    public void LoadedNationalFleet_ThroughCompletionsFailuresAndCycles_KeepsEveryInvariant(int pending)
    {
        var fleet = BuiltInFleets.Get("national");
        var loaded = LoadedEngine.Create(fleet, pending: pending, seed: 7, organisations: 60, projects: 240);
        var engine = loaded.Engine;
        engine.VerifyInvariants().ShouldBeNull();
        engine.RunningCount.ShouldBeGreaterThan(1000);
        (engine.GetStats().AllocatedGpus / fleet.TotalGpus).ShouldBeGreaterThan(0.9, "the loaded engine keeps the fleet busy");

        var random = new Random(7);
        for (var round = 0; round < 6; round++)
        {
            loaded.Time.Advance(TimeSpan.FromMinutes(20));
            var running = engine.JobIds.Where(id => engine.GetJob(id)!.State == JobState.Running).Order().ToList();
            foreach (var id in running.Where(_ => random.NextDouble() < 0.05))
            {
                engine.Complete(id, JobOutcome.Finished);
            }

            var node = fleet.Nodes[random.Next(fleet.Nodes.Count)].Name;
            engine.SetNodeState(node, round % 2 == 0 ? NodeState.Down : NodeState.Draining);
            engine.VerifyInvariants().ShouldBeNull();

            for (var i = 0; i < 200; i++)
            {
                engine.Submit(loaded.Scenario.NextJob(loaded.Time.GetUtcNow()));
            }

            var result = engine.Schedule(full: round % 2 == 1);
            engine.VerifyInvariants().ShouldBeNull();
            foreach (var s in result.Started)
            {
                s.Placement.Nodes.ShouldAllBe(n => engine.GetNodeState(n) == NodeState.Up);
            }

            engine.SetNodeState(node, NodeState.Up);
            engine.VerifyInvariants().ShouldBeNull();
        }
    }
}
