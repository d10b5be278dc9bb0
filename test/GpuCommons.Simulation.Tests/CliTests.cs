using System.Diagnostics;
using System.Text.Json;
using GpuCommons.Simulation.Traces;
using Shouldly;
using Xunit;

namespace GpuCommons.Simulation.Tests;

/// <summary>Runs the real <c>gpuc</c> (built beside this project) as a process, the way the acceptance checks do.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gpuc-sim-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Gpuc()
    {
        // This test's own build configuration and framework (bin/<Configuration>/<tfm>/).
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var path = Repo.Path("src", "GpuCommons.Cli", "bin", here.Parent!.Name, here.Name, "gpuc.dll");
        File.Exists(path).ShouldBeTrue($"gpuc is not built at {path}");
        return path;
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Repo.Root };
        psi.ArgumentList.Add(Gpuc());
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit(120_000).ShouldBeTrue("gpuc did not finish in 2 minutes");
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [Fact]
    public void Simulate_SiaMixOnNodeListCsv_PrintsJsonAndWritesCsvs()
    {
        var fleet = Path.Combine(_dir, "nodes.csv");
        File.WriteAllText(fleet, "node,gpus,model\n" + string.Join("\n", Enumerable.Range(1, 8).Select(i => $"g{i},8,A100")) + "\n");
        var schedule = Path.Combine(_dir, "schedule.csv");
        var jobsOut = Path.Combine(_dir, "jobs.csv");
        var trace = Repo.Path("data", "traces", "sia-pollux", "philly", "workload-1.csv");
        var (code, stdout, stderr) = Run("simulate", "--trace", trace, "--fleet", fleet, "--policy", "fifo-easy", "--schedule-out", schedule, "--jobs-out", jobsOut, "--json");
        code.ShouldBe(0, stderr);

        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        foreach (var key in new[] { "jobs", "wall_seconds", "avg_jct_s", "avg_jct_lower_bound_s", "p99_wait_s", "gpu_allocation", "offered_load" })
        {
            root.TryGetProperty(key, out _).ShouldBeTrue(key);
        }

        root.GetProperty("jobs").GetInt64().ShouldBe(160);
        root.GetProperty("avg_jct_s").GetDouble().ShouldBeGreaterThanOrEqualTo(root.GetProperty("avg_jct_lower_bound_s").GetDouble());

        // What scheduling cost: every job was looked at by some pass, and the passes took some time.
        (root.GetProperty("jobs_considered_full").GetInt64() + root.GetProperty("jobs_considered_incremental").GetInt64()).ShouldBeGreaterThanOrEqualTo(160);
        root.GetProperty("full_cycles").GetInt64().ShouldBeGreaterThan(0);
        root.GetProperty("scheduling_cycles").GetInt64().ShouldBeGreaterThanOrEqualTo(root.GetProperty("full_cycles").GetInt64());
        (root.GetProperty("full_cycle_seconds").GetDouble() + root.GetProperty("incremental_cycle_seconds").GetDouble()).ShouldBeGreaterThan(0);

        // The jobs CSV is the GpuCommons job CSV; replaying it gives the same schedule.
        var jobs = TraceReader.Read(jobsOut);
        jobs.Count.ShouldBe(160);
        ScheduleChecker.Check(File.ReadAllText(schedule), jobs).ShouldBeEmpty();
        var schedule2 = Path.Combine(_dir, "schedule2.csv");
        Run("simulate", "--trace", jobsOut, "--trace-format", "gpuc-csv", "--fleet", fleet, "--policy", "fifo-easy", "--schedule-out", schedule2, "--json").Code.ShouldBe(0);
        File.ReadAllText(schedule2).ShouldBe(File.ReadAllText(schedule));
    }

    [Fact]
    public void Simulate_BadRow_ExitsWithUsageAndNamesTheCell()
    {
        var trace = Path.Combine(_dir, "bad.csv");
        File.WriteAllText(trace, "id,submit_s,duration_s,gpus\n1,0,10,1\n2,5,ten,1\n");
        var (code, _, stderr) = Run("simulate", "--trace", trace, "--trace-format", "gpuc-csv", "--fleet", "small", "--json");
        code.ShouldBe(2);
        stderr.ShouldContain("bad.csv, line 3, column 3 (duration_s)");
    }

    [Fact]
    public void Compare_TwoPolicies_PrintsBoth()
    {
        var trace = Repo.Path("data", "traces", "sia-pollux", "saturn", "workload-1.csv");
        var (code, stdout, stderr) = Run("compare", "--trace", trace, "--fleet", "small", "--policies", "fifo,srtf", "--json");
        code.ShouldBe(0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        doc.RootElement.GetProperty("policies").GetArrayLength().ShouldBe(2);
    }

    [Fact]
    public void Simulate_WithAwards_KeepsItsKeys_AndShowsWhatTheSharedQueueGets()
    {
        var fleet = Path.Combine(_dir, "nodes4.csv");
        File.WriteAllText(fleet, "node,gpus,model\n" + string.Join("\n", Enumerable.Range(1, 4).Select(i => $"g{i},8,A100")) + "\n");
        var awards = Path.Combine(_dir, "awards.json");
        File.WriteAllText(awards, """
            [{"kind":"capacity","partition":"default","gpus":16,"start":"2026-01-01T00:00:00Z","end":"2026-02-01T00:00:00Z","status":"active"},
             {"kind":"gpu_hours","partition":"default","gpus":0,"start":"2026-01-01T00:00:00Z","end":"2026-02-01T00:00:00Z","status":"active"}]
            """);
        var trace = Repo.Path("data", "traces", "sia-pollux", "philly", "workload-1.csv");
        var (code, stdout, stderr) = Run("simulate", "--trace", trace, "--fleet", fleet, "--policy", "fifo-easy", "--awards", awards, "--start", "2026-01", "--json");
        code.ShouldBe(0, stderr);
        using var doc = JsonDocument.Parse(stdout);
        var root = doc.RootElement;
        foreach (var key in new[] { "jobs", "wall_seconds", "avg_jct_s", "p99_wait_s", "gpu_allocation", "offered_load", "awards", "awards_start", "dedicated", "shared_queue_months" })
        {
            root.TryGetProperty(key, out _).ShouldBeTrue(key);
        }

        root.GetProperty("jobs").GetInt64().ShouldBe(160);
        root.GetProperty("awards").GetInt32().ShouldBe(1);
        var first = root.GetProperty("dedicated")[0];
        first.GetProperty("month").GetString().ShouldBe("2026-01");
        first.GetProperty("dedicated").GetInt32().ShouldBe(16);
        first.GetProperty("shared_queue").GetInt32().ShouldBe(16);
        root.GetProperty("shared_queue_months")[0].GetProperty("shared_queue_gpus").GetInt32().ShouldBe(16);

        Run("simulate", "--trace", trace, "--fleet", fleet, "--awards", Path.Combine(_dir, "none.json"), "--json").Code.ShouldBe(2);
    }
}
