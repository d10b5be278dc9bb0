using CsCheck;
using GpuCommons.Core.Rounds;

namespace GpuCommons.Rounds.Tests;

/// <summary>Invariants of a round over random calls, proposals and panels.</summary>
public sealed class RoundProperties
{
    private static readonly string[] Types = ["university", "institute", "companylab", "startup", "flagship"];
    private static readonly string[] Parts = ["H200-A", "B200-A"];

    private static readonly Gen<CallRules> GenRules =
        Gen.Select(Gen.Int[0, 4000], Gen.Int[0, 4000], Gen.Int[0, 2000], Gen.Int[0, 20].Select(x => x == 0 ? (int?)null : x * 8),
            Gen.Bool, Gen.Double[0.1, 1.0], Gen.Int[0, 3].Select(x => x == 0 ? 0 : x * 4), Gen.Int[0, 2].Select(x => x == 0 ? (int?)null : x * 64))
        .Select((ac, ind, res, orgCap, partial, minFrac, server, projCap) => new CallRules
        {
            Partitions = Parts,
            BudgetGpuMonths = new Dictionary<string, double> { [TenantClasses.Academia] = ac, [TenantClasses.Industry] = ind, [TenantClasses.Research] = res },
            MaxGpusPerOrganisation = orgCap,
            AllowPartial = partial,
            MinPartialFraction = minFrac,
            ServerGpus = server == 0 ? new Dictionary<string, int>() : new Dictionary<string, int> { ["B200-A"] = server },
            MaxGpusPerProject = projCap is { } pc ? new Dictionary<string, int> { ["H200-A"] = pc } : new Dictionary<string, int>(),
            Criteria = CallRules.NationalCriteria,
            EligibleTypes = ["university", "institute", "companylab", "startup"],
            MaxMonths = 12,
        });

    private static readonly Gen<Candidate> GenCandidate =
        Gen.Select(Gen.Int[1, 12], Gen.Int[0, Types.Length - 1], Gen.Int[0, 1], Gen.Int[0, 32], Gen.Int[1, 12], Gen.Int[0, 100_000], Gen.Int[-1, 100], Gen.Bool)
        .Select((org, type, part, servers, months, hours, score, capacity) => new Candidate(0, $"Org {org}", Types[type], Parts[part],
            capacity ? Math.Max(1, servers) * 8 : 0, months, capacity ? 0 : Math.Max(1, hours), score < 0 ? null : score));

    private static readonly Gen<List<Candidate>> GenCandidates =
        GenCandidate.List[0, 80].Select(l => l.Select((c, i) => c with { Id = i + 1 }).ToList());

    [Fact]
    public void Selection_NeverExceedsAClassBudget_TheOrganisationCap_OrTheAsk()
    {
        Gen.Select(GenRules, GenCandidates).Sample((rules, cands) =>
        {
            var result = Selection.Select(rules, cands);
            result.Decisions.Count.ShouldBe(cands.Count);
            foreach (var cls in TenantClasses.All)
            {
                var spent = result.Decisions.Where(d => d.Class == cls).Sum(d => d.GpuMonths);
                spent.ShouldBeLessThanOrEqualTo(rules.BudgetGpuMonths.GetValueOrDefault(cls) + 1e-6, cls);
            }

            var byId = cands.ToDictionary(c => c.Id);
            foreach (var d in result.Decisions)
            {
                var c = byId[d.Id];
                d.Gpus.ShouldBeLessThanOrEqualTo(c.Gpus);
                d.GpuHours.ShouldBeLessThanOrEqualTo(c.GpuHours);
                if (d.Gpus > 0)
                {
                    (d.Gpus % rules.ServerSize(c.Partition)).ShouldBe(0, "whole servers");
                    if (rules.MaxGpusPerProject.TryGetValue(c.Partition, out var pc))
                    {
                        d.Gpus.ShouldBeLessThanOrEqualTo(pc);
                    }
                }

                if (d.Outcome is Outcome.Waitlisted or Outcome.Rejected)
                {
                    (d.Gpus + d.GpuHours).ShouldBe(0);
                }

                if (d.Outcome == Outcome.PartlyAwarded)
                {
                    rules.AllowPartial.ShouldBeTrue();
                }

                if (c.Score is null || !rules.IsEligible(c.OrgType))
                {
                    d.Outcome.ShouldBe(Outcome.Rejected);
                }
            }

            if (rules.MaxGpusPerOrganisation is { } cap)
            {
                foreach (var g in result.Decisions.GroupBy(d => byId[d.Id].Organisation))
                {
                    g.Sum(d => d.Gpus).ShouldBeLessThanOrEqualTo(cap, g.Key);
                }
            }
        }, iter: 2000);
    }

