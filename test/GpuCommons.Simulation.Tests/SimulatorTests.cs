using GpuCommons.Core.Fleet;
using GpuCommons.Simulation.Metrics;
using GpuCommons.Simulation.Planning;
using GpuCommons.Simulation.Reports;
using GpuCommons.Simulation.Traces;
using GpuCommons.Simulation.Workloads;
using Shouldly;
using Xunit;

namespace GpuCommons.Simulation.Tests;

public class SimulatorTests
{
    private static List<TraceJob> PhillySlice(int count, Fleet fleet, double load)
    {
        var jobs = TraceReader.Read(TestData.PhillyPath, TraceFormat.Philly).Take(count).ToList();
        return LoadShaper.ToOfferedLoad(jobs, fleet.TotalGpus, load);
    }

    private static Fleet Cluster(int nodes, int gpus = 8) =>
        FleetSpecLoader.FromCsv("node,gpus,model,partition,block\n" + string.Join("\n", Enumerable.Range(1, nodes).Select(i => $"n{i:D3},{gpus},V100,main,b{(i - 1) / 4}")), "cluster");

    [Fact]
    public void SameInputsAndSeed_ScheduleCsvIsByteIdentical()
    {
        var fleet = Cluster(16);
        var jobs = PhillySlice(3000, fleet, 1.2);
        var a = TestData.Run(fleet, TestData.Trace(jobs), "multifactor", cycle: 60, mtbfHours: 500);
        var b = TestData.Run(fleet, TestData.Trace(jobs), "multifactor", cycle: 60, mtbfHours: 500);
        a.Csv.Length.ShouldBeGreaterThan(1000);
        a.Csv.ShouldBe(b.Csv);
        a.Result.NodeFailures.ShouldBeGreaterThan(0);
    }

    [Theory]
    [InlineData("fifo")]
    [InlineData("fifo-easy")]
    [InlineData("multifactor")]
    [InlineData("multifactor-conservative")]
    [InlineData("las")]
    [InlineData("srtf")]
    public void PhillyAtHighLoad_EveryPolicy_PassesInvariantChecker(string policy)
    {
        var fleet = Cluster(16);
        var jobs = PhillySlice(2000, fleet, 1.1);
        var (csv, r) = TestData.Run(fleet, TestData.Trace(jobs), policy, cycle: 30, mtbfHours: 300);
        ScheduleChecker.Check(csv, jobs).ShouldBeEmpty();
        r.Jobs.ShouldBe(2000);
        (r.All.Finished + r.All.Failed + r.All.Rejected).ShouldBe(2000);
        r.All.Jct.Mean.ShouldBeGreaterThanOrEqualTo(r.AvgJctLowerBound - 1e-6);
        r.MakespanSeconds.ShouldBeGreaterThanOrEqualTo(r.MakespanLowerBound - 1e-6);
        r.GpuUtilization.ShouldBeLessThanOrEqualTo(Math.Min(1, r.OfferedLoad) + 1e-9);
    }

    [Fact]
    public void SyntheticNational_WithPreemptionAndFailures_PassesInvariantChecker()
    {
        var fleet = BuiltInFleets.Get("small");
        var synth = new NationalSynthesizer(fleet, seed: 7, targetLoad: 1.2);
        var jobs = synth.Generate(1500).ToList();
        var workload = new Workload { Name = "synthetic", Tenancy = synth.Tenancy, Jobs = jobs, ClassOfProject = synth.ClassOfProject, Count = jobs.Count };
        var (csv, r) = TestData.Run(fleet, workload, "multifactor", cycle: 60, mtbfHours: 200);
        ScheduleChecker.Check(csv, jobs).ShouldBeEmpty();
        r.Unfinished.ShouldBe(0);
        r.All.Preemptions.ShouldBeGreaterThan(0);
        r.ByClass.Select(g => g.Name).ShouldContain("startup");
        r.All.Jct.Mean.ShouldBeGreaterThanOrEqualTo(r.AvgJctLowerBound - 1e-6);
    }

