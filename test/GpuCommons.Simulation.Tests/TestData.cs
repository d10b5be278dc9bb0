using GpuCommons.Core.Fleet;
using GpuCommons.Simulation.Traces;
using GpuCommons.Simulation.Workloads;

namespace GpuCommons.Simulation.Tests;

internal static class TestData
{
    public static string PhillyPath => Repo.Path("data", "traces", "philly", "philly.csv.gz");

    public static Fleet Nodes(params (string Name, int Gpus)[] nodes)
    {
        var csv = "node,gpus,model\n" + string.Join("\n", nodes.Select(n => $"{n.Name},{n.Gpus},T4"));
        return FleetSpecLoader.FromCsv(csv, "test");
    }

    public static TraceJob Job(long id, double submit, double gpus, double duration, string tenant = "t", double? walltime = null, Core.Jobs.PriorityClass priority = Core.Jobs.PriorityClass.Normal, bool checkpointable = false) => new()
    {
        Id = id,
        Label = id.ToString(System.Globalization.CultureInfo.InvariantCulture),
        SubmitSeconds = submit,
        DurationSeconds = duration,
        Gpus = gpus,
        Tenant = tenant,
        WalltimeSeconds = walltime,
        Priority = priority,
        Checkpointable = checkpointable,
    };

    /// <summary>Runs a workload and returns the schedule CSV and the result.</summary>
    public static (string Csv, SimulationResult Result) Run(Fleet fleet, Workload workload, string policy = "multifactor", double cycle = 0, double mtbfHours = 0, double? horizon = null, Action<Scheduling.SchedulerOptions>? tune = null)
    {
        var sw = new StringWriter { NewLine = "\n" };
        var scheduler = Policies.Create(policy);
        tune?.Invoke(scheduler);
        var result = Simulator.Run(fleet, workload, new SimulationOptions
        {
            Scheduler = scheduler,
            PolicyName = policy,
            CycleIntervalSeconds = cycle,
            NodeMtbfHours = mtbfHours,
            RepairHours = 2,
            HorizonSeconds = horizon,
            ScheduleOut = sw,
        });
        return (sw.ToString(), result);
    }

    public static Workload Trace(List<TraceJob> jobs, string name = "test") => TenantMapping.Build(name, jobs, TenantMappingKind.None);
}
