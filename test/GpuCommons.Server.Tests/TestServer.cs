using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace GpuCommons.Server.Tests;

/// <summary>Where a test's database lives: a SQLite file in a temp folder, or a fresh PostgreSQL database.</summary>
public sealed record TestDatabase(string Provider, string? ConnectionString, string DataDir)
{
    public static TestDatabase Sqlite() => new("sqlite", null, Path.Combine(Path.GetTempPath(), "gpuc-test-" + Guid.NewGuid().ToString("N")));

    public static TestDatabase Postgres()
    {
        var csb = new NpgsqlConnectionStringBuilder(PostgresFactAttribute.Connection) { Database = "gpuc_t_" + Guid.NewGuid().ToString("N")[..16] };
        return new("postgres", csb.ConnectionString, Path.Combine(Path.GetTempPath(), "gpuc-test-" + Guid.NewGuid().ToString("N")));
    }

    public static TestDatabase For(string provider) => provider == "postgres" ? Postgres() : Sqlite();
}

/// <summary>A whole server in memory (TestServer) over a real database and a <see cref="TestBackend"/>.</summary>
public sealed class ServerHarness : IAsyncDisposable
{
    private ServerHarness(WebApplication app, TestDatabase db, TestBackend backend, Dictionary<string, string> tokens)
    {
        App = app;
        Db = db;
        Backend = backend;
        Tokens = tokens;
    }

    public WebApplication App { get; }
    public TestDatabase Db { get; }
    public TestBackend Backend { get; }
    public Dictionary<string, string> Tokens { get; }
    public Coordinator Coordinator => App.Services.GetRequiredService<Coordinator>();
    public GpucDbFactory Factory => App.Services.GetRequiredService<GpucDbFactory>();

    public static async Task<ServerHarness> StartAsync(TestDatabase? db = null, TestBackend? backend = null, Action<ServerOptions>? configure = null,
        GpuCommons.Backends.IBackendReconciler? reconciler = null, TimeProvider? time = null)
    {
        db ??= TestDatabase.Sqlite();
        backend ??= new TestBackend();
        var options = new ServerOptions
        {
            DataDir = db.DataDir,
            Provider = db.Provider,
            ConnectionString = db.ConnectionString,
            PollInterval = TimeSpan.FromMilliseconds(20),
            FullCycleInterval = TimeSpan.FromMilliseconds(200),
            // The test backend runs no process; tests of accounts ask for multi-user themselves.
            Accounts = GpuCommons.Server.Security.AccountMode.SingleUser,
        };
        configure?.Invoke(options);
        var app = ServerApp.Build(options, backend, b =>
        {
            b.WebHost.UseTestServer();
            if (reconciler is not null)
            {
                b.Services.AddSingleton(reconciler);
            }

            b.Logging.ClearProviders();
            b.Logging.AddFilter(_ => false);
        }, time);
        var admin = await ServerApp.InitialiseAsync(app);
        await app.StartAsync();
        await app.Services.GetRequiredService<Coordinator>().Ready.WaitAsync(TimeSpan.FromSeconds(30));
        var tokens = JsonSerializer.Deserialize<Dictionary<string, string>>(await File.ReadAllTextAsync(Path.Combine(db.DataDir, "demo-tokens.json")))!;
        tokens["admin"] = (await File.ReadAllTextAsync(Path.Combine(db.DataDir, "admin-token"))).Trim();
        _ = admin;
        return new ServerHarness(app, db, backend, tokens);
    }

    /// <summary>A client acting as <paramref name="user"/> (a demo user or admin); null: no token.</summary>
    public HttpClient Client(string? user)
    {
        var c = App.GetTestClient();
        if (user is not null)
        {
            c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Tokens[user]);
        }

        return c;
    }

    public async Task<int> CountJobsAsync()
    {
        await using var db = Factory.Create();
        return await db.Jobs.CountAsync();
    }

    /// <summary>Waits until <paramref name="condition"/> holds, or fails after a timeout.</summary>
    public static async Task EventuallyAsync(Func<Task<bool>> condition, string what, int timeoutMs = 10_000)
    {
        var until = Environment.TickCount64 + timeoutMs;
        while (Environment.TickCount64 < until)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(20);
        }

        throw new TimeoutException("timed out waiting for " + what);
    }

    public async Task<JsonElement> JobAsync(long id)
    {
        var r = await Client("admin").GetAsync($"/api/jobs/{id}");
        r.EnsureSuccessStatusCode();
        return await r.Content.ReadFromJsonAsync<JsonElement>();
    }

    /// <summary>Stops the server but keeps its database (for restart tests).</summary>
    public async Task StopAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await App.StopAsync();
        }
        catch (ObjectDisposedException)
        {
        }

        await App.DisposeAsync();
        await DropAsync(Db);
    }

    public static async Task DropAsync(TestDatabase db)
    {
        if (db.Provider == "postgres")
        {
            await using var conn = new NpgsqlConnection(db.ConnectionString);
            NpgsqlConnection.ClearAllPools();
            var csb = new NpgsqlConnectionStringBuilder(db.ConnectionString);
            var name = csb.Database;
            csb.Database = "postgres";
            await using var admin = new NpgsqlConnection(csb.ConnectionString);
            await admin.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", admin);
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await cmd.ExecuteNonQueryAsync();
                    break;
                }
                catch (PostgresException e) when (e.SqlState is "42501" or "55006" && attempt < 20)
                {
                    // A backend the test role may not signal (an autovacuum worker, without pg_signal_backend) or one
                    // still leaving: it ends on its own.
                    await Task.Delay(500);
                }
            }
        }

        try
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(db.DataDir, true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// A test that needs PostgreSQL (TEST_PG_CONNECTION, from ci/start-postgres.sh). Skipped locally without it; on CI
/// (CI=true) it runs anyway and fails, so a missing database is never a silent pass.
/// </summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public static string Connection => Environment.GetEnvironmentVariable("TEST_PG_CONNECTION") ?? "Host=127.0.0.1;Port=55432;Database=appdb;Username=app;Password=app";

    public static bool Available => Environment.GetEnvironmentVariable("TEST_PG_CONNECTION") is not null;

    public PostgresFactAttribute()
    {
        if (!Available && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            Skip = "TEST_PG_CONNECTION is not set (run: bash ci/start-postgres.sh && . /tmp/pgci-55432/env.sh)";
        }
    }
}

/// <summary>Theory data: sqlite always; postgres when TEST_PG_CONNECTION is set or on CI.</summary>
public static class Providers
{
    public static TheoryData<string> All()
    {
        var d = new TheoryData<string> { "sqlite" };
        if (PostgresFactAttribute.Available || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            d.Add("postgres");
        }

        return d;
    }
}
