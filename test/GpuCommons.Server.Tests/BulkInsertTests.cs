using System.Data.Common;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Tests;

/// <summary>Rows written by the multi-row insert read back exactly as rows written by EF Core, on both databases.</summary>
public sealed class BulkInsertTests
{
    private static async Task<GpucDbFactory> CreateAsync(TestDatabase db)
    {
        Directory.CreateDirectory(db.DataDir);
        var options = new ServerOptions { DataDir = db.DataDir, Provider = db.Provider, ConnectionString = db.ConnectionString };
        var factory = new GpucDbFactory(db.Provider, options.ResolveConnectionString());
        await factory.MigrateAsync(CancellationToken.None);
        return factory;
    }

    private static JobRow Job(long id, string? key) => new()
    {
        Id = id,
        Project = "p-" + id,
        User = "u'; DROP TABLE jobs; --",
        Name = "명령 \"quoted\"",
        Partition = id % 2 == 0 ? "h100" : null,
        Gpus = 0.25 + id,
        Nodes = id % 3 == 0 ? null : 2,
        GpusPerNode = 4,
        WalltimeSeconds = 3600 + id,
        Priority = "high",
        Checkpointable = true,
        Requeueable = false,
        Command = """["python","-c","print(1)"]""",
        Environment = """{"A":"b"}""",
        State = JobState.Running,
        SubmitTime = new DateTimeOffset(2026, 11, 27, 10, 0, 0, TimeSpan.Zero).AddTicks(id * 12345),
        StartTime = id % 2 == 0 ? null : new DateTimeOffset(2026, 11, 27, 10, 0, 1, TimeSpan.Zero),
        Attempt = 2,
        Slots = "0:1:1000",
        Placement = "n1:1",
        HeldGpus = 1,
        AllocationId = "a-1",
        ExitCode = id % 2 == 0 ? -9 : null,
        CancelRequested = true,
        IdempotencyKey = key,
    };

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task BulkRows_ReadBackLikeTrackedRows(string provider)
    {
        var db = TestDatabase.For(provider);
        try
        {
            var factory = await CreateAsync(db);
            await using (var ctx = factory.Create())
            {
                ctx.Jobs.Add(Job(1, "k1"));
                ctx.Jobs.Add(Job(2, null));
                ctx.Events.Add(new EventRow { Time = DateTimeOffset.UnixEpoch.AddDays(1), Actor = "a", Kind = "job.submitted", Subject = "job/1", Project = null });
                await ctx.SaveChangesAsync();
            }

            await using (var ctx = factory.Create())
            {
                await using var tx = await ctx.Database.BeginTransactionAsync();
                await new BulkInsert(ctx).Add([Job(11, "k1b"), Job(12, null)])
                    .Add([new EventRow { Time = DateTimeOffset.UnixEpoch.AddDays(1), Actor = "a", Kind = "job.submitted", Subject = "job/1", Project = null }])
                    .ExecuteAsync(CancellationToken.None);
                await tx.CommitAsync();
            }

            await using (var ctx = factory.Create())
            {
                var rows = await ctx.Jobs.AsNoTracking().OrderBy(j => j.Id).ToListAsync();
                rows.Select(r => r.Id).ShouldBe([1, 2, 11, 12]);
                foreach (var (tracked, bulk) in new[] { (rows[0], rows[2]), (rows[1], rows[3]) })
                {
                    foreach (var p in typeof(JobRow).GetProperties().Where(p => p.Name is not ("Id" or "Project" or "Gpus" or "Nodes" or "WalltimeSeconds" or "SubmitTime" or "IdempotencyKey")))
                    {
                        p.GetValue(bulk).ShouldBe(p.GetValue(tracked), p.Name);
                    }

                    (bulk.SubmitTime - tracked.SubmitTime).Ticks.ShouldBe((bulk.Id - tracked.Id) * 12345);
                    bulk.Gpus.ShouldBe(tracked.Gpus + 10);
                }

                // Queries that filter and sort on converted columns see the bulk rows like the others.
                (await ctx.Jobs.CountAsync(j => j.SubmitTime > new DateTimeOffset(2026, 11, 27, 10, 0, 0, TimeSpan.Zero).AddTicks(2 * 12345))).ShouldBe(2);
                var events = await ctx.Events.AsNoTracking().OrderBy(e => e.Id).ToListAsync();
                events.Count.ShouldBe(2);
                events[1].Id.ShouldBeGreaterThan(events[0].Id);
                events[1].Time.ShouldBe(events[0].Time);
            }
        }
        finally
        {
            await ServerHarness.DropAsync(db);
        }
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task ManyRows_SplitAcrossCommands_AllOrNothing(string provider)
    {
        var db = TestDatabase.For(provider);
        try
        {
            var factory = await CreateAsync(db);
            var rows = Enumerable.Range(1, 2500).Select(i => Job(i, "k" + i)).ToList();
            await using (var ctx = factory.Create())
            {
                var bulk = new BulkInsert(ctx).Add(rows);
                bulk.Commands.ShouldBeGreaterThan(1);

                // More than one command needs a transaction, or a failure could leave half of them.
                await Should.ThrowAsync<InvalidOperationException>(() => bulk.ExecuteAsync(CancellationToken.None));

                await using var tx = await ctx.Database.BeginTransactionAsync();
                await bulk.ExecuteAsync(CancellationToken.None);
                await tx.CommitAsync();
            }

            await using (var ctx = factory.Create())
            {
                (await ctx.Jobs.CountAsync()).ShouldBe(2500);

                // A duplicate key in the last command rolls back the whole transaction.
                await using var tx = await ctx.Database.BeginTransactionAsync();
                var again = Enumerable.Range(3000, 2000).Select(i => Job(i, "n" + i)).Append(Job(1, "dup")).ToList();
                await Should.ThrowAsync<DbException>(() => new BulkInsert(ctx).Add(again).ExecuteAsync(CancellationToken.None));
                await tx.RollbackAsync();
            }

            await using (var ctx = factory.Create())
            {
                (await ctx.Jobs.CountAsync()).ShouldBe(2500);
            }
        }
        finally
        {
            await ServerHarness.DropAsync(db);
        }
    }
}
