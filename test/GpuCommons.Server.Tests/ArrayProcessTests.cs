using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace GpuCommons.Server.Tests;

/// <summary>An array's tasks as real processes on the local backend: each sees its task id.</summary>
[Collection("processes")]
public sealed class ArrayProcessTests
{
    [Fact]
    public async Task ArrayTasks_SeeTheirTaskIds_OnTheLocalBackend()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-e2e-" + Guid.NewGuid().ToString("N"));
        var s = await ServeProcess.StartAsync(dir);
        try
        {
            var bob = s.Client("bob");
            var r = await bob.PostAsJsonAsync("/api/jobs", new
            {
                project = "demo", gpus = 1, walltime = "5m", array = new { indices = "5-6" },
                command = new[] { "sh", "-c", "echo t=$GPUC_ARRAY_TASK_ID s=$SLURM_ARRAY_TASK_ID a=$SLURM_ARRAY_JOB_ID n=$GPUC_ARRAY_TASK_COUNT" },
            });
            r.StatusCode.ShouldBe(HttpStatusCode.Created, await r.Content.ReadAsStringAsync());
            var id = (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();
            await ServerHarness.EventuallyAsync(async () => (await bob.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}")).GetProperty("state").GetString() != "pending", "the array to end", 60_000);
            (await bob.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}")).GetProperty("state").GetString().ShouldBe("finished", s.Output);
            foreach (var t in new[] { 5, 6 })
            {
                var task = (await bob.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}/tasks/{t}")).GetProperty("id").GetInt64();
                (await bob.GetStringAsync($"/api/jobs/{task}/logs")).ShouldContain($"t={t} s={t} a={id} n=2");
            }
        }
        finally
        {
            await s.DisposeAsync();
            try
            {
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
            }
        }
    }
}
