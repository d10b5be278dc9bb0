namespace GpuCommons.Core.Rounds;

/// <summary>
/// A proposal as the committee sees it: who asks, for what, and its aggregate score (null: not reviewed).
/// A capacity proposal asks for <see cref="Gpus"/> (whole servers) on <see cref="Partition"/> for <see cref="Months"/>;
/// a shared-queue proposal asks for <see cref="GpuHours"/> (and <see cref="Gpus"/> is 0).
/// </summary>
public sealed record Candidate(long Id, string Organisation, string OrgType, string Partition, int Gpus, int Months, double GpuHours, double? Score)
{
    /// <summary>A capacity proposal (dedicated GPUs for months) rather than a shared-queue one (GPU-hours).</summary>
    public bool IsCapacity => Gpus > 0;

    /// <summary>The tenant class whose budget it competes for (<see cref="TenantClasses"/>).</summary>
    public string Class => TenantClasses.Of(OrgType);

    /// <summary>What it asks of the class budget, in GPU-months.</summary>
    public double AskGpuMonths => IsCapacity ? (double)Gpus * Months : GpuHours / Rounds.Months.HoursPerMonth;
}

/// <summary>What the committee decided on a proposal.</summary>
public enum Outcome
{
    /// <summary>Funded in full.</summary>
    Awarded,
    /// <summary>Funded with less than asked (the call allows partial awards and the budget or a cap ran short).</summary>
    PartlyAwarded,
    /// <summary>Not funded, with a score of at least <see cref="CallRules.WaitlistMinScore"/>.</summary>
    Waitlisted,
    /// <summary>Not funded: a score under <see cref="CallRules.WaitlistMinScore"/>, not reviewed, or an ineligible organisation type.</summary>
    Rejected,
}

/// <summary>The committee's decision on one proposal: its rank in its class, the outcome, what is awarded and why.</summary>
public sealed record Decision(long Id, string Class, int Rank, double? Score, Outcome Outcome, int Gpus, int Months, double GpuHours, string Reason)
{
    /// <summary>What is awarded, in GPU-months (a GPU-hour award counts its GPU-hours ÷ <see cref="Rounds.Months.HoursPerMonth"/>).</summary>
    public double GpuMonths => Gpus > 0 ? (double)Gpus * Months : GpuHours / Rounds.Months.HoursPerMonth;
}

/// <summary>Per class: budget, what was asked and what was awarded.</summary>
public sealed record ClassTotals(string Class, double BudgetGpuMonths, int Proposals, double AskedGpuMonths, int AskedGpus, int Funded, double AwardedGpuMonths, int AwardedGpus);

/// <summary>The outcome of a selection.</summary>
/// <param name="Decisions">One decision per proposal.</param>
/// <param name="Classes">The totals of each tenant class.</param>
public sealed record SelectionResult(IReadOnlyList<Decision> Decisions, IReadOnlyList<ClassTotals> Classes)
{
    /// <summary>The decision on proposal <paramref name="id"/>; throws when there is none.</summary>
    public Decision Of(long id) => Decisions.First(d => d.Id == id);
}

/// <summary>
/// Ranking and selection. Proposals are ranked per tenant class by score (highest first; ties by id, i.e. the earlier
/// proposal), and awarded down each list while the class budget and the per-organisation cap allow: in full, or — where
/// the call allows it — in part (whole servers, at least <see cref="CallRules.MinPartialFraction"/> of the ask). A
/// proposal that does not fit is skipped, and later ones that fit are still funded. What is not funded is waitlisted
/// (score at least <see cref="CallRules.WaitlistMinScore"/>) or rejected. Pure and deterministic.
/// </summary>
public static class Selection
{
    /// <summary>Ranks one class: score descending, then id ascending; unreviewed proposals last.</summary>
    public static List<Candidate> Rank(IEnumerable<Candidate> candidates) =>
        candidates.OrderByDescending(c => c.Score.HasValue).ThenByDescending(c => c.Score ?? 0).ThenBy(c => c.Id).ToList();