    [Fact]
    public void Ranking_IsMonotoneInScore_WithinAClass()
    {
        Gen.Select(GenRules, GenCandidates).Sample((rules, cands) =>
        {
            var result = Selection.Select(rules, cands);
            foreach (var a in result.Decisions)
            {
                foreach (var b in result.Decisions)
                {
                    if (a.Class == b.Class && (a.Score ?? double.NegativeInfinity) > (b.Score ?? double.NegativeInfinity))
                    {
                        a.Rank.ShouldBeLessThan(b.Rank);
                    }
                }
            }

            foreach (var g in result.Decisions.GroupBy(d => d.Class))
            {
                g.Select(d => d.Rank).Order().ShouldBe(Enumerable.Range(1, g.Count()));
            }
        }, iter: 1000);
    }

    [Fact]
    public void Raising_AScore_NeverLowersItsRank()
    {
        Gen.Select(GenRules, GenCandidates.Where(l => l.Count > 0), Gen.Int[0, 1000], Gen.Int[1, 50]).Sample((rules, cands, pick, raise) =>
        {
            var i = pick % cands.Count;
            var before = Selection.Select(rules, cands).Of(cands[i].Id);
            var raised = cands.ToList();
            raised[i] = raised[i] with { Score = (raised[i].Score ?? 0) + raise };
            var after = Selection.Select(rules, raised).Of(cands[i].Id);
            after.Rank.ShouldBeLessThanOrEqualTo(before.Rank);
        }, iter: 1000);
    }

    [Fact]
    public void Selection_IsDeterministic_AndIndependentOfInputOrder()
    {
        Gen.Select(GenRules, GenCandidates, Gen.Int).Sample((rules, cands, seed) =>
        {
            var a = Selection.Select(rules, cands);
            var shuffled = cands.OrderBy(_ => 0).ToArray();
            new Random(seed).Shuffle(shuffled);
            var b = Selection.Select(rules, shuffled);
            b.Decisions.OrderBy(d => d.Id).ShouldBe(a.Decisions.OrderBy(d => d.Id));
            b.Classes.ShouldBe(a.Classes);
        }, iter: 1000);
    }

    private static readonly Gen<List<PanelReviewer>> GenPanel =
        Gen.Select(Gen.Int[0, 12], Gen.Int[0, 12].List[0, 3], Gen.Int[1, 80].List[0, 3]).List[1, 25]
            .Select(l => l.Select((x, i) => new PanelReviewer($"r{i:00}", $"Org {x.Item1}", x.Item2.Select(o => $"Org {o}").ToList(), x.Item3.Select(p => (long)p).ToList())).ToList());

    private static readonly Gen<List<ProposalToAssign>> GenToAssign =
        Gen.Int[0, 12].List[0, 80].Select(l => l.Select((o, i) => new ProposalToAssign(i + 1, $"Org {o}")).ToList());

