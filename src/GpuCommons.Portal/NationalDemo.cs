using GpuCommons.Backends;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;

namespace GpuCommons.Portal;

/// <summary>National-scale demo data for the page benchmark (<c>gpuc bench portal</c>) and the at-scale browser test.</summary>
public static class NationalDemo
{
    public sealed record Seeded(int Jobs, int Organisations, int Projects, long AliceJob);

    /// <summary>National demo data, deterministic (seed 42): 500 organisations, 2,000 projects with allocations, 2,500 allocation requests, and jobs (85% finished with ledger entries, 15% pending; 1% belong to alice in project demo).</summary>
    public static async Task<Seeded> SeedAsync(GpucDbFactory factory, Fleet fleet, int jobCount, CancellationToken ct)
    {
        var rng = new Random(42);
        var now = TimeProvider.System.GetUtcNow();
        string[] types = ["university", "institute", "companylab", "startup", "flagship"];
        int[] typeCounts = [250, 90, 80, 75, 5];
        var orgs = new List<OrganisationRow>();
        for (var t = 0; t < types.Length; t++)
        {
            for (var i = 1; i <= typeCounts[t]; i++)
            {
                orgs.Add(new OrganisationRow { Name = $"{types[t]}-{i:000}", Type = types[t], Created = now.AddDays(-200) });
            }
        }

        var projects = new List<ProjectRow>();
        for (var i = 1; i <= 2000; i++)
        {
            projects.Add(new ProjectRow { Name = $"p{i:0000}", Organisation = orgs[(i * 7) % orgs.Count].Name, Created = now.AddDays(-200) });
        }

        await using (var db = factory.Create())
        {
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            db.Organisations.AddRange(orgs);
            db.Projects.AddRange(projects);
            foreach (var p in projects)
            {
                db.Allocations.Add(new AllocationRow { Id = $"{p.Name}-2026", Project = p.Name, AwardedGpuHours = 200_000, Start = now.AddDays(-180), End = now.AddDays(180), Created = now.AddDays(-180) });
            }

            for (var i = 1; i <= 2500; i++)
            {
                var state = i % 3 == 0 ? "awarded" : i % 7 == 0 ? "rejected" : "submitted";
                var hours = 1000 * rng.Next(1, 400);
                db.AllocationRequests.Add(new AllocationRequestRow
                {
                    Project = projects[i % projects.Count].Name, Partition = fleet.Partitions[i % fleet.Partitions.Count].Name, GpuHours = hours,
                    Justification = $"Training and evaluation plan {i}", RequestedBy = "alice", State = state, Score = state == "submitted" ? null : rng.Next(40, 100),
                    AwardedGpuHours = state == "awarded" ? hours * 0.6 : null, Created = now.AddDays(-rng.Next(1, 60)),
                });
            }

            await db.SaveChangesAsync(ct);
        }

        var partitions = fleet.Partitions;
        long id = 0;
        long aliceJob = 0;
        const int batch = 10_000;
        for (var done = 0; done < jobCount; done += batch)
        {
            await using var db = factory.Create();
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            for (var k = 0; k < batch && done + k < jobCount; k++)
            {
                id++;
                var alice = id % 100 == 0;
                var project = alice ? "demo" : projects[rng.Next(projects.Count)].Name;
                var part = partitions[rng.Next(partitions.Count)];
                var gpus = rng.NextDouble() switch { < 0.5 => 1, < 0.75 => 2, < 0.9 => 4, < 0.97 => 8, < 0.995 => 16, _ => 64 };
                var pending = id > jobCount * 0.85;
                var submit = pending ? now.AddMinutes(-rng.Next(1, 600)) : now.AddMinutes(-rng.Next(60, 120 * 24 * 60));
                var row = new JobRow
                {
                    Id = id, Project = project, User = alice ? "alice" : $"u{rng.Next(5000)}", Name = $"job-{id}", Partition = part.Name, Gpus = gpus,
                    Nodes = gpus > 8 ? gpus / 8 : null, GpusPerNode = gpus > 8 ? 8 : null,
                    WalltimeSeconds = 3600L * rng.Next(1, 48), Command = "[\"/bin/true\"]", State = pending ? JobState.Pending : JobState.Finished, SubmitTime = submit,
                };
                if (!pending)
                {
                    var wait = TimeSpan.FromMinutes(rng.Next(0, 600) * rng.NextDouble());
                    var run = TimeSpan.FromMinutes(rng.Next(5, 24 * 60));
                    row.StartTime = submit + wait;
                    row.EndTime = row.StartTime + run;
                    if (row.EndTime > now)
                    {
                        row.EndTime = now;
                    }

                    row.HeldGpus = gpus;
                    row.AllocationId = $"{project}-2026";
                    row.ExitCode = 0;
                    row.Outcome = "finished: exit code 0";
                    row.Attempt = 1;
                    var hours = gpus * (row.EndTime.Value - row.StartTime.Value).TotalHours;
                    db.Ledger.Add(new LedgerRow
                    {
                        JobId = id, Attempt = 1, AllocationId = row.AllocationId, Project = project, User = row.User, Partition = part.Name,
                        HeldGpus = gpus, Seconds = (row.EndTime.Value - row.StartTime.Value).TotalSeconds, GpuHours = hours, Amount = (decimal)hours * part.RatePerGpuHour, Time = row.EndTime.Value,
                    });
                }
                else if (alice)
                {
                    aliceJob = id;
                }

                db.Jobs.Add(row);
            }

            await db.SaveChangesAsync(ct);
        }

        return new Seeded((int)id, orgs.Count, projects.Count, aliceJob);
    }

    /// <summary>A backend that only pretends: the national fleet, jobs that start and run until cancelled.</summary>
    public sealed class Backend(Fleet fleet) : IJobBackend
    {
        public string Name => "bench";

        public string RunScope => "bench";

        public Task<DiscoveredFleet> DiscoverAsync(CancellationToken cancellationToken) =>
            Task.FromResult(new DiscoveredFleet("bench", fleet.Nodes.Select(n => new DiscoveredNode(n.Name, fleet.Partitions[n.PartitionIndex].Name,
                fleet.Partitions[n.PartitionIndex].GpuModel, Enumerable.Range(0, n.Gpus).Select(g => new DiscoveredGpu(g, $"GPU-{n.Name}-{g}", "bench", 81_920)).ToList())).ToList(), true, "portal benchmark"));

        public Task<BackendHandle> StartAsync(BackendJob job, CancellationToken cancellationToken) =>
            Task.FromResult(new BackendHandle(job.JobId, $"bench-{job.JobId}", null, null));

        public Task CancelAsync(long jobId, TimeSpan grace, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<IReadOnlyList<BackendEvent>> PollAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<BackendEvent>>([]);

        public Task<bool> ReattachAsync(long jobId, BackendHandle handle, CancellationToken cancellationToken) => Task.FromResult(true);

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