    /// <param name="rules">The call.</param>
    /// <param name="candidates">Every proposal under review.</param>
    /// <param name="organisationGpus">Capacity the organisations already hold under this call (counted against the cap).</param>
    public static SelectionResult Select(CallRules rules, IReadOnlyList<Candidate> candidates, IReadOnlyDictionary<string, int>? organisationGpus = null)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(candidates);
        var orgUsed = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (o, g) in organisationGpus ?? new Dictionary<string, int>())
        {
            orgUsed[o] = g;
        }

        var decisions = new List<Decision>(candidates.Count);
        var totals = new List<ClassTotals>();
        foreach (var cls in TenantClasses.All)
        {
            var ranked = Rank(candidates.Where(c => c.Class == cls));
            var budget = rules.BudgetGpuMonths.GetValueOrDefault(cls);
            if (ranked.Count == 0 && budget == 0)
            {
                continue;
            }

            var left = budget;
            int funded = 0, awardedGpus = 0;
            double awardedGm = 0;
            for (var i = 0; i < ranked.Count; i++)
            {
                var c = ranked[i];
                var d = Decide(rules, c, i + 1, ref left, orgUsed);
                if (d.Outcome is Outcome.Awarded or Outcome.PartlyAwarded)
                {
                    funded++;
                    awardedGpus += d.Gpus;
                    awardedGm += d.GpuMonths;
                }

                decisions.Add(d);
            }

            totals.Add(new ClassTotals(cls, budget, ranked.Count, ranked.Sum(c => c.AskGpuMonths), ranked.Sum(c => c.Gpus), funded, awardedGm, awardedGpus));
        }

        return new SelectionResult(decisions, totals);
    }

    private static Decision Decide(CallRules rules, Candidate c, int rank, ref double left, Dictionary<string, int> orgUsed)
    {
        if (c.Score is not { } score)
        {
            return new Decision(c.Id, c.Class, rank, null, Outcome.Rejected, 0, 0, 0, "not reviewed");
        }

        if (!rules.IsEligible(c.OrgType))
        {
            return new Decision(c.Id, c.Class, rank, score, Outcome.Rejected, 0, 0, 0, "organisation type not eligible");
        }

        Decision NotFunded(string why) =>
            new(c.Id, c.Class, rank, score, score >= rules.WaitlistMinScore ? Outcome.Waitlisted : Outcome.Rejected, 0, 0, 0, why);

        // A tiny tolerance so that a budget spent exactly in floating point is not refused by rounding.
        const double eps = 1e-9;
        if (c.IsCapacity)
        {
            var server = rules.ServerSize(c.Partition);
            var months = Math.Min(c.Months, rules.MaxMonths);
            var ask = c.Gpus;
            if (rules.MaxGpusPerProject.TryGetValue(c.Partition, out var projectCap))
            {
                ask = Math.Min(ask, projectCap);
            }

            ask = ask / server * server;
            var byBudget = (int)Math.Floor((left + eps) / months) / server * server;
            var byOrg = rules.MaxGpusPerOrganisation is { } cap ? Math.Max(0, cap - orgUsed.GetValueOrDefault(c.Organisation)) / server * server : int.MaxValue;
            var give = Math.Min(ask, Math.Min(byBudget, byOrg));
            var full = give >= c.Gpus;
            var minPartial = (int)Math.Ceiling(rules.MinPartialFraction * c.Gpus);
            if (give <= 0 || (!full && (!rules.AllowPartial || give < minPartial)))
            {
                return NotFunded(byOrg < ask && byOrg < byBudget ? "organisation cap reached" : "class budget spent");
            }

            left -= (double)give * months;
            orgUsed[c.Organisation] = orgUsed.GetValueOrDefault(c.Organisation) + give;
            var why = full ? "within budget" : byOrg < byBudget ? "organisation cap" : give < byBudget ? "per-project cap" : "budget left";
            return new Decision(c.Id, c.Class, rank, score, full ? Outcome.Awarded : Outcome.PartlyAwarded, give, months, 0, why);
        }

        var hours = c.GpuHours;
        if (rules.MaxGpuHoursPerProject is { } maxHours)
        {
            hours = Math.Min(hours, maxHours);
        }

        var byBudgetHours = Math.Max(0, (left + eps) * Rounds.Months.HoursPerMonth);
        var grant = Math.Floor(Math.Min(hours, byBudgetHours));
        var whole = grant >= c.GpuHours;
        if (grant <= 0 || (!whole && (!rules.AllowPartial || grant < rules.MinPartialFraction * c.GpuHours)))
        {
            return NotFunded("class budget spent");
        }

        left = Math.Max(0, left - (grant / Rounds.Months.HoursPerMonth));
        return new Decision(c.Id, c.Class, rank, score, whole ? Outcome.Awarded : Outcome.PartlyAwarded, 0, Math.Min(Math.Max(c.Months, 1), rules.MaxMonths), grant,
            whole ? "within budget" : "budget left");
    }
}
