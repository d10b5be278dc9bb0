using System.CommandLine;
using GpuCommons.Backends;
using GpuCommons.Backends.Local;
using GpuCommons.Backends.Slurm;
using GpuCommons.Server;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Leadership;
using GpuCommons.Server.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Cli.Commands;

/// <summary><c>gpuc serve</c>: the control-plane server on this machine (SQLite and the local backend by default).</summary>
internal static partial class ServeCommands
{
    public static Command Create()
    {
        var urls = new Option<string>("--urls") { Description = "Where to listen", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var dataDir = new Option<string>("--data-dir") { Description = "SQLite file, job logs, backend state and admin-token live here", DefaultValueFactory = _ => "gpuc-data" };
        var provider = new Option<string>("--db") { Description = "sqlite (default) or postgres", DefaultValueFactory = _ => "sqlite" };
        var connection = new Option<string?>("--connection") { Description = "Database connection string (required for postgres; env GPUC_DB_CONNECTION)" };
        var gpuMode = new Option<string>("--gpus") { Description = "auto (nvidia-smi, else virtual), real or virtual", DefaultValueFactory = _ => "auto" };
        var virtualGpus = new Option<int>("--virtual-gpus") { Description = "GPUs to pretend when there is none", DefaultValueFactory = _ => 8 };
        var webhook = new Option<string?>("--webhook") { Description = "URL that receives allocation alerts as JSON" };
        var noDemo = new Option<bool>("--no-demo") { Description = "Do not seed the demo tenancy into a new database" };
        var logJson = new Option<bool>("--log-json") { Description = "Structured JSON logs on stdout" };
        var backendKind = new Option<string>("--backend") { Description = "Where jobs run: local (processes on this machine) or slurm (the Slurm cluster this machine submits to)", DefaultValueFactory = _ => "local" };
        var slurmAccount = new Option<string?>("--slurm-account") { Description = "Slurm account to charge jobs to (slurm backend)" };
        var slurmNiceness = new Option<int>("--slurm-niceness")
        {
            Description = "Niceness 0-19 of the Slurm commands (sbatch, squeue…), so a wave of starts yields the CPU to the API (slurm backend)",
            DefaultValueFactory = _ => new SlurmBackendOptions().CommandNiceness,
        };
        var concurrentStarts = new Option<int>("--max-concurrent-starts")
        {
            Description = "Backend starts in flight at once (on Slurm: sbatch processes at a time); default: the core count, 2 to 8",
            DefaultValueFactory = _ => ServerOptions.DefaultConcurrentStarts,
        };
        var slurmPrefix = new Option<string>("--slurm-prefix")
        {
            Description = "Slurm job-name prefix (slurm backend); one per database: a fresh database numbers jobs from 1 and would adopt old jobs of the same name",
            DefaultValueFactory = _ => "gpuc-",
        };
        var rate = new Option<decimal>("--rate") { Description = "Charge per GPU-hour", DefaultValueFactory = _ => 1000m };
        var accounts = new Option<string>("--accounts")
        {
            Description = "Whose account jobs run as: auto (each user's own when the server is root, else the server's), multi-user or single-user",
            DefaultValueFactory = _ => "auto",
        };
        var provision = new Option<bool>("--provision-accounts") { Description = "Create missing local accounts and groups (useradd/groupadd) for users and projects (root only)" };
        var oidcIssuer = new Option<string[]>("--oidc-issuer")
        {
            Description = "An OpenID Connect issuer people sign in with (repeat for several): id=uni-a,url=https://idp.uni-a.ac.kr,client-id=ID,"
                + "client-secret-file=PATH (or client-secret=…, or env GPUC_OIDC_SECRET_UNI_A),cli-client-id=ID (gpuc login),name=University A,affiliation-claim=CLAIM,scopes=openid email profile",
            Arity = ArgumentArity.ZeroOrMore,
            AllowMultipleArgumentsPerToken = false,
        };
        var oidcNoCreate = new Option<bool>("--oidc-no-create") { Description = "OpenID Connect sign-in only for people an admin created (by email); default: a first sign-in creates the person" };
        var oidcSession = new Option<double>("--oidc-session-hours") { Description = "How long a portal sign-in through OpenID Connect lasts", DefaultValueFactory = _ => 12 };
        var oidcCliDays = new Option<double>("--oidc-cli-token-days") { Description = "How long the token of gpuc login lasts", DefaultValueFactory = _ => 30 };
        var serve = new Command("serve", "Run the control-plane server (API, scheduler, accounting) with jobs as local processes")
        {
            urls, dataDir, provider, connection, gpuMode, virtualGpus, webhook, noDemo, logJson, rate, backendKind, slurmAccount, slurmPrefix, slurmNiceness, concurrentStarts, accounts, provision,
            oidcIssuer, oidcNoCreate, oidcSession, oidcCliDays,
        };
        serve.SetAction(async (parse, ct) =>
        {
            // Everything the server writes (database, WAL, tokens, logs) is for its own account only.
            Umask(0x3F); // 077
            var dir = Path.GetFullPath(parse.GetValue(dataDir)!);
            var options = new ServerOptions
            {
                DataDir = dir,
                Provider = parse.GetValue(provider)!,
                ConnectionString = parse.GetValue(connection) ?? Environment.GetEnvironmentVariable("GPUC_DB_CONNECTION"),
                WebhookUrl = parse.GetValue(webhook),
                SeedDemo = !parse.GetValue(noDemo),
                RatePerGpuHour = parse.GetValue(rate),
                Accounts = parse.GetValue(accounts) switch
                {
                    "auto" => AccountMode.Auto,
                    "multi-user" => AccountMode.MultiUser,
                    "single-user" => AccountMode.SingleUser,
                    var a => throw new CliException($"--accounts must be auto, multi-user or single-user, got '{a}'", CliRunner.Usage),
                },
                ProvisionAccounts = parse.GetValue(provision),
                MaxConcurrentStarts = InRange(parse.GetValue(concurrentStarts), 1, 1024, "--max-concurrent-starts"),
            };
            try
            {
                options.SignIn.Issuers = (parse.GetValue(oidcIssuer) ?? []).Select(OidcIssuerOptions.Parse).ToList();
                options.SignIn.CreatePeople = !parse.GetValue(oidcNoCreate);
                options.SignIn.SessionLifetime = TimeSpan.FromHours(parse.GetValue(oidcSession));
                options.SignIn.CliTokenLifetime = TimeSpan.FromDays(parse.GetValue(oidcCliDays));
            }
            catch (Exception e) when (e is ArgumentException or OverflowException)
            {
                throw new CliException(e.Message, CliRunner.Usage);
            }

            if (options.ProvisionAccounts && Environment.UserName != "root" && Posix.EffectiveUid != 0)
            {
                throw new CliException("--provision-accounts needs the server to run as root (it creates accounts with useradd)", CliRunner.Usage);
            }
            try
            {
                options.Validate();
            }
            catch (ArgumentException e)
            {
                throw new CliException(e.Message, CliRunner.Usage);
            }

            var mode = parse.GetValue(gpuMode) switch
            {
                "auto" => LocalGpuMode.Auto,
                "real" => LocalGpuMode.Real,
                "virtual" => LocalGpuMode.Virtual,
                var m => throw new CliException($"--gpus must be auto, real or virtual, got '{m}'", CliRunner.Usage),
            };
            Directory.CreateDirectory(dir);
            options.Leadership.AdvertiseUrl ??= parse.GetValue(urls)!.Split(';', StringSplitOptions.RemoveEmptyEntries)[0].Replace("0.0.0.0", Environment.MachineName, StringComparison.Ordinal);
            while (true)
            {
                IJobBackend backend = parse.GetValue(backendKind) switch
                {
                    "local" => new LocalBackend(new LocalBackendOptions
                    {
                        StateDirectory = Path.Combine(dir, "backend"),
                        GpuMode = mode,
                        VirtualGpuCount = parse.GetValue(virtualGpus),
                        NodeName = "local-1",
                    }),
                    "slurm" => new SlurmBackend(new SlurmBackendOptions
                    {
                        Account = parse.GetValue(slurmAccount),
                        JobNamePrefix = parse.GetValue(slurmPrefix)!,
                        CommandNiceness = InRange(parse.GetValue(slurmNiceness), 0, 19, "--slurm-niceness"),
                    }),
                    var b => throw new CliException($"--backend must be local or slurm, got '{b}'", CliRunner.Usage),
                };
                var json = parse.GetValue(logJson);
                var url = parse.GetValue(urls)!;
                var app = ServerApp.Build(options, backend, b =>
                {
                    GpuCommons.Portal.PortalSetup.AddPortal(b);
                    if (backend is SlurmBackend slurm)
                    {
                        // Slurm is the truth for what runs, GpuCommons for what should: the server compares them every minute,
                        // keeps each discrepancy for operators (API, portal, gpuc discrepancies) and acts on the safe ones.
                        b.Services.AddSingleton<IBackendReconciler>(sp => new SlurmReconciler(slurm, logger: sp.GetRequiredService<ILogger<SlurmReconciler>>()));
                    }

                    b.WebHost.UseUrls(url.Split(';', StringSplitOptions.RemoveEmptyEntries));
                    b.Logging.ClearProviders();
                    if (json)
                    {
                        b.Logging.AddJsonConsole(o => o.UseUtcTimestamp = true);
                    }
                    else
                    {
                        b.Logging.AddSimpleConsole(o =>
                        {
                            o.SingleLine = true;
                            o.UseUtcTimestamp = true;
                            o.TimestampFormat = "HH:mm:ss ";
                        });
                    }
                });
                GpuCommons.Portal.PortalSetup.MapPortal(app);
                if (backend is SlurmBackend fencedSlurm && app.Services.GetRequiredService<ILeadership>() is { MultiInstance: true } lease)
                {
                    // Several servers on one Slurm: a start is submitted held and released only while this server leads.
                    fencedSlurm.Options.StartFence = _ => ValueTask.FromResult(lease.IsLeaseValidLocally);
                }

                var token = await ServerApp.InitialiseAsync(app, ct);
                await app.StartAsync(ct);
                var co = app.Services.GetRequiredService<Coordinator>();
                var leadership = app.Services.GetRequiredService<ILeadership>();
                // A standby has no engine until it leads: wait briefly to learn which this server is.
                await Task.WhenAny(leadership.WaitForLeadershipAsync(ct), Task.Delay(options.Leadership.RetryInterval * 2, ct));
                if (leadership.IsLeader)
                {
                    await co.Ready.WaitAsync(ct);
                    var fleet = co.Discovered!;
                    await Console.Out.WriteLineAsync($"gpuc: fleet: {co.Fleet.TotalGpus} GPUs on {co.Fleet.Nodes.Count} node(s) from {fleet.Source}{(fleet.VirtualGpus ? " — VIRTUAL GPUs (no real GPU found or --gpus virtual)" : "")}");
                }

                await Console.Out.WriteLineAsync(leadership.MultiInstance
                    ? leadership.IsLeader
                        ? $"gpuc: role: leader (epoch {leadership.Epoch}); standbys on the same database take over if this server stops"
                        : $"gpuc: role: standby (leader: {leadership.LeaderUrl ?? "none yet"}); serves reads and takes submissions, and takes over when the leader's lease ends"
                    : "gpuc: role: single instance (SQLite: one server per database; for standbys use --db postgres)");
                await Console.Out.WriteLineAsync($"gpuc: database: {options.Provider} {(options.Provider == "sqlite" ? Path.Combine(dir, "gpuc.db") : "(connection string)")}");
                await Console.Out.WriteLineAsync($"gpuc: listening on {url}  (portal: {url.Split(';')[0].TrimEnd('/')}/, OpenAPI: {url.Split(';')[0].TrimEnd('/')}/openapi/v1.json)");
                foreach (var i in options.SignIn.Issuers)
                {
                    await Console.Out.WriteLineAsync($"gpuc: sign-in with {i.Name} ({i.Authority}){(i.ClientId is null ? "" : $", portal callback {url.Split(';')[0].TrimEnd('/')}{i.CallbackPath}")}{(i.CliClientId is null ? "" : ", gpuc login")}");
                }

                var acc = co.Accounts;
                await Console.Out.WriteLineAsync(acc.MultiUser
                    ? $"gpuc: jobs run as: each user's own POSIX account with the project's group (multi-user; never as {acc.ServerAccount}){(options.SeedDemo ? "; demo users as gpuc-NAME" : "")}"
                    : acc.ServerUid == 0
                        ? "gpuc: WARNING: single-user mode as root: every job runs as root. Use it only on a machine that is yours alone; a shared center runs multi-user (--accounts auto)."
                        : $"gpuc: jobs run as: {acc.ServerAccount}, the server's own account (single-user mode: this server is for one person)");
                var tokenFile = Path.Combine(dir, "admin-token");
                await Console.Out.WriteLineAsync(token is not null
                    ? $"gpuc: admin token: {token}  (written to {tokenFile})"
                    : $"gpuc: admin token: in {tokenFile} (database already initialised)");
                if (token is not null && options.SeedDemo)
                {
                    await Console.Out.WriteLineAsync($"gpuc: demo tenancy seeded: projects demo (PI alice, member bob), startup-demo; tokens in {Path.Combine(dir, "demo-tokens.json")}");
                }

                await Console.Out.FlushAsync(ct);
                try
                {
                    await app.WaitForShutdownAsync(ct);
                }
                finally
                {
                    await app.StopAsync(CancellationToken.None);
                    await app.DisposeAsync();
                    await backend.DisposeAsync();
                }

                if (!leadership.SteppedDown || ct.IsCancellationRequested)
                {
                    return 0;
                }

                // Lost the lease: everything of the old term (engine, backend, connections) is gone; start again as a standby.
                await Console.Out.WriteLineAsync("gpuc: stepped down (the lease moved to another server); starting again as a standby");
            }
        });
        return serve;
    }

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint Umask(uint mask);

    private static int InRange(int value, int min, int max, string option) =>
        value >= min && value <= max ? value : throw new CliException($"{option} must be {min} to {max}, got {value}", CliRunner.Usage);
}