    [Fact]
    public void Synthetic_SameSeed_SameJobs_DifferentSeed_DifferentJobs()
    {
        var fleet = BuiltInFleets.Get("national");
        var a = new NationalSynthesizer(fleet, 1).Generate(500).ToList();
        var b = new NationalSynthesizer(fleet, 1).Generate(500).ToList();
        var c = new NationalSynthesizer(fleet, 2).Generate(500).ToList();
        a.ShouldBe(b);
        a.ShouldNotBe(c);
        a.Where(j => j.Tenant.StartsWith("flagship", StringComparison.Ordinal) && j.Gpus >= 256).ShouldAllBe(j => j.Checkpointable && j.Partition != null);
        a.Where(j => j.Tenant.StartsWith("startup", StringComparison.Ordinal)).ShouldAllBe(j => j.Gpus <= 16);
        a.Where(j => j.Tenant.StartsWith("university", StringComparison.Ordinal)).ShouldAllBe(j => j.Gpus <= 32);
    }

    [Fact]
    public void Horizon_LeavesPendingAndRunningRows()
    {
        List<TraceJob> jobs = [TestData.Job(1, 0, 4, 1000), TestData.Job(2, 5, 4, 10)];
        var (csv, r) = TestData.Run(TestData.Nodes(("n1", 4)), TestData.Trace(jobs), "fifo", horizon: 100);
        csv.ShouldContain("\n1,0,0,,running,default,4,n1:0;n1:1;n1:2;n1:3\n");
        csv.ShouldContain("\n2,5,,,pending,,4,\n");
        r.Unfinished.ShouldBe(2);
    }

    [Fact]
    public void JobTooBigForFleet_IsRejectedRow()
    {
        List<TraceJob> jobs = [TestData.Job(1, 0, 64, 10), TestData.Job(2, 0, 1, 10)];
        var (csv, r) = TestData.Run(TestData.Nodes(("n1", 4)), TestData.Trace(jobs), "fifo");
        csv.ShouldContain("\n1,0,,,rejected,,64,\n");
        r.All.Rejected.ShouldBe(1);
        r.All.Finished.ShouldBe(1);
    }

    [Fact]
    public void Walltime_KillsJobAsFailed()
    {
        List<TraceJob> jobs = [TestData.Job(1, 0, 1, 100, walltime: 60)];
        var (csv, r) = TestData.Run(TestData.Nodes(("n1", 4)), TestData.Trace(jobs), "fifo");
        csv.ShouldContain("\n1,0,0,60,failed,default,1,n1:0\n");
        r.All.Failed.ShouldBe(1);
        ScheduleChecker.Check(csv, jobs).ShouldBeEmpty();
    }

    [Fact]
    public void FleetTimeline_NodesArriveLate_JobsWait()
    {
        var fleet = TestData.Nodes(("n1", 4), ("n2", 4));
        List<TraceJob> jobs = [TestData.Job(1, 0, 4, 100), TestData.Job(2, 0, 4, 100)];
        var sw = new StringWriter();
        Simulator.Run(fleet, TestData.Trace(jobs), new SimulationOptions
        {
            Scheduler = Policies.Create("fifo-easy"),
            CycleIntervalSeconds = 0,
            ScheduleOut = sw,
            Timeline = [new FleetEvent(0, ["n2"], NodeState.Down), new FleetEvent(50, ["n2"], NodeState.Up)],
        });
        var rows = ScheduleChecker.Parse(sw.ToString()).OrderBy(r => r.Job).ToList();
        rows.Select(r => $"{r.Job}:{r.Start}-{r.End}@{r.Slots[0].Node}").ShouldBe(["1:0-100@n1", "2:50-150@n2"]);
    }

    [Fact]
    public void LowerBounds_PooledSrpt_HandComputed()
    {
        var b = new LowerBounds(2);
        b.Add(0, 4, 1);
        b.Add(0, 2, 1);
        var (avg, makespan) = b.Finish();

        // Pooled server of 2 GPU-s/s: the 2 GPU-s job ends at 1, the 4 GPU-s one at 3: mean flow 2; mean run 3.
        avg.ShouldBe(3);
        makespan.ShouldBe(4);
    }

