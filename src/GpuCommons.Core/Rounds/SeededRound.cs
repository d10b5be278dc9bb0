namespace GpuCommons.Core.Rounds;

/// <summary>An applicant organisation of a seeded round.</summary>
public sealed record SeedOrganisation(string Name, string Type, bool Regional, bool Youth);

/// <summary>A proposal of a seeded round; <see cref="Quality"/> is the latent merit the synthetic reviewers score around.</summary>
public sealed record SeedProposal(long Id, string Organisation, string OrgType, bool Regional, bool Youth, string Partition, int Gpus, int StartMonth, int Months, double GpuHours, double Quality);

/// <summary>
/// A synthetic call shaped like the first national round (public figures, 2025–26, docs/rounds.md): about
/// 500 proposals asking for about 13,700 GPUs in whole 8-GPU servers (academia about 8,600), a budget of about 4,200 GPUs
/// for six months split academia 2,624, industry 1,288, research 312, and a panel of about 60 reviewers from universities
/// and institutes. Deterministic for a seed; the number of proposals given to its factory scales it (the benchmark uses 5,000).
/// </summary>
public sealed record SeededRound(CallRules Rules, IReadOnlyList<SeedOrganisation> Organisations, IReadOnlyList<SeedProposal> Proposals, IReadOnlyList<PanelReviewer> Reviewers, int StartMonth)
{
    /// <summary>The two partitions the seeded call offers, 8-GPU servers each: an H200 and a B200 pool.</summary>
    public const string H200 = "h200-a", B200 = "b200-a";

    /// <summary>Generates the round: 460 applicant organisations, their proposals, the panel and the call's rules.</summary>
    /// <param name="seed">Seed of the generator: the same seed gives the same round.</param>
    /// <param name="proposals">How many proposals (514 as in the first call).</param>
    /// <param name="reviewers">How many reviewers on the panel.</param>
    /// <param name="startMonth">The month awards start (<see cref="Months"/>; March 2026 by default); some proposals start a month later.</param>
    public static SeededRound Generate(int seed = 2026, int proposals = 514, int reviewers = 60, int startMonth = 2026 * 12 + 2)
    {
        var rng = new Random(seed);
        var orgs = new List<SeedOrganisation>();
        for (var i = 1; i <= 80; i++)
        {
            orgs.Add(new SeedOrganisation($"University {i:00}", "university", i % 5 >= 2, false));
        }

        for (var i = 1; i <= 30; i++)
        {
            orgs.Add(new SeedOrganisation($"Institute {i:00}", "institute", i % 3 == 0, false));
        }

        for (var i = 1; i <= 50; i++)
        {
            orgs.Add(new SeedOrganisation($"Company Lab {i:00}", "companylab", i % 4 == 0, false));
        }

        for (var i = 1; i <= 300; i++)
        {
            orgs.Add(new SeedOrganisation($"Startup {i:000}", "startup", i % 3 == 0, i % 4 == 0));
        }

        var byType = orgs.GroupBy(o => o.Type).ToDictionary(g => g.Key, g => g.ToList());
        // Shares of proposals by class as in the first call (academia asked 8,600 of 13,712 GPUs).
        var list = new List<SeedProposal>(proposals);
        for (var i = 0; i < proposals; i++)
        {
            var u = rng.NextDouble();
            var type = u < 0.60 ? "university" : u < 0.68 ? "institute" : u < 0.76 ? "companylab" : "startup";
            var pool = byType[type];
            // Big universities apply more: a skewed pick.
            var org = pool[(int)(pool.Count * Math.Pow(rng.NextDouble(), 1.6))];
            var b200 = rng.NextDouble() < 0.35;
            var partition = b200 ? B200 : H200;
            var servers = ServersAsked(rng, type);
            var cap = b200 ? 16 : 32;
            var gpus = Math.Min(servers, cap) * 8;
            var months = rng.NextDouble() switch { < 0.15 => 3, < 0.25 => 4, < 0.75 => 6, < 0.85 => 9, _ => 12 };
            var quality = Math.Clamp(70 + (Normal(rng) * 11), 20, 100);
            list.Add(new SeedProposal(i + 1, org.Name, type, org.Regional, org.Youth, partition, gpus, startMonth + (rng.NextDouble() < 0.8 ? 0 : 1), months, 0, quality));
        }

        var panel = new List<PanelReviewer>(reviewers);
        for (var i = 1; i <= reviewers; i++)
        {
            var home = i % 3 == 0 ? $"Institute {(i % 30) + 1:00}" : $"University {(i % 80) + 1:00}";
            var conflicts = new List<string>();
            if (i % 4 == 0)
            {
                conflicts.Add($"University {((i * 7) % 80) + 1:00}");
            }

            if (i % 10 == 0)
            {
                conflicts.Add($"Startup {((i * 13) % 300) + 1:000}");
            }

            panel.Add(new PanelReviewer($"reviewer-{i:00}", home, conflicts, []));
        }

        var rules = new CallRules
        {
            Partitions = [H200, B200],
            BudgetGpuMonths = new Dictionary<string, double>
            {
                [TenantClasses.Academia] = 2624 * 6,
                [TenantClasses.Industry] = 1288 * 6,
                [TenantClasses.Research] = 312 * 6,
            },
            MaxGpusPerProject = new Dictionary<string, int> { [H200] = 256, [B200] = 128 },
            ServerGpus = new Dictionary<string, int> { [H200] = 8, [B200] = 8 },
            MaxMonths = 12,
            EligibleTypes = ["university", "institute", "companylab", "startup"],
            Criteria = CallRules.NationalCriteria,
            ReviewersPerProposal = 3,
            RegionalBonus = 3,
            MaxGpusPerOrganisation = 256,
            AllowPartial = true,
            MinPartialFraction = 0.5,
            WaitlistMinScore = 65,
            Copay = new Dictionary<string, double> { ["companylab"] = 0.3, ["startup"] = 0.3 },
            YouthDiscount = 0.5,
        };
        return new SeededRound(rules, orgs, list, panel, startMonth);
    }

