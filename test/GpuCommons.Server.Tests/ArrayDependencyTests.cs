using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Backends;
using GpuCommons.Core.Jobs;
using Microsoft.EntityFrameworkCore;
using Shouldly;
using Xunit;

namespace GpuCommons.Server.Tests;

/// <summary>Job arrays and dependencies (docs/batch-scripts.md), on SQLite and PostgreSQL.</summary>
public sealed class ArrayDependencyTests
{
    private static object Array(string indices, int? maxRunning = null, double gpus = 1, string name = "arr") =>
        new { project = "demo", name, gpus, walltime = "1h", command = new[] { "sleep", "1" }, array = new { indices, maxRunning } };

    private static object After(string type, params long[] jobs) =>
        new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "sleep", "1" }, dependency = new[] { new { type, jobs } } };

    private static async Task<long> SubmitAsync(HttpClient c, object job)
    {
        var r = await c.PostAsJsonAsync("/api/jobs", job);
        r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
        return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
    }

    private static async Task<JsonElement> ProblemAsync(HttpClient c, object job)
    {
        var r = await c.PostAsJsonAsync("/api/jobs", job);
        var text = await r.Content.ReadAsStringAsync();
        ((int)r.StatusCode).ShouldBe(400, text);
        return JsonDocument.Parse(text).RootElement;
    }

    private static string State(JsonElement job) => job.GetProperty("state").GetString()!;

    private static async Task WaitStateAsync(ServerHarness s, long id, string state) =>
        await ServerHarness.EventuallyAsync(async () => State(await s.JobAsync(id)) == state, $"job {id} {state}");

    /// <summary>The array's tasks the backend runs now: task index → job id.</summary>
    private static Dictionary<long, long> RunningTasks(TestBackend b, long array) =>
        b.Running.Values.Where(j => j.ArrayTask?.ArrayJobId == array).ToDictionary(j => j.ArrayTask!.TaskId, j => j.JobId);

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task AnArray_IsOneRecord_ExpandedLazily_Throttled_EachTaskWithItsVariables_AndCharged(string provider)
    {
        var backend = new TestBackend();
        await using var s = await ServerHarness.StartAsync(TestDatabase.For(provider), backend);
        var bob = s.Client("bob");
        var id = await SubmitAsync(bob, Array("0-19:2,40", maxRunning: 3));
        var started = new HashSet<long>();
        var maxLive = 0;
        await ServerHarness.EventuallyAsync(() => Task.FromResult(RunningTasks(backend, id).Count == 3), "three tasks running");

        // Lazily: the array's row and three task rows, not eleven.
        await using (var db = s.Factory.Create())
        {
            (await db.Jobs.CountAsync(j => j.Id == id || j.ArrayJobId == id)).ShouldBe(4);
        }

        var first = backend.Running.Values.Single(j => j.ArrayTask?.TaskId == 0);
        first.ArrayTask!.Variables().ShouldContain(new KeyValuePair<string, string>("SLURM_ARRAY_TASK_ID", "0"));
        first.ArrayTask.Variables().ShouldContain(new KeyValuePair<string, string>("GPUC_ARRAY_JOB_ID", id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        first.ArrayTask.Variables().ShouldContain(new KeyValuePair<string, string>("GPUC_ARRAY_TASK_COUNT", "11"));
        var shown = await s.JobAsync(id);
        shown.GetProperty("array").GetProperty("pendingTasks").GetString().ShouldBe("6-18:2,40");
        shown.GetProperty("reason").GetString().ShouldBe("JobArrayTaskLimit");
        var task = await bob.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}/tasks/2");
        task.GetProperty("arrayTaskId").GetInt64().ShouldBe(2);
        State(task).ShouldBe("running");
        (await bob.GetAsync($"/api/jobs/{id}/tasks/3")).StatusCode.ShouldBe(HttpStatusCode.NotFound); // not an index of it

        for (var round = 0; round < 200 && State(await s.JobAsync(id)) == "pending"; round++)
        {
            var running = RunningTasks(backend, id);
            maxLive = Math.Max(maxLive, running.Count);
            foreach (var (t, job) in running)
            {
                started.Add(t);
                backend.Finish(job);
            }

            await Task.Delay(30);
        }

        State(await s.JobAsync(id)).ShouldBe("finished");
        maxLive.ShouldBeLessThanOrEqualTo(3);
        started.OrderBy(x => x).ShouldBe([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 40]);
        await using var ctx = s.Factory.Create();
        var tasks = await ctx.Jobs.Where(j => j.ArrayJobId == id).ToListAsync();
        tasks.Count.ShouldBe(11);
        tasks.ShouldAllBe(t => t.State == JobState.Finished);
        (await ctx.Ledger.CountAsync(l => tasks.Select(t => t.Id).Contains(l.JobId))).ShouldBe(11);
        (await ctx.Ledger.CountAsync(l => l.JobId == id)).ShouldBe(0);
        backend.Starts.Values.ShouldAllBe(n => n == 1);
    }

    [Fact]
    public async Task ALargeArray_ShowsTheEngineOnlyItsWindow_AndCancellingItEndsEveryTask()
    {
        var backend = new TestBackend();
        await using var s = await ServerHarness.StartAsync(backend: backend, configure: o => o.ArrayPendingWindow = 4);
        var bob = s.Client("bob");
        var id = await SubmitAsync(bob, Array("0-9999", gpus: 8));
        await ServerHarness.EventuallyAsync(() => Task.FromResult(RunningTasks(backend, id).Count == 1), "one task running");
        await ServerHarness.EventuallyAsync(() => Task.FromResult(s.Coordinator.View.PendingCount == 4), "four pending");
        await using (var db = s.Factory.Create())
        {
            (await db.Jobs.CountAsync(j => j.ArrayJobId == id)).ShouldBe(5);
        }

        (await s.JobAsync(id)).GetProperty("array").GetProperty("pendingTasks").GetString().ShouldBe("5-9999");
        var list = await bob.GetFromJsonAsync<JsonElement>("/api/jobs?state=pending,running");
        list.GetProperty("items").GetArrayLength().ShouldBe(6);

        (await bob.PostAsync($"/api/jobs/{id}/cancel", null)).StatusCode.ShouldBe(HttpStatusCode.Accepted);
        await WaitStateAsync(s, id, "cancelled");
        backend.Running.Count.ShouldBe(0);
        await using var ctx = s.Factory.Create();
        (await ctx.Jobs.CountAsync(j => j.ArrayJobId == id)).ShouldBe(5);
        (await ctx.Jobs.CountAsync(j => j.ArrayJobId == id && j.State == JobState.Cancelled)).ShouldBe(5);
        s.Coordinator.View.PendingCount.ShouldBe(0);
    }

    [Fact]
    public async Task OneTask_IsCancelled_BeforeItIsExpanded_AndNeverRuns()
    {
        var backend = new TestBackend();
        await using var s = await ServerHarness.StartAsync(backend: backend);
        var bob = s.Client("bob");
        var id = await SubmitAsync(bob, Array("0-5", maxRunning: 1));
        await ServerHarness.EventuallyAsync(() => Task.FromResult(RunningTasks(backend, id).Count == 1), "task 0 running");
        var r = await bob.DeleteAsync($"/api/jobs/{id}/tasks/3");
        r.StatusCode.ShouldBe(HttpStatusCode.Accepted, await r.Content.ReadAsStringAsync());
        State(await bob.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}/tasks/3")).ShouldBe("cancelled");
        (await s.JobAsync(id)).GetProperty("array").GetProperty("pendingTasks").GetString().ShouldBe("1-2,4-5");
        (await s.Client("sam").DeleteAsync($"/api/jobs/{id}/tasks/4")).StatusCode.ShouldBe(HttpStatusCode.NotFound);

        var started = new List<long>();
        for (var round = 0; round < 200 && State(await s.JobAsync(id)) == "pending"; round++)
        {
            foreach (var (t, job) in RunningTasks(backend, id))
            {
                started.Add(t);
                backend.Finish(job);
            }

            await Task.Delay(30);
        }

        started.ShouldBe([0, 1, 2, 4, 5]);
        var array = await s.JobAsync(id);
        State(array).ShouldBe("cancelled");
        array.GetProperty("outcome").GetString()!.ShouldContain("5 finished, 0 failed, 1 cancelled");
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task AnArray_SurvivesARestart_NoTaskLostOrRunTwice(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend();
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var id = await SubmitAsync(s.Client("bob"), Array("0-9", maxRunning: 2));
            await ServerHarness.EventuallyAsync(() => Task.FromResult(RunningTasks(backend, id).Count == 2), "two tasks running");
            backend.Finish(RunningTasks(backend, id)[0]);
            await ServerHarness.EventuallyAsync(() => Task.FromResult(RunningTasks(backend, id).ContainsKey(2)), "task 2 running");
            await s.StopAsync();

            s = await ServerHarness.StartAsync(db, backend);
            for (var round = 0; round < 300 && State(await s.JobAsync(id)) == "pending"; round++)
            {
                foreach (var (_, job) in RunningTasks(backend, id))
                {
                    backend.Finish(job);
                }

                await Task.Delay(30);
            }

            State(await s.JobAsync(id)).ShouldBe("finished");
            await using var ctx = s.Factory.Create();
            var tasks = await ctx.Jobs.Where(j => j.ArrayJobId == id).OrderBy(j => j.ArrayTaskId).ToListAsync();
            tasks.Select(t => t.ArrayTaskId!.Value).ShouldBe([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
            tasks.ShouldAllBe(t => t.State == JobState.Finished && t.Attempt == 0);
            backend.Starts.Where(kv => tasks.Select(t => t.Id).Contains(kv.Key)).Select(kv => kv.Value).ShouldAllBe(n => n == 1);
            (await ctx.Ledger.CountAsync(l => tasks.Select(t => t.Id).Contains(l.JobId))).ShouldBe(10);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task Dependencies_AllFourKinds_HoldUntilMet_AndAreEndedWhenNeverMet(string provider)
    {
        var backend = new TestBackend();
        await using var s = await ServerHarness.StartAsync(TestDatabase.For(provider), backend);
        var bob = s.Client("bob");
        var a = await SubmitAsync(bob, ApiTests.Job(1));
        var ok = await SubmitAsync(bob, After("afterok", a));
        var notOk = await SubmitAsync(bob, After("afternotok", a));
        var any = await SubmitAsync(bob, After("afterany", a));
        var solo1 = await SubmitAsync(bob, new { project = "demo", name = "solo", gpus = 1, walltime = "1h", command = new[] { "sleep", "1" } });
        var solo2 = await SubmitAsync(bob, new { project = "demo", name = "solo", gpus = 1, walltime = "1h", command = new[] { "sleep", "1" }, dependency = new[] { new { type = "singleton" } } });
        await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(a) && backend.Running.ContainsKey(solo1)), "a and solo1 running");
        await Task.Delay(300); // a few passes: nothing held may start
        foreach (var id in new[] { ok, notOk, any, solo2 })
        {
            backend.Running.ContainsKey(id).ShouldBeFalse();
            var job = await s.JobAsync(id);
            State(job).ShouldBe("pending");
            job.GetProperty("reason").GetString().ShouldBe("Dependency");
        }

        (await s.JobAsync(ok)).GetProperty("reasonText").GetString()!.ShouldContain($"afterok:{a}");

        backend.Finish(a, 0);
        await WaitStateAsync(s, ok, "running");
        await WaitStateAsync(s, any, "running");
        await WaitStateAsync(s, notOk, "cancelled");
        (await s.JobAsync(notOk)).GetProperty("outcome").GetString()!.ShouldStartWith("DependencyNeverSatisfied");
        backend.Starts.ContainsKey(notOk).ShouldBeFalse();
        State(await s.JobAsync(solo2)).ShouldBe("pending");

        backend.Finish(solo1, 0);
        await WaitStateAsync(s, solo2, "running");

        // afternotok met by a failure; afterok on an array waits for every task.
        var e = await SubmitAsync(bob, ApiTests.Job(1));
        var f = await SubmitAsync(bob, After("afternotok", e));
        var arr = await SubmitAsync(bob, Array("0-1"));
        var g = await SubmitAsync(bob, After("afterok", arr));
        await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(e) && RunningTasks(backend, arr).Count == 2), "e and the array running");
        backend.Finish(e, 3);
        await WaitStateAsync(s, f, "running");
        backend.Finish(RunningTasks(backend, arr)[0], 0);
        await Task.Delay(200);
        State(await s.JobAsync(g)).ShouldBe("pending");
        backend.Finish(RunningTasks(backend, arr)[1], 0);
        await WaitStateAsync(s, arr, "finished");
        await WaitStateAsync(s, g, "running");
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task AHeldJob_SurvivesARestart_AndStartsWhenItsDependencyIsMet(string provider)
    {
        var db = TestDatabase.For(provider);
        var backend = new TestBackend();
        var s = await ServerHarness.StartAsync(db, backend);
        try
        {
            var a = await SubmitAsync(s.Client("bob"), ApiTests.Job(1));
            var b = await SubmitAsync(s.Client("bob"), After("afterok", a));
            var held = await SubmitAsync(s.Client("bob"), new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "sleep", "1" }, array = new { indices = "0-2" }, dependency = new[] { new { type = "afterany", jobs = new[] { a } } } });
            await ServerHarness.EventuallyAsync(() => Task.FromResult(backend.Running.ContainsKey(a)), "a running");
            await s.StopAsync();

            s = await ServerHarness.StartAsync(db, backend);
            (await s.JobAsync(b)).GetProperty("reason").GetString().ShouldBe("Dependency");
            (await s.JobAsync(held)).GetProperty("reason").GetString().ShouldBe("Dependency");
            backend.Running.ContainsKey(b).ShouldBeFalse();
            backend.Finish(a, 0);
            await WaitStateAsync(s, b, "running");
            await ServerHarness.EventuallyAsync(() => Task.FromResult(RunningTasks(backend, held).Count == 3), "the held array's tasks running");
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Fact]
    public async Task Dependencies_OnAnotherTenantsJob_AndBadSpecs_AreRefusedClearly()
    {
        await using var s = await ServerHarness.StartAsync();
        var bobs = await SubmitAsync(s.Client("bob"), ApiTests.Job(1));
        var sam = s.Client("sam");
        object Sam(object dependency) => new { project = "startup-demo", gpus = 1, walltime = "1h", command = new[] { "true" }, dependency };

        // Another tenant's job answers exactly as a job that does not exist.
        var p1 = await ProblemAsync(sam, Sam(new[] { new { type = "afterok", jobs = new[] { bobs } } }));
        var p2 = await ProblemAsync(sam, Sam(new[] { new { type = "afterok", jobs = new[] { 999_999L } } }));
        p1.GetProperty("field").GetString().ShouldBe("dependency[0].jobs");
        p1.GetProperty("detail").GetString().ShouldBe($"dependency[0].jobs: no job {bobs} that you can see");
        p2.GetProperty("detail").GetString().ShouldBe("dependency[0].jobs: no job 999999 that you can see");

        (await ProblemAsync(sam, Sam(new[] { new { type = "before", jobs = new[] { 1L } } }))).GetProperty("field").GetString().ShouldBe("dependency[0].type");
        (await ProblemAsync(sam, Sam(new[] { new { type = "afterok", jobs = System.Array.Empty<long>() } }))).GetProperty("field").GetString().ShouldBe("dependency[0].jobs");
        (await ProblemAsync(sam, Sam(new[] { new { type = "singleton", jobs = new[] { 1L } } }))).GetProperty("field").GetString().ShouldBe("dependency[0].jobs");
        var bob = s.Client("bob");
        (await ProblemAsync(bob, Array("5-2"))).GetProperty("field").GetString().ShouldBe("array.indices");
        (await ProblemAsync(bob, Array("0-10,5"))).GetProperty("detail").GetString()!.ShouldContain("increasing order");
        (await ProblemAsync(bob, Array("0-4000001"))).GetProperty("field").GetString().ShouldBe("array.indices");
        (await ProblemAsync(bob, Array("0-9", maxRunning: 0))).GetProperty("field").GetString().ShouldBe("array.maxRunning");
        (await ProblemAsync(bob, Array("0-9", gpus: 16))).GetProperty("field").GetString().ShouldBe("gpus");

        // Another tenant's array and its tasks are not found.
        var arr = await SubmitAsync(bob, Array("0-3"));
        (await sam.GetAsync($"/api/jobs/{arr}/tasks/1")).StatusCode.ShouldBe(HttpStatusCode.NotFound);
        (await sam.PostAsync($"/api/jobs/{arr}/cancel", null)).StatusCode.ShouldBe(HttpStatusCode.NotFound);
    }
}
