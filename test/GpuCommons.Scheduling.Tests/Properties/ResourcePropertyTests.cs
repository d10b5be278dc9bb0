using CsCheck;
using GpuCommons.Scheduling.Tests.Support;
using Shouldly;
using Xunit;
using Xunit.Abstractions;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>
/// Random worlds whose nodes have cores, memory, features and two GPU models, and whose jobs ask for them (per GPU, per
/// node, shares, gangs, models, features). The <see cref="CheckedEngine"/> checks after every call, among the rest, that
/// no node is ever given more cores or memory than it has, that what the engine keeps free equals capacity less the
/// running jobs' requests recomputed from scratch, and that every running job is on nodes of its model and features.
/// </summary>
public sealed class ResourcePropertyTests(ITestOutputHelper output)
{
    [Fact]
    public void ResourceWorlds_EveryDecision_NeverOverCommitsANode()
    {
        var started = 0;
        var withRequests = 0;
        Deterministic.Sample(RandomWorld.ResourceWorld(20, 200), w =>
        {
            var e = SchedulerPropertyTests.Play(w)!;
            started += e.Starts.Count;
            withRequests += e.Starts.Count(s => e.Specs[s.JobId] is { } j && (j.CpusPerGpu ?? j.CpusPerNode ?? j.MemoryMiBPerGpu ?? j.MemoryMiBPerNode) is not null);
        }, iter: 800, stream: 11, print: w => w.ToString(), writeLine: output.WriteLine);

        // The generator must reach jobs that ask for cores or memory and start.
        started.ShouldBeGreaterThan(1000);
        withRequests.ShouldBeGreaterThan(200);
    }

    [Fact]
    public void ResourceWorlds_LongBusyStreams_NeverOverCommitANode()
    {
        Deterministic.Sample(RandomWorld.ResourceWorld(300, 600), w => SchedulerPropertyTests.Play(w), iter: 40, stream: 12, print: w => w.ToString(), writeLine: output.WriteLine);
    }

    /// <summary>
    /// Whole-GPU jobs that ask for GPUs only, on a fleet whose nodes have cores and memory and whose partitions derive
    /// their defaults, start exactly where and when they start on the same fleet with nothing tracked: the defaults
    /// never bind for them.
    /// </summary>
    [Fact]
    public void GpuOnlyWholeGpuJobs_WithDerivedDefaults_ScheduleExactlyAsWithoutResources()
    {
        var gen = from w in RandomWorld.World(20, 200)
                  from r in RandomWorld.Resources
                  select w with { Resources = r with { Requests = false }, Ops = [.. w.Ops.Select(WholeGpus)] };
        Deterministic.Sample(gen, w =>
        {
            var tracked = RandomWorld.Play(w);
            var untracked = RandomWorld.Play(w with { Resources = null });
            tracked.Fleet.Nodes.ShouldContain(n => n.Cpus > 0);
            var a = tracked.Starts.Select(s => $"{s.JobId}@{s.Time:O}:{s.Placement.Format(tracked.Fleet)}").ToList();
            var b = untracked.Starts.Select(s => $"{s.JobId}@{s.Time:O}:{s.Placement.Format(untracked.Fleet)}").ToList();
            a.ShouldBe(b);
        }, iter: 300, stream: 13, print: w => w.ToString(), writeLine: output.WriteLine);
    }

    /// <summary>Turns a submit of a share (0.25, 0.5, 1.5 GPUs in the generator's choices) into one of a whole GPU.</summary>
    private static Op WholeGpus(Op op) =>
        op.Kind == OpKind.Submit && (op.A % 16) is 0 or 1 or 12 or 15 ? op with { A = op.A - (op.A % 16) + 2 } : op;
}
