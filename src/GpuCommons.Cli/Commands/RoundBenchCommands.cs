using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Rounds;
using GpuCommons.Portal;
using GpuCommons.Server;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using GpuCommons.Server.Rounds;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc bench rounds</c>: an allocation round at scale. (1) Selection (aggregate scores, rank, select within budgets
/// and caps, check feasibility) over a seeded round of 5,000 proposals, and the panel assignment; (2) the committee's
/// portal page for a call of 1,000 proposals under review on a real server (SQLite), by its Server-Timing. Prints JSON.
/// </summary>
internal static class RoundBenchCommands
{
    public static Command Create()
    {
        var proposals = new Option<int>("--proposals") { Description = "Proposals in the selection benchmark", DefaultValueFactory = _ => 5_000 };
        var reviewers = new Option<int>("--reviewers") { Description = "Reviewers on the panel", DefaultValueFactory = _ => 600 };
        var pageProposals = new Option<int>("--page-proposals") { Description = "Proposals in the call behind the committee page (0: skip the page)", DefaultValueFactory = _ => 1_000 };
        var runs = new Option<int>("--runs") { Description = "Timed runs of each", DefaultValueFactory = _ => 10 };
        var cmd = new Command("rounds", "Time selection over a seeded round and the committee page (prints JSON)") { proposals, reviewers, pageProposals, runs };
        cmd.SetAction(async (parse, ct) =>
        {
            var n = parse.GetValue(proposals);
            var r = parse.GetValue(runs);
            if (n < 1 || r < 1 || parse.GetValue(reviewers) < 1 || parse.GetValue(pageProposals) < 0)
            {
                throw new CliException("--proposals, --reviewers and --runs must be ≥ 1, --page-proposals ≥ 0", CliRunner.Usage);
            }

            var result = new Dictionary<string, object> { ["benchmark"] = "rounds", ["machine"] = new { cores = Environment.ProcessorCount } };
            result["selection"] = Selection(n, parse.GetValue(reviewers), r);
            if (parse.GetValue(pageProposals) > 0)
            {
                result["committee_page"] = await PageAsync(parse.GetValue(pageProposals), r, ct);
            }

            await Console.Out.WriteLineAsync(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        });
        return cmd;
    }

    private static Dictionary<string, object> Selection(int proposals, int reviewers, int runs)
    {
        var round = SeededRound.Generate(proposals: proposals, reviewers: reviewers);
        // The budget grows with the round, so that about a third is funded as in the first call.
        var scale = proposals / 514.0;
        var rules = round.Rules with { BudgetGpuMonths = round.Rules.BudgetGpuMonths.ToDictionary(kv => kv.Key, kv => kv.Value * scale) };
        var assignMs = new List<double>();
        Assignment assignment = null!;
        for (var i = 0; i <= runs; i++)
        {
            var sw = Stopwatch.StartNew();
            assignment = ReviewerAssignment.Assign(round.ToAssign(), round.Reviewers, rules.ReviewersPerProposal);
            sw.Stop();
            if (i > 0)
            {
                assignMs.Add(sw.Elapsed.TotalMilliseconds);
            }
        }

        var reviews = round.Reviews(assignment);
        var timeline = CapacityTimeline.Constant([(SeededRound.H200, 2040), (SeededRound.B200, 4080)]);
        var selectMs = new List<double>();
        SelectionResult result = null!;
        FeasibilityReport feasibility = null!;
        for (var i = 0; i <= runs; i++)
        {
            var sw = Stopwatch.StartNew();
            // What the committee's selection does: aggregate every proposal's reviews, rank and select, then check the fleet.
            var candidates = round.Proposals.Select(p => new Candidate(p.Id, p.Organisation, p.OrgType, p.Partition, p.Gpus, p.Months, p.GpuHours,
                Scoring.Aggregate(rules, reviews[p.Id], p.Regional))).ToList();
            result = GpuCommons.Core.Rounds.Selection.Select(rules, candidates);
            var byId = round.Proposals.ToDictionary(p => p.Id);
            feasibility = Feasibility.Check(timeline, [], result.Decisions.Where(d => d.Gpus > 0).Select(d => new DedicatedCapacity(byId[d.Id].Partition, d.Gpus, byId[d.Id].StartMonth, d.Months)).ToList());
            sw.Stop();
            if (i > 0)
            {
                selectMs.Add(sw.Elapsed.TotalMilliseconds);
            }
        }

        selectMs.Sort();
        assignMs.Sort();
        return new Dictionary<string, object>
        {
            ["proposals"] = proposals,
            ["reviewers"] = reviewers,
            ["asked_gpus"] = round.Proposals.Sum(p => p.Gpus),
            ["funded"] = result.Decisions.Count(d => d.Outcome is Outcome.Awarded or Outcome.PartlyAwarded),
            ["awarded_gpus"] = result.Decisions.Sum(d => d.Gpus),
            ["feasible"] = feasibility.Feasible,
            ["select_median_ms"] = Math.Round(selectMs[selectMs.Count / 2], 2),
            ["select_max_ms"] = Math.Round(selectMs[^1], 2),
            ["assign_median_ms"] = Math.Round(assignMs[assignMs.Count / 2], 2),
            ["within_1s"] = selectMs[selectMs.Count / 2] <= 1000,
        };
    }

    private static async Task<Dictionary<string, object>> PageAsync(int proposals, int runs, CancellationToken ct)
    {
        var fleet = FleetSpecLoader.Load("national");
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-rounds-bench-" + Guid.NewGuid().ToString("N"));
        var options = new ServerOptions { DataDir = dir, Accounts = GpuCommons.Server.Security.AccountMode.SingleUser, SeedDemo = false };
        var app = ServerApp.Build(options, new NationalDemo.Backend(fleet), b =>
        {
            PortalSetup.AddPortal(b);
            b.WebHost.UseUrls("http://127.0.0.1:0");
            b.Logging.ClearProviders();
        });
        PortalSetup.MapPortal(app);
        try
        {
            var adminToken = (await ServerApp.InitialiseAsync(app, ct))!;
            var seed = Stopwatch.StartNew();
            await SeedAsync(app.Services.GetRequiredService<GpucDbFactory>(), proposals, ct);
            seed.Stop();
            await app.StartAsync(ct);
            await app.Services.GetRequiredService<Coordinator>().Ready.WaitAsync(TimeSpan.FromMinutes(5), ct);
            var baseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');
            var jar = new CookieContainer();
            jar.Add(new Uri(baseUrl), new Cookie(PortalSetup.CookieName, PortalSetup.SessionCookie(app.Services, adminToken)));
            using var client = new HttpClient(new HttpClientHandler { CookieContainer = jar, AllowAutoRedirect = false }) { BaseAddress = new Uri(baseUrl) };
            var results = new List<Dictionary<string, object>>();
            foreach (var (name, path) in new[] { ("committee (English)", "/calls/bench/committee"), ("committee (Korean)", "/calls/bench/committee?lang=ko-KR") })
            {
                var cold = await TimeAsync(client, path, ct);
                if (cold.Status != 200)
                {
                    throw new CliException($"{path} answered {cold.Status}", CliRunner.Failure);
                }

                await TimeAsync(client, path, ct);
                var server = new List<double>();
                long bytes = 0;
                for (var i = 0; i < runs; i++)
                {
                    var t = await TimeAsync(client, path, ct);
                    server.Add(t.ServerMs);
                    bytes = t.Bytes;
                }

                server.Sort();
                results.Add(new Dictionary<string, object>
                {
                    ["page"] = name,
                    ["path"] = path,
                    ["first_ms"] = Math.Round(cold.ServerMs, 1),
                    ["server_median_ms"] = Math.Round(server[server.Count / 2], 1),
                    ["server_max_ms"] = Math.Round(server[^1], 1),
                    ["bytes"] = bytes,
                    ["within_300ms"] = server[server.Count / 2] <= 300,
                });
            }

            return new Dictionary<string, object> { ["proposals"] = proposals, ["reviews"] = proposals * 3, ["database"] = "sqlite", ["seed_s"] = Math.Round(seed.Elapsed.TotalSeconds, 1), ["pages"] = results };
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            try
            {
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A call of the seeded round's shape under review: organisations, one project per proposal, every review submitted.</summary>
    private static async Task SeedAsync(GpucDbFactory f, int proposals, CancellationToken ct)
    {
        var round = SeededRound.Generate(proposals: proposals, reviewers: 60);
        var now = TimeProvider.System.GetUtcNow();
        await using var db = f.Create();
        db.ChangeTracker.AutoDetectChangesEnabled = false;
        foreach (var o in round.Organisations)
        {
            db.Organisations.Add(new OrganisationRow { Name = o.Name, Type = o.Type, Created = now });
        }

        foreach (var r in round.Reviewers)
        {
            db.Users.Add(new UserRow { Name = r.Name, Role = "reviewer", Created = now });
            db.Add(new ReviewerProfileRow { User = r.Name, Organisation = r.Organisation, Conflicts = JsonSerializer.Serialize(r.ConflictOrganisations) });
        }

        var scale = proposals / 514.0;
        var rules = round.Rules with { BudgetGpuMonths = round.Rules.BudgetGpuMonths.ToDictionary(kv => kv.Key, kv => kv.Value * scale) };
        db.Add(new CallRow
        {
            Id = "bench", TitleEn = "National GPU call (benchmark)", TitleKo = "국가 GPU 지원 공모 (벤치마크)", Opens = now.AddDays(-30), Closes = now.AddDays(-1),
            Rules = JsonSerializer.Serialize(rules, RoundService.Json), Phase = "review", CreatedBy = "admin", Created = now,
        });
        var assignment = ReviewerAssignment.Assign(round.ToAssign(), round.Reviewers, rules.ReviewersPerProposal);
        var reviews = round.Reviews(assignment);
        foreach (var p in round.Proposals)
        {
            var project = $"p-{p.Id:0000}";
            db.Projects.Add(new ProjectRow { Name = project, Organisation = p.Organisation, Created = now });
            db.Add(new ProposalRow
            {
                Id = p.Id, CallId = "bench", Project = project, Organisation = p.Organisation, OrgType = p.OrgType, Title = $"Proposal {p.Id}", Partition = p.Partition,
                Gpus = p.Gpus, StartMonth = p.StartMonth, Months = p.Months, GpuHours = p.GpuHours, Justification = "…", Regional = p.Regional, Youth = p.Youth,
                State = "under_review", CreatedBy = "admin", Created = now, Submitted = now,
            });
            foreach (var r in reviews[p.Id])
            {
                db.Add(new ReviewRow { ProposalId = p.Id, Reviewer = r.Reviewer, CallId = "bench", Scores = JsonSerializer.Serialize(r.Scores, RoundService.Json), Comment = "ok", Assigned = now, Submitted = now });
            }
        }

        await db.SaveChangesAsync(ct);
    }

    private static async Task<(int Status, double ServerMs, long Bytes)> TimeAsync(HttpClient client, string path, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        using var resp = await client.GetAsync(path, ct);
        var body = await resp.Content.ReadAsByteArrayAsync(ct);
        sw.Stop();
        var server = sw.Elapsed.TotalMilliseconds;
        if (resp.Headers.TryGetValues("Server-Timing", out var values) && values.FirstOrDefault() is { } v && v.IndexOf("dur=", StringComparison.Ordinal) is var i and >= 0)
        {
            server = double.Parse(v[(i + 4)..], CultureInfo.InvariantCulture);
        }

        return ((int)resp.StatusCode, server, body.LongLength);
    }
}