    [Fact]
    public void Assignment_NeverHasAConflictOfInterest_AndGivesEachProposalAsManyAsItCan()
    {
        Gen.Select(GenToAssign, GenPanel, Gen.Int[1, 5]).Sample((props, panel, k) =>
        {
            var a = ReviewerAssignment.Assign(props, panel, k);
            var byName = panel.ToDictionary(r => r.Name);
            foreach (var p in props)
            {
                var rs = a.Reviewers[p.Id];
                rs.Distinct().Count().ShouldBe(rs.Count);
                foreach (var r in rs)
                {
                    byName[r].ConflictsWith(p.Id, p.Organisation).ShouldBeFalse($"{r} reviews {p.Id} of {p.Organisation}");
                }

                var eligible = panel.Count(r => !r.ConflictsWith(p.Id, p.Organisation));
                rs.Count.ShouldBe(Math.Min(k, eligible));
                a.Short.Contains(p.Id).ShouldBe(eligible < k);
            }

            var again = ReviewerAssignment.Assign(props, panel, k).Reviewers;
            foreach (var p in props)
            {
                again[p.Id].ShouldBe(a.Reviewers[p.Id], "deterministic");
            }
        }, iter: 1000);
    }

    [Fact]
    public void Assignment_WithoutConflicts_IsBalancedWithinOne()
    {
        Gen.Select(Gen.Int[0, 200], Gen.Int[1, 30], Gen.Int[1, 5]).Sample((n, reviewers, k) =>
        {
            var props = Enumerable.Range(1, n).Select(i => new ProposalToAssign(i, "Applicant")).ToList();
            var panel = Enumerable.Range(0, reviewers).Select(i => new PanelReviewer($"r{i}", "Panel")).ToList();
            var loads = ReviewerAssignment.Assign(props, panel, k).Loads();
            var all = panel.Select(r => loads.GetValueOrDefault(r.Name)).ToList();
            (all.Max() - all.Min()).ShouldBeLessThanOrEqualTo(1);
        }, iter: 500);
    }

    [Fact]
    public void Aggregate_IsTheWeightedMeanPlusTheRegionalBonus()
    {
        var rules = new CallRules { Criteria = [new("a", 3, "A", "가"), new("b", 1, "B", "나")], RegionalBonus = 5 };
        var reviews = new List<ReviewScores>
        {
            new("x", new Dictionary<string, double> { ["a"] = 80, ["b"] = 40 }),
            new("y", new Dictionary<string, double> { ["a"] = 60, ["b"] = 100 }),
        };
        Scoring.Aggregate(rules, reviews, regional: false).ShouldBe(70); // ((3·80 + 40) / 4 + (3·60 + 100) / 4) / 2
        Scoring.Aggregate(rules, reviews, regional: true).ShouldBe(75);
        Scoring.Aggregate(rules, [], regional: true).ShouldBeNull();
    }

    [Fact]
    public void Feasibility_FlagsTheMonthsWhereAwardsExceedTheDeliveredFleet()
    {
        // H200 in service now; B200 arrives in month 3 (a delivery timeline).
        var timeline = new CapacityTimeline([new("H200", 0, 2040), new("B200", 0, 0), new("B200", 3, 4080)]);
        var existing = new List<DedicatedCapacity> { new("H200", 1500, 0, 6) };
        var added = new List<DedicatedCapacity> { new("H200", 512, 2, 2), new("B200", 1024, 2, 4), new("H200", 100, 4, 1) };
        var report = Feasibility.Check(timeline, existing, added);
        var b200 = report.Rows.Where(r => r.Partition == "B200").ToDictionary(r => r.Month);
        b200[2].Over.ShouldBeTrue();
        b200[3].Over.ShouldBeFalse();
        b200[3].SharedQueue.ShouldBe(4080 - 1024);
        var h = report.Rows.Where(r => r.Partition == "H200").ToDictionary(r => r.Month);
        h[2].Existing.ShouldBe(1500);
        h[2].Added.ShouldBe(512);
        h[2].Over.ShouldBeFalse(); // 2,012 of 2,040
        h[4].Over.ShouldBeFalse();
        report.Violations.Select(v => (v.Partition, v.Month)).ShouldBe([("B200", 2)]);
    }

