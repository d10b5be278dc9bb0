using GpuCommons.Core.Fleet;
using GpuCommons.Scheduling.Tests.Support;
using static GpuCommons.Scheduling.Tests.Support.Dsl;

namespace GpuCommons.Scheduling.Tests.Scenarios;

/// <summary>Impossible or invalid jobs are rejected at submit, with the field named; nothing is queued.</summary>
public sealed class SubmitValidationTests
{
    public static TheoryData<string, Func<JobBuilder>, string, string> Cases => new()
    {
        // name, job, field, words the message must contain
        { "more GPUs than the partition", () => Job(1).Gpus(72).Partition("h100"), "gpus", "h100" },
        { "more GPUs than the fleet", () => Job(1).Gpus(200), "gpus", "nodes" },
        { "1.5 GPUs", () => Job(1).Gpus(1.5), "gpus", "whole number" },
        { "zero GPUs", () => Job(1).Gpus(0), "gpus", "more than 0" },
        { "negative GPUs", () => Job(1).Gpus(-2), "gpus", "more than 0" },
        { "a fraction finer than 0.001", () => Job(1).Gpus(0.0005), "gpus", "0.001" },
        { "a fraction with nodes", () => Job(1).Gpus(0.5).Nodes(2), "gpus", "nodes" },
        { "a fraction with GPUs per node", () => Job(1).Gpus(0.5).GpusPerNode(1), "gpus", "gpusPerNode" },
        { "zero walltime", () => Job(1).Walltime(TimeSpan.Zero), "walltime", "more than zero" },
        { "negative walltime", () => Job(1).Walltime(TimeSpan.FromMinutes(-5)), "walltime", "more than zero" },
        { "walltime beyond the limit", () => Job(1).Walltime(TimeSpan.FromDays(31)), "walltime", "longest" },
        { "unknown partition", () => Job(1).Partition("a100"), "partition", "a100" },
        { "unknown project", () => Job(1).Project("nobody"), "project", "nobody" },
        { "empty project", () => Job(1).Project(" "), "project", "required" },
        { "nodes times GPUs per node is not the GPUs", () => Job(1).Gpus(10).Nodes(2).GpusPerNode(4), "gpus", "nodes × gpusPerNode" },
        { "more GPUs per node than any node", () => Job(1).Gpus(32).Nodes(2).GpusPerNode(16), "gpusPerNode", "largest node" },
        { "too many GPUs on one node", () => Job(1).Gpus(16).Nodes(1), "gpus", "one node" },
        { "zero nodes", () => Job(1).Gpus(8).Nodes(0), "nodes", "at least 1" },
        { "more nodes than the partition", () => Job(1).Gpus(20).Nodes(5).Partition("l40s"), "gpus", "nodes" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Submit_ImpossibleJob_IsRejectedNamingTheField(string name, Func<JobBuilder> job, string field, string words)
    {
        var e = new CheckedEngine(BuiltInFleets.Get("small"), TenancyBuilder.Simple("a"));
        var r = e.Submit(job());

        r.Accepted.ShouldBeFalse(name);
        r.Error.ShouldNotBeNull();
        r.Error.Field.ShouldBe(field, name);
        r.Error.Message.ShouldContain(words, Case.Insensitive, name);
        e.Engine.PendingCount.ShouldBe(0);
    }

    [Fact]
    public void Submit_DuplicateId_IsRejected()
    {
        var e = new CheckedEngine(BuiltInFleets.Get("small"), TenancyBuilder.Simple("a"));
        e.Submit(Job(1)).Accepted.ShouldBeTrue();
        var r = e.Submit(Job(1).Gpus(2));
        r.Accepted.ShouldBeFalse();
        r.Error!.Field.ShouldBe("id");
        e.Engine.PendingCount.ShouldBe(1);
    }

    [Theory]
    [InlineData(64, null)]
    [InlineData(0.001, null)]
    [InlineData(4, null)]
    [InlineData(16, 2)]
    public void Submit_JobThatFitsSomewhere_IsAccepted(double gpus, int? nodes)
    {
        var e = new CheckedEngine(BuiltInFleets.Get("small"), TenancyBuilder.Simple("a"));
        var job = Job(1).Gpus(gpus);
        if (nodes is { } n)
        {
            job.Nodes(n);
        }

        e.Submit(job).Accepted.ShouldBeTrue();
    }
}
