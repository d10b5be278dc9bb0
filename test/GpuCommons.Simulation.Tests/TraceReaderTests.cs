using GpuCommons.Core;
using GpuCommons.Simulation.Traces;
using Shouldly;
using Xunit;

namespace GpuCommons.Simulation.Tests;

public class TraceReaderTests
{
    [Fact]
    public void Philly_ReadWhole_StatisticsMatchFormatMd()
    {
        var jobs = TraceReader.Read(TestData.PhillyPath, TraceFormat.Philly);
        var stats = TraceStats.Of(jobs);

        // FORMAT.md: "82,247 jobs", "93.2% 1-GPU", "mean 13,136 s, median 1,144 s", "total 978,078 GPU-hours".
        var format = File.ReadAllText(Repo.Path("data", "traces", "philly", "FORMAT.md"));
        format.ShouldContain("82,247 jobs");
        format.ShouldContain("93.2% 1-GPU");
        format.ShouldContain("mean 13,136 s, median 1,144 s");
        format.ShouldContain("total 978,078 GPU-hours");
        stats.Jobs.ShouldBe(82_247);
        Math.Round(stats.ShareOneGpu * 100, 1).ShouldBe(93.2);
        Math.Round(stats.MeanDurationSeconds).ShouldBe(13_136);
        stats.MedianDurationSeconds.ShouldBe(1_144);
        Math.Round(stats.GpuHours).ShouldBe(978_078);
        stats.Tenants.ShouldBe(15);
        Math.Round(stats.SpanSeconds / 86400, 1).ShouldBe(108.9);
    }

    [Fact]
    public void Philly_UnsortedRows_AreSortedBySubmitThenRow()
    {
        var jobs = TraceReader.Read(TestData.PhillyPath, TraceFormat.Philly);
        jobs[0].SubmitSeconds.ShouldBe(0);
        for (var i = 1; i < jobs.Count; i++)
        {
            (jobs[i].SubmitSeconds > jobs[i - 1].SubmitSeconds || (jobs[i].SubmitSeconds == jobs[i - 1].SubmitSeconds && jobs[i].Id > jobs[i - 1].Id)).ShouldBeTrue();
        }

        var csv = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 07:01:55,66.0,1,66.0,a\n2017-10-09 06:13:03,10.0,2,20.0,b\n";
        var small = TraceReader.Read(new StringReader(csv), "t.csv");
        small.Select(j => j.Label).ShouldBe(["2", "1"]);
        small[1].SubmitSeconds.ShouldBe(2932);
    }

    [Theory]
    [InlineData("2017-10-09 07:01:55,66.0,x,66.0,a", "bad.csv, line 3, column 3 (num_gpus)", "'x' is not a whole number")]
    [InlineData("2017-10-09 07:01:55,66.0,1.5,99.0,a", "bad.csv, line 3, column 3 (num_gpus)", "not a whole number")]
    [InlineData("2017-10-09 07:01:55,-3,1,-3,a", "bad.csv, line 3, column 2 (duration)", "more than 0")]
    [InlineData("2017-13-09 07:01:55,66.0,1,66.0,a", "bad.csv, line 3, column 1 (timestamp)", "is not a time")]
    [InlineData("2017-10-09 07:01:55,66.0,2,66.0,a", "bad.csv, line 3, column 4 (gpu_time)", "duration × num_gpus")]
    [InlineData("2017-10-09 07:01:55,66.0,1,66.0,", "bad.csv, line 3, column 5 (cluster)", "is empty")]
    [InlineData("2017-10-09 07:01:55,66.0,1,66.0", "bad.csv, line 3", "expected 5 columns")]
    public void Philly_MalformedRow_NamesFileLineAndColumn(string bad, string field, string reason)
    {
        var csv = "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-09 06:13:03,10.0,2,20.0,b\n" + bad + "\n";
        var e = Should.Throw<SpecException>(() => TraceReader.Read(new StringReader(csv), "bad.csv", TraceFormat.Philly));
        e.Field.ShouldBe(field);
        e.Reason.ShouldContain(reason);
    }