    [Fact]
    public void Feasibility_TotalsMatchANaiveSum()
    {
        var gen = Gen.Select(Gen.Int[0, 1], Gen.Int[0, 300], Gen.Int[0, 10], Gen.Int[1, 6]).Select((p, g, s, m) => new DedicatedCapacity(Parts[p], g, s, m)).List[0, 30];
        Gen.Select(gen, gen).Sample((existing, added) =>
        {
            var tl = CapacityTimeline.Constant([("H200-A", 1000), ("B200-A", 500)]);
            var report = Feasibility.Check(tl, existing, added);
            foreach (var r in report.Rows)
            {
                r.Existing.ShouldBe(existing.Where(a => a.Partition == r.Partition && a.Covers(r.Month)).Sum(a => a.Gpus));
                r.Added.ShouldBe(added.Where(a => a.Partition == r.Partition && a.Covers(r.Month)).Sum(a => a.Gpus));
                r.Capacity.ShouldBe(r.Partition == "H200-A" ? 1000 : 500);
            }
        }, iter: 500);
    }

    [Fact]
    public void Copay_UniversitiesPayNothing_YouthFirmsHalfTheCompanyShare()
    {
        var rules = new CallRules { Copay = new Dictionary<string, double> { ["startup"] = 0.3, ["companylab"] = 0.3 }, YouthDiscount = 0.5 };
        rules.CopayShare("university", false).ShouldBe(0);
        rules.CopayShare("startup", false).ShouldBe(0.3);
        rules.CopayShare("startup", true).ShouldBe(0.15);
        var lines = Copay.Statement([new("H200", 100, 300_000m), new("H200", 50, 150_000m), new("B200", 10, 50_000m)], 0.15);
        lines.Select(l => (l.Partition, l.GpuHours, l.MarketAmount, l.Due, l.Subsidy)).ShouldBe(
        [
            ("B200", 10.0, 50_000m, 7_500m, 42_500m),
            ("H200", 150.0, 450_000m, 67_500m, 382_500m),
        ]);
    }

    [Fact]
    public void Statement_FromLedgerLines_DueIsWhatTheLedgerRecordedPayable_AndDuePlusSubsidyIsTheMarketValue()
    {
        var shares = new[] { 0.0, 0.15, 0.3 };
        Gen.Select(Gen.Int[0, 2], Gen.Int[0, 2], Gen.Int[1, 1_000_000], Gen.Int[1, 200]).Array[0, 40].Sample(charges =>
        {
            var lines = charges.Select(c => new ChargeLine(c.Item1 == 0 ? "H200" : "B200", c.Item4, c.Item3 / 100m, shares[c.Item2], Copay.Payable(c.Item3 / 100m, shares[c.Item2]))).ToList();
            var statement = Copay.Statement(lines);
            statement.Select(l => (l.Partition, l.Share)).Distinct().Count().ShouldBe(statement.Count, "a line per partition and share");
            foreach (var l in statement)
            {
                var of = lines.Where(c => c.Partition == l.Partition && c.Share == l.Share).ToList();
                l.MarketAmount.ShouldBe(of.Sum(c => c.MarketAmount));
                (l.Due + l.Subsidy).ShouldBe(l.MarketAmount);
                l.Due.ShouldBe(Math.Round(of.Sum(c => c.Payable), 0, MidpointRounding.AwayFromZero));
                l.Due.ShouldBeLessThanOrEqualTo(l.MarketAmount);
                if (l.Share == 0)
                {
                    l.Due.ShouldBe(0m, "universities, institutes and grants pay nothing");
                }
            }

            statement.Sum(l => l.MarketAmount).ShouldBe(lines.Sum(c => c.MarketAmount));
        }, iter: 300);
    }
}