    private static int ServersAsked(Random rng, string type)
    {
        // Mostly 1–4 servers; a tail of big asks (the first call averaged ~27 GPUs per proposal).
        var u = rng.NextDouble();
        var servers = u switch { < 0.30 => 1, < 0.55 => 2, < 0.70 => 3, < 0.82 => 4, < 0.90 => 6, < 0.95 => 8, < 0.985 => 16, _ => 32 };
        return type == "startup" ? Math.Min(servers, 8) : servers;
    }

    private static double Normal(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());

    /// <summary>The proposals as <see cref="ReviewerAssignment.Assign"/> takes them.</summary>
    public IReadOnlyList<ProposalToAssign> ToAssign() => Proposals.Select(p => new ProposalToAssign(p.Id, p.Organisation)).ToList();

    /// <summary>Synthetic reviews: each assigned reviewer scores each criterion around the proposal's quality (deterministic).</summary>
    public Dictionary<long, List<ReviewScores>> Reviews(Assignment assignment, int seed = 7)
    {
        ArgumentNullException.ThrowIfNull(assignment);
        var rng = new Random(seed);
        var result = new Dictionary<long, List<ReviewScores>>();
        foreach (var p in Proposals)
        {
            var list = new List<ReviewScores>();
            foreach (var r in assignment.Reviewers.GetValueOrDefault(p.Id) ?? [])
            {
                var scores = Rules.Criteria.ToDictionary(c => c.Key, _ => Math.Round(Math.Clamp(p.Quality + (Normal(rng) * 6), 0, 100)));
                list.Add(new ReviewScores(r, scores));
            }

            result[p.Id] = list;
        }

        return result;
    }

    /// <summary>The proposals as the committee sees them, scored by <paramref name="reviews"/>.</summary>
    public List<Candidate> Candidates(Dictionary<long, List<ReviewScores>> reviews) =>
        Proposals.Select(p => new Candidate(p.Id, p.Organisation, p.OrgType, p.Partition, p.Gpus, p.Months, p.GpuHours,
            Scoring.Aggregate(Rules, reviews.GetValueOrDefault(p.Id) ?? [], p.Regional))).ToList();
}