    [Theory]
    [InlineData("id,submit_s,duration_s,gpus\n1,0,10,1.5\n", "jobs.csv, line 2, column 4 (gpus)")]
    [InlineData("id,submit_s,duration_s,gpus\n1,0,10,0.0005\n", "jobs.csv, line 2, column 4 (gpus)")]
    [InlineData("id,submit_s,duration_s,gpus\n1,0,10,1\n1,5,10,1\n", "jobs.csv, line 3, column 1 (id)")]
    [InlineData("id,submit_s,duration_s,gpus,priority\n1,0,10,1,urgent\n", "jobs.csv, line 2, column 5 (priority)")]
    [InlineData("id,submit_s,duration_s,gpus,nodes\n1,0,10,16,0\n", "jobs.csv, line 2, column 5 (nodes)")]
    [InlineData("id,submit_s,duration_s,gpus,walltime_s\n1,0,10,1,abc\n", "jobs.csv, line 2, column 5 (walltime_s)")]
    [InlineData("id,submit_s,gpus\n1,0,1\n", "jobs.csv, line 1")]
    [InlineData("id,submit_s,duration_s,gpus,colour\n1,0,10,1,red\n", "jobs.csv, line 1, column 5")]
    public void GpucCsv_MalformedRow_NamesFileLineAndColumn(string csv, string field)
    {
        var e = Should.Throw<SpecException>(() => TraceReader.Read(new StringReader(csv), "jobs.csv", TraceFormat.GpucCsv));
        e.Field.ShouldBe(field);
    }

    [Fact]
    public void GpucCsv_WriteThenRead_RoundTrips()
    {
        List<TraceJob> jobs =
        [
            TestData.Job(1, 0, 0.25, 100.5) with { User = "alice", Partition = "p1" },
            TestData.Job(2, 3.125, 16, 7200, tenant: "lab, inc", walltime: 9000, priority: Core.Jobs.PriorityClass.Preemptible, checkpointable: true) with { Nodes = 2 },
            TestData.Job(3, 3.125, 1, 1, priority: Core.Jobs.PriorityClass.High),
        ];
        var sw = new StringWriter();
        new JobCsvWriter(sw).WriteAll(jobs);
        var back = TraceReader.Read(new StringReader(sw.ToString()), "jobs.csv");
        back.ShouldBe(jobs);
    }

    [Fact]
    public void GpucCsv_UnsortedAndNonNumericIds_SortedWithRowIds()
    {
        var csv = "id,submit_s,duration_s,gpus,tenant\nb,50,10,1,x\na,10,10,2,y\n";
        var jobs = TraceReader.Read(new StringReader(csv), "jobs.csv");
        jobs.Select(j => (j.Label, j.Id)).ShouldBe([("a", 2L), ("b", 1L)]);
    }

    [Theory]
    [InlineData("philly", 160)]
    [InlineData("saturn", 160)]
    [InlineData("pollux-philly", 160)]
    public void Sia_ShippedMixes_Read(string mix, int count)
    {
        var jobs = TraceReader.Read(Repo.Path("data", "traces", "sia-pollux", mix, "workload-1.csv"));
        jobs.Count.ShouldBe(count);
        jobs.ShouldAllBe(j => j.DurationSeconds > 0 && j.Gpus >= 1);
        File.Exists(Repo.Path("data", "traces", "sia-pollux", "FORMAT.md")).ShouldBeTrue();
    }

    [Fact]
    public void Sia_UnknownApplication_NamesColumn()
    {
        var csv = "name,time,application,num_replicas,batch_size\nx-0,1,gpt5,4,32\n";
        var e = Should.Throw<SpecException>(() => TraceReader.Read(new StringReader(csv), "w.csv"));
        e.Field.ShouldBe("w.csv, line 2, column 3 (application)");
    }

    [Fact]
    public void UnknownHeader_IsAnError()
    {
        var e = Should.Throw<SpecException>(() => TraceReader.Read(new StringReader("a,b,c\n1,2,3\n"), "x.csv"));
        e.Field.ShouldBe("x.csv, line 1");
    }
}