    [Fact]
    public void QuantileSketch_WithinHalfPercent()
    {
        var s = new QuantileSketch();
        var values = Enumerable.Range(1, 100_000).Select(i => i * 0.37).ToList();
        foreach (var v in values)
        {
            s.Add(v);
        }

        s.Add(0);
        foreach (var q in new[] { 0.5, 0.95, 0.99 })
        {
            var exact = values[(int)Math.Ceiling(q * 100_001) - 2];
            Math.Abs(s.Quantile(q) - exact).ShouldBeLessThan(exact * 0.006);
        }

        s.Quantile(0).ShouldBe(0);
        s.Max.ShouldBe(37_000);
    }

    [Fact]
    public void Plan_DelayedDelivery_LeavesMoreUnservedDemand()
    {
        var plan = new CapacityPlanner { Fleet = BuiltInFleets.Get("small"), Months = 2, Load = 0.7, MonthlyGrowth = 0.1, ArrivalMonth = 0.5, CycleIntervalSeconds = 900 };
        var results = new List<PlanResult>();
        foreach (var name in new[] { "on-time", "delay-1mo", "half" })
        {
            var scenario = plan.Scenario(name);
            results.Add(new PlanResult(scenario, Simulator.Run(plan.Fleet, plan.Workload(), plan.Options(scenario))));
        }

        double Unserved(PlanResult r) => r.Result.Months.Take(2).Sum(m => m.UnservedGpuHours.Sum());
        Unserved(results[1]).ShouldBeGreaterThan(Unserved(results[0]));
        Unserved(results[2]).ShouldBeGreaterThan(Unserved(results[0]));
        results[0].Result.Jobs.ShouldBe(results[1].Result.Jobs);
        var json = CapacityPlanner.ToJson(plan, results);
        json["scenarios"].ShouldNotBeNull();
        HtmlReport.RenderPlan(results, plan).ShouldContain("data:image/png;base64,");
    }

    [Fact]
    public void Plan_ScenariosRunAtOnce_SameResultsAsOneAfterAnother()
    {
        var plan = new CapacityPlanner { Fleet = BuiltInFleets.Get("small"), Months = 2, Load = 0.9, MonthlyGrowth = 0.1, ArrivalMonth = 0.5, CycleIntervalSeconds = 900 };
        string[] names = ["on-time", "delay-1mo", "half", "no-arrival"];
        var oneByOne = plan.Run(names, maxParallel: 1);
        var atOnce = plan.Run(names, maxParallel: 4);

        atOnce.Select(r => r.Scenario.Name).ShouldBe(names);
        oneByOne[0].Result.Jobs.ShouldBeGreaterThan(1000);
        PlanJson(plan, atOnce).ShouldBe(PlanJson(plan, oneByOne));
    }

    /// <summary>The plan's JSON without the measured times.</summary>
    private static string PlanJson(CapacityPlanner plan, IReadOnlyList<PlanResult> results)
    {
        var json = CapacityPlanner.ToJson(plan, results);
        foreach (var scenario in (IEnumerable<Dictionary<string, object?>>)json["scenarios"]!)
        {
            scenario.Remove("wall_seconds").ShouldBeTrue();
            var scheduling = (Dictionary<string, object?>)scenario["scheduling"]!;
            scheduling.Remove("full_cycle_seconds").ShouldBeTrue();
            scheduling.Remove("incremental_cycle_seconds").ShouldBeTrue();
        }

        return System.Text.Json.JsonSerializer.Serialize(json);
    }

    [Fact]
    public void HtmlReport_IsSelfContainedWithPlots()
    {
        var fleet = Cluster(8);
        var jobs = PhillySlice(500, fleet, 1.0);
        var r = Simulator.Run(fleet, TenantMapping.Build("philly", jobs, TenantMappingKind.National), new SimulationOptions());
        var html = HtmlReport.Render([r], "test report");
        html.ShouldStartWith("<!DOCTYPE html>");
        html.Split("data:image/png;base64,").Length.ShouldBeGreaterThanOrEqualTo(4);
        html.ShouldNotContain("http://");
        r.ByClass.Select(g => g.Name).ShouldContain("flagship");
    }
}
