using CsCheck;
using GpuCommons.Core.Jobs;
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

    /// <summary>
    /// Two jobs wait for their preemptions; both go first, the earlier submitted first, whatever their priorities. The
    /// earlier one (lower priority) starts on a node that the later one's new reservation then holds: it was walked
    /// before the holder, so it may run past the holder's start. (The check once ordered the two by priority and called
    /// this a broken hold.)
    /// </summary>
    [Fact]
    public void JobsWaitingForPreemptions_GoFirstBySubmitTime_NotByPriority()
    {
        var w = RandomWorld.ResourceWorld(20, 200).Generate(PCG.Parse("fuICSBA0HCj3L"), null, out _);
        var log = new List<string>();
        Should.NotThrow(() => RandomWorld.Play(w, log.Add));
        log.ShouldContain(l => l.Contains("preempted [26 for 28, 21 for 16]", StringComparison.Ordinal));
        log.ShouldContain(l => l.Contains("started [16(prio 4687.696)@p0-n07:3:0.5", StringComparison.Ordinal));
        log.ShouldContain(l => l.Contains("hold for 28 until 03-03 18:20 sticky=False nodes p0-n07", StringComparison.Ordinal));
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

    /// <summary>
    /// In random worlds with preemption on, every preemption planned for a pending job onto one node stops victims
    /// whose end leaves that node with the job's cores and memory free as well as its GPUs (recomputed here from the
    /// running jobs' placements), on a node of its model and features.
    /// </summary>
    [Fact]
    public void Preemption_ChoosesVictimsWhoseEndFreesTheJobsCoresAndMemoryToo()
    {
        var gen = from w in RandomWorld.ResourceWorld(20, 160)
                  from cut in Gen.Int[1, 160]
                  select (World: w with { Options = w.Options with { Preemption = true } }, Cut: Math.Min(cut, w.Ops.Length));
        var plans = 0;
        var coresOrMemoryBound = 0;
        Deterministic.Sample(gen, c =>
        {
            var e = RandomWorld.PlayPrefix(c.World, c.Cut);
            var fleet = e.Fleet;
            var held = new Dictionary<(long Job, int Node), ResourceDemand>();
            var cpus = new long[fleet.Nodes.Count];
            var memory = new long[fleet.Nodes.Count];
            foreach (var id in e.RunningIds)
            {
                var placement = e.View(id).Placement!;
                foreach (var n in placement.Nodes)
                {
                    var d = ResourceDemand.PerNode(e.Specs[id], fleet.Partitions[placement.Partition], placement.Slots.Where(s => s.Node == n).Sum(s => s.Milli));
                    held[(id, n)] = d;
                    cpus[n] += d.Cpus;
                    memory[n] += d.MemoryMiB;
                }
            }

            foreach (var id in e.PendingIds.ToList())
            {
                var spec = e.Specs[id];
                if (e.Engine.PlanNodePreemptionForTests(id) is not { Nodes.Count: 1 } plan || spec.Gpus > fleet.Nodes[plan.Nodes[0]].Gpus)
                {
                    continue;
                }

                var n = plan.Nodes[0];
                var node = fleet.Nodes[n];
                var need = ResourceDemand.PerNode(spec, fleet.Partitions[plan.Partition], spec.GpuMilli);
                long freedCpus = 0, freedMemory = 0;
                foreach (var v in plan.Victims)
                {
                    if (held.TryGetValue((v, n), out var d))
                    {
                        freedCpus += d.Cpus;
                        freedMemory += d.MemoryMiB;
                    }
                }

                ResourceDemand.Eligible(spec, node).ShouldBeTrue($"job {id} would preempt for node {node.Name}, not of its model or features");
                (cpus[n] - freedCpus + need.Cpus).ShouldBeLessThanOrEqualTo(node.CpuCapacity, $"job {id} on {node.Name}: the victims {string.Join(",", plan.Victims)} free too few cores");
                (memory[n] - freedMemory + need.MemoryMiB).ShouldBeLessThanOrEqualTo(node.MemoryCapacityMiB, $"job {id} on {node.Name}: the victims free too little memory");
                plans++;
                if (cpus[n] + need.Cpus > node.CpuCapacity || memory[n] + need.MemoryMiB > node.MemoryCapacityMiB)
                {
                    coresOrMemoryBound++;
                }
            }
        }, iter: 300, stream: 14, print: c => $"cut {c.Cut}\n{c.World}", writeLine: output.WriteLine);

        output.WriteLine($"{plans} node preemptions planned, {coresOrMemoryBound} where cores or memory were short before the victims");
        plans.ShouldBeGreaterThan(30, "the worlds must reach preemptions");
        coresOrMemoryBound.ShouldBeGreaterThan(5, "and some where cores or memory bind");
    }

    /// <summary>Turns a submit of a share (0.25, 0.5, 1.5 GPUs in the generator's choices) into one of a whole GPU.</summary>
    private static Op WholeGpus(Op op) =>
        op.Kind == OpKind.Submit && (op.A % 16) is 0 or 1 or 12 or 15 ? op with { A = op.A - (op.A % 16) + 2 } : op;
}
