using System.Text.Json;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Tests;

/// <summary>
/// Job states are a type in the code and the same strings on the wire and in the database: what earlier releases
/// wrote and read (a server of the previous release may share the database).
/// </summary>
public sealed class JobStateContractTests
{
    private static readonly (JobState State, string Text)[] Wire =
    [
        (JobState.Pending, "pending"), (JobState.Running, "running"), (JobState.Finished, "finished"),
        (JobState.Failed, "failed"), (JobState.Cancelled, "cancelled"),
    ];

    [Fact]
    public void EveryState_HasItsWireName_AndReadsBack()
    {
        Wire.Select(w => w.State).ShouldBe(Enum.GetValues<JobState>());
        JobStateNames.All.ShouldBe(Enum.GetValues<JobState>());
        foreach (var (state, text) in Wire)
        {
            state.ToWire().ShouldBe(text);
            JobStateNames.Parse(text).ShouldBe(state);
        }

        // Only the exact lower-case names: the enumeration's own names are not wire names.
        JobStateNames.TryParse("Pending", out _).ShouldBeFalse();
        JobStateNames.TryParse("0", out _).ShouldBeFalse();
        JobStateNames.TryParse(null, out _).ShouldBeFalse();
        Should.Throw<FormatException>(() => JobStateNames.Parse("done")).Message.ShouldContain("'done'");
    }

    [Fact]
    public void JobDto_WritesTheStateAsText_WithTheServersOptions_AndTheGeneratedOnes()
    {
        var dto = new JobDto(7, "n", "p", "u", null, 1, null, null, 60, "normal", JobState.Cancelled, DateTimeOffset.UnixEpoch, null, null,
            null, null, null, null, 0, ["true"]);
        foreach (var text in new[] { JsonSerializer.Serialize(dto, new JsonSerializerOptions(JsonSerializerDefaults.Web)), JsonSerializer.Serialize(dto, ContractsJson.Default.JobDto) })
        {
            JsonDocument.Parse(text).RootElement.GetProperty("state").GetString().ShouldBe("cancelled");
            JsonSerializer.Deserialize(text, ContractsJson.Default.JobDto)!.State.ShouldBe(JobState.Cancelled);
        }

        Should.Throw<JsonException>(() => JsonSerializer.Deserialize("""{"id":1,"state":"Cancelled"}""", ContractsJson.Default.JobDto));
        Should.Throw<JsonException>(() => JsonSerializer.Deserialize("""{"id":1,"state":4}""", ContractsJson.Default.JobDto));
    }

    [Fact]
    public void AStandbysInboxRow_CarriesTheStateAsText_AsEarlierReleasesWriteAndReadIt()
    {
        // StandbyInbox writes the row with the default options; a leader of another release reads it back.
        var json = JsonSerializer.Serialize(Job(3, JobState.Pending));
        JsonDocument.Parse(json).RootElement.GetProperty("State").GetString().ShouldBe("pending");
        JsonSerializer.Deserialize<JobRow>(json.Replace("\"pending\"", "\"running\"", StringComparison.Ordinal))!.State.ShouldBe(JobState.Running);
    }

    [Theory]
    [MemberData(nameof(Providers.All), MemberType = typeof(Providers))]
    public async Task TheColumn_HoldsTheWireNames_WrittenByEfAndInBulk_AndReadsAnOlderServersRows(string provider)
    {
        var db = TestDatabase.For(provider);
        try
        {
            Directory.CreateDirectory(db.DataDir);
            var options = new ServerOptions { DataDir = db.DataDir, Provider = db.Provider, ConnectionString = db.ConnectionString };
            var factory = new GpucDbFactory(db.Provider, options.ResolveConnectionString());
            await factory.MigrateAsync(CancellationToken.None);
            await using (var ctx = factory.Create())
            {
                ctx.Jobs.AddRange(Wire.Select((w, i) => Job(i + 1, w.State)));
                ctx.Jobs.Add(Job(21, JobState.Running));
                await ctx.SaveChangesAsync();
                await using var tx = await ctx.Database.BeginTransactionAsync();
                await new BulkInsert(ctx).Add(Wire.Select((w, i) => Job(i + 11, w.State)).ToList()).ExecuteAsync(CancellationToken.None);
                await tx.CommitAsync();
            }

            await using (var ctx = factory.Create())
            {
                // As a previous release ends a job: the state written as text.
                var conn = ctx.Database.GetDbConnection();
                await conn.OpenAsync();
                await using (var update = conn.CreateCommand())
                {
                    update.CommandText = """UPDATE jobs SET "State" = 'cancelled' WHERE "Id" = 21""";
                    (await update.ExecuteNonQueryAsync()).ShouldBe(1);
                }

                var stored = new Dictionary<long, string>();
                await using (var select = conn.CreateCommand())
                {
                    select.CommandText = """SELECT "Id", "State" FROM jobs""";
                    await using var r = await select.ExecuteReaderAsync();
                    while (await r.ReadAsync())
                    {
                        stored[r.GetInt64(0)] = r.GetString(1);
                    }
                }

                for (var i = 0; i < Wire.Length; i++)
                {
                    stored[i + 1].ShouldBe(Wire[i].Text);
                    stored[i + 11].ShouldBe(Wire[i].Text);
                }

                (await ctx.Jobs.AsNoTracking().SingleAsync(j => j.Id == 21)).State.ShouldBe(JobState.Cancelled);
                (await ctx.Jobs.CountAsync(j => j.State == JobState.Cancelled)).ShouldBe(3);
                var live = new List<JobState> { JobState.Pending, JobState.Running };
                (await ctx.Jobs.Where(j => live.Contains(j.State)).OrderBy(j => j.Id).Select(j => j.Id).ToListAsync()).ShouldBe([1, 2, 11, 12]);
            }
        }
        finally
        {
            await ServerHarness.DropAsync(db);
        }
    }

    private static JobRow Job(long id, JobState state) => new()
    {
        Id = id,
        Project = "p",
        User = "u",
        Gpus = 1,
        WalltimeSeconds = 60,
        Command = """["true"]""",
        State = state,
        SubmitTime = DateTimeOffset.UnixEpoch,
    };
}
