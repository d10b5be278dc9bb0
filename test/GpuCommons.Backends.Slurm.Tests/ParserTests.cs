using GpuCommons.Backends.Slurm.Parsing;
using GpuCommons.Core.Fleet;
using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

public class ParserTests
{
    private static DateTimeOffset T(string s) => DateTimeOffset.Parse(s + "Z", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void ParseSqueue_CapturedOutput_ReadsEveryStateNodesAndTimes()
    {
        var r = SlurmOutputParser.ParseSqueue(Fixture.Read("squeue-all.txt"));

        r.Errors.ShouldBeEmpty();
        r.Rows.Count.ShouldBe(7);
        var gang = r.Rows.Single(x => x.SlurmJobId == 3);
        gang.Name.ShouldBe("gpuc-101");
        gang.State.ShouldBe(SlurmJobState.Completed);
        gang.Nodes.ShouldBe(["n1", "n2"]);
        gang.Start.ShouldBe(T("2026-11-27T18:10:35"));
        gang.End.ShouldBe(T("2026-11-27T18:10:40"));
        var held = r.Rows.Single(x => x.SlurmJobId == 4);
        held.State.ShouldBe(SlurmJobState.Pending);
        held.Reason.ShouldBe("JobHeldUser");
        held.Start.ShouldBeNull();
        held.Nodes.ShouldBeEmpty();
        var running = r.Rows.Single(x => x.SlurmJobId == 2);
        running.State.ShouldBe(SlurmJobState.Running);
        running.End.ShouldBeNull(); // squeue prints the expected end; not a fact
        r.Rows.Single(x => x.SlurmJobId == 5).Name.ShouldBe("someone else|odd name");
        r.Rows.Single(x => x.SlurmJobId == 7).State.ShouldBe(SlurmJobState.Cancelled);
    }

    [Fact]
    public void ParseSqueue_JobWithoutTimeLimit_EndTimeNoneIsRead()
    {
        // A job submitted without --time on a partition with no limit: squeue prints its end time as NONE.
        var r = SlurmOutputParser.ParseSqueue("28621|RUNNING|None|n1|2026-11-27T20:01:21|2026-11-27T20:01:22|NONE|gpuc-999999");

        r.Errors.ShouldBeEmpty();
        r.Rows.ShouldHaveSingleItem().SlurmJobId.ShouldBe(28621L);
    }

    [Fact]
    public void ParseSqueue_ErrorLinesAndUnknownStates_AreReportedNotGuessed()
    {
        var text = """
            squeue: error: Invalid user: nobody2
            12|RUNNING|None|n1|2026-11-27T18:10:35|2026-11-27T18:10:35|2026-11-27T18:11:35|gpuc-1
            13|TELEPORTING|None|n1|2026-11-27T18:10:35|2026-11-27T18:10:35|N/A|gpuc-2
            14|RUNNING|None|n1|yesterday|2026-11-27T18:10:35|N/A|gpuc-3
            15|RUNNING|None|n[1-|2026-11-27T18:10:35|2026-11-27T18:10:35|N/A|gpuc-4
            x16|RUNNING|None|n1|2026-11-27T18:10:35|2026-11-27T18:10:35|N/A|gpuc-5
            17_3|RUNNING|None|n1|2026-11-27T18:10:35|2026-11-27T18:10:35|N/A|array
            18|RUNNING|None
            19|RUNNING|None|n1|2026-11-27T18:10:35|2026-11-27T18:10:35|N/A|gpuc-6|NEW
            """;

        var r = SlurmOutputParser.ParseSqueue(text);

        r.Rows.Select(x => x.SlurmJobId).ShouldBe([12L]);
        r.Errors.Count.ShouldBe(7);
        r.Errors[0].Problem.ShouldContain("expected 8");
        r.Errors[1].Problem.ShouldContain("unknown job state 'TELEPORTING'");
        r.Errors[2].Problem.ShouldContain("time");
        r.Errors[3].Problem.ShouldContain("unbalanced");
        r.Errors[4].Problem.ShouldContain("not a number");
        r.Errors[5].Line.ShouldBe(8);
        r.Errors[6].Problem.ShouldContain("unexpected column");
    }

    [Fact]
    public void ParseSacct_CapturedOutput_ReadsExitCodesGpusAndElapsed()
    {
        var r = SlurmOutputParser.ParseSacct(Fixture.Read("sacct-allocations.txt"));

        r.Errors.ShouldBeEmpty();
        var failed = r.Rows.Single(x => x.SlurmJobId == 1);
        failed.State.ShouldBe(SlurmJobState.Failed);
        failed.ExitCode.ShouldBe(3);
        failed.Signal.ShouldBe(0);
        failed.Gpus.ShouldBe(2);
        var gang = r.Rows.Single(x => x.SlurmJobId == 3);
        gang.Gpus.ShouldBe(16);
        gang.ElapsedSeconds.ShouldBe(5);
        gang.Nodes.ShouldBe(["n1", "n2"]);
        var cancelled = r.Rows.Single(x => x.SlurmJobId == 7);
        cancelled.State.ShouldBe(SlurmJobState.Cancelled); // "CANCELLED by 0"
        var running = r.Rows.Single(x => x.SlurmJobId == 2);
        running.End.ShouldBeNull(); // "Unknown"
        r.Rows.Single(x => x.SlurmJobId == 5).Name.ShouldBe("someone else|odd name");
    }

    [Fact]
    public void ParseSacct_TimeoutFixture_IsTimeout()
    {
        var r = SlurmOutputParser.ParseSacct(Fixture.Read("sacct-timeout.txt"));

        r.Errors.ShouldBeEmpty();
        r.Rows.ShouldHaveSingleItem().State.ShouldBe(SlurmJobState.Timeout);
    }

    [Fact]
    public void ParseSacct_NewColumnOrErrorLine_IsAnError()
    {
        var text = "1|FAILED|3:0|2026-11-27T18:03:55|2026-11-27T18:03:55|2026-11-27T18:03:55|0|n2|gres/gpu=2|gpuc-99|extra\n"
                   + "sacct: error: slurmdbd: Connection refused\n"
                   + "2|FAILED|x|2026-11-27T18:03:55|2026-11-27T18:03:55|2026-11-27T18:03:55|0|n2|gres/gpu=2|gpuc-98\n"
                   + "3|FAILED|1:0|2026-11-27T18:03:55|2026-11-27T18:03:55|2026-11-27T18:03:55|abc|n2|gres/gpu=2|gpuc-97\n";

        var r = SlurmOutputParser.ParseSacct(text);

        // The extra column lands in the (last) name field: for one of our names that is an error, not a row.
        r.Rows.ShouldBeEmpty();
        r.Errors.Count.ShouldBe(4);
        r.Errors[0].Problem.ShouldContain("unexpected column");
    }

    [Fact]
    public void ParseSinfo_CapturedOutput_ReadsStatesReasonsAndGpus()
    {
        var r = SlurmOutputParser.ParseSinfo(Fixture.Read("sinfo-nodes.txt"));

        r.Errors.ShouldBeEmpty();
        r.Rows.Count.ShouldBe(4);
        r.Rows.ShouldAllBe(n => n.Gpus == 8 && n.Partition == "gpu" && n.DefaultPartition && n.Cpus == 32 && n.MemoryMiB == 16000);
        r.Rows.Single(n => n.Name == "n2").State.ShouldBe("down");
        r.Rows.Single(n => n.Name == "n2").Reason.ShouldBe("bad gpu 3");
        r.Rows.Single(n => n.Name == "n4").Reason.ShouldBe("gpuc: maintenance window");
        r.Rows.Single(n => n.Name == "n1").Reason.ShouldBeNull();
        r.Rows.Single(n => n.Name == "n1").Features.ShouldBe(["ib", "nvme"]);
        r.Rows.Single(n => n.Name == "n2").Features.ShouldBeEmpty(); // (null): no features
        r.Rows.Select(n => SlurmNodeStates.Categorize(n.State)).ShouldBe([NodeState.Up, NodeState.Down, NodeState.Up, NodeState.Draining]);
    }

    [Fact]
    public void ParseSinfo_MalformedLines_AreErrors()
    {
        var r = SlurmOutputParser.ParseSinfo("n[1-4]|gpu*|idle|32|16000|gpu:8|(null)|none\nn5|gpu|idle|many|16000|gpu:8|(null)|none\nn6|gpu|idle|32|16000|gpu:eight|(null)|none\nsinfo: error: foo\n");

        r.Rows.ShouldBeEmpty();
        r.Errors.Count.ShouldBe(4);
    }

    [Theory]
    [InlineData("gpu:8", 8, null)]
    [InlineData("gpu:h100:8(S:0-1)", 8, "h100")]
    [InlineData("gpu:a100:4,gpu:v100:2", 6, "a100")]
    [InlineData("gpu:8,shard:16", 8, null)]
    [InlineData("(null)", 0, null)]
    [InlineData("", 0, null)]
    public void TryGres_Variants(string gres, int gpus, string? type)
    {
        SlurmOutputParser.TryGres(gres, out var n, out var t).ShouldBeTrue();
        n.ShouldBe(gpus);
        t.ShouldBe(type);
    }

    [Theory]
    [InlineData("n[1-3,5]", "n1,n2,n3,n5")]
    [InlineData("gpu[001-003]", "gpu001,gpu002,gpu003")]
    [InlineData("rack[1-2]-n[01-02]", "rack1-n01,rack1-n02,rack2-n01,rack2-n02")]
    [InlineData("a,b[1-2],c", "a,b1,b2,c")]
    [InlineData("", "")]
    [InlineData("(null)", "")]
    public void HostList_Expand(string list, string expected)
    {
        string.Join(',', HostList.Expand(list)).ShouldBe(expected);
    }

    [Theory]
    [InlineData("n[1-")]
    [InlineData("n[3-1]")]
    [InlineData("n1]")]
    [InlineData("n[1-1000000]")]
    [InlineData("a,,b")]
    public void HostList_Malformed_Throws(string list)
    {
        Should.Throw<FormatException>(() => HostList.Expand(list));
    }

    [Fact]
    public void ParseScontrolJobs_CapturedOutput_ReadsExitCodeWithSignal()
    {
        var r = SlurmOutputParser.ParseScontrolJobs(Fixture.Read("scontrol-show-job-cancelled.txt") + Fixture.Read("scontrol-show-job-running.txt"));

        r.Errors.ShouldBeEmpty();
        var c = r.Rows.Single(x => x.SlurmJobId == 7);
        c.Name.ShouldBe("gpuc-104");
        c.State.ShouldBe(SlurmJobState.Cancelled);
        c.ExitCode.ShouldBe(0);
        c.Signal.ShouldBe(15);
        c.End.ShouldBe(T("2026-11-27T18:10:37"));
        var run = r.Rows.Single(x => x.SlurmJobId == 2);
        run.State.ShouldBe(SlurmJobState.Running);
        run.Nodes.ShouldBe(["n1"]);
        run.End.ShouldBeNull();
    }

    [Theory]
    [InlineData("sbatch-parsable.txt", 2)]
    [InlineData("sbatch-parsable-cluster.txt", 2)]
    public void TryParseSbatch_Captured(string file, long id)
    {
        SlurmOutputParser.TryParseSbatch(Fixture.Read(file), out var got).ShouldBeTrue();
        got.ShouldBe(id);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Submitted batch job 12")]
    [InlineData("-1")]
    public void TryParseSbatch_Unexpected_IsFalse(string text)
    {
        SlurmOutputParser.TryParseSbatch(text, out _).ShouldBeFalse();
    }

    [Fact]
    public void SbatchRefusal_Captured_IsPermanent()
    {
        var r = new SlurmCommandResult(1, "", Fixture.Read("sbatch-error-invalid-node.txt"), TimeSpan.Zero);
        SlurmClient.IsTransient(r).ShouldBeFalse();
        SlurmClient.IsTransient(FakeSlurm.Unreachable("sbatch")).ShouldBeTrue();
        SlurmClient.IsTransient(new SlurmCommandResult(-1, "", "", TimeSpan.Zero, TimedOut: true)).ShouldBeTrue();
    }

    [Fact]
    public void SqueueControllerDown_Captured_IsTransient()
    {
        var r = new SlurmCommandResult(1, "", Fixture.Read("squeue-controller-down.txt"), TimeSpan.Zero);
        SlurmClient.IsTransient(r).ShouldBeTrue();
    }

    [Theory]
    [InlineData("idle", NodeState.Up)]
    [InlineData("mixed", NodeState.Up)]
    [InlineData("allocated", NodeState.Up)]
    [InlineData("idle*", NodeState.Up)]
    [InlineData("completing", NodeState.Up)]
    [InlineData("draining", NodeState.Draining)]
    [InlineData("drained", NodeState.Draining)]
    [InlineData("drained*", NodeState.Draining)]
    [InlineData("maint", NodeState.Draining)]
    [InlineData("down", NodeState.Down)]
    [InlineData("down*", NodeState.Down)]
    [InlineData("fail", NodeState.Down)]
    [InlineData("inval", NodeState.Down)]
    [InlineData("unknown", NodeState.Down)]
    [InlineData("powered_down", NodeState.Down)]
    public void NodeStates_Categorize(string state, NodeState expected)
    {
        SlurmNodeStates.Categorize(state).ShouldBe(expected);
    }

    [Theory]
    [InlineData("gpuc-42", true, 42, 0)]
    [InlineData("gpuc-42-r3", true, 42, 3)]
    [InlineData("gpuc-", false, 0, 0)]
    [InlineData("gpuc-x", false, 0, 0)]
    [InlineData("gpuc-4-rx", false, 0, 0)]
    [InlineData("other", false, 0, 0)]
    public void JobName_RoundTrip(string name, bool ours, long id, int attempt)
    {
        SlurmJobName.TryParse("gpuc-", name, out var gotId, out var gotAttempt).ShouldBe(ours);
        if (ours)
        {
            gotId.ShouldBe(id);
            gotAttempt.ShouldBe(attempt);
            SlurmJobName.Format("gpuc-", id, attempt).ShouldBe(name);
        }
    }
}
