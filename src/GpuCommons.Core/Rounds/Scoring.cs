namespace GpuCommons.Core.Rounds;

/// <summary>One reviewer's scores (criterion key → 0–100) of one proposal.</summary>
public sealed record ReviewScores(string Reviewer, IReadOnlyDictionary<string, double> Scores);

/// <summary>The aggregate of a proposal's reviews: the weighted mean over criteria and reviewers, plus preference points.</summary>
public static class Scoring
{
    /// <summary>Checks one reviewer's scores against the call's criteria: every criterion, 0–100, nothing else.</summary>
    public static void Validate(IReadOnlyList<Criterion> criteria, IReadOnlyDictionary<string, double>? scores, string field = "scores")
    {
        ArgumentNullException.ThrowIfNull(criteria);
        if (scores is null)
        {
            throw new SpecException(field, "is required: a score from 0 to 100 for each criterion");
        }

        foreach (var c in criteria)
        {
            if (!scores.TryGetValue(c.Key, out var s))
            {
                throw new SpecException($"{field}.{c.Key}", "is required (0–100)");
            }

            if (s is < 0 or > 100 || !double.IsFinite(s))
            {
                throw new SpecException($"{field}.{c.Key}", "must be between 0 and 100");
            }
        }

        foreach (var k in scores.Keys)
        {
            if (!criteria.Any(c => c.Key == k))
            {
                throw new SpecException($"{field}.{k}", $"is not a criterion of this call (criteria: {string.Join(", ", criteria.Select(c => c.Key))})");
            }
        }
    }

    /// <summary>One review's weighted mean over the criteria.</summary>
    public static double Weighted(IReadOnlyList<Criterion> criteria, IReadOnlyDictionary<string, double> scores)
    {
        ArgumentNullException.ThrowIfNull(criteria);
        ArgumentNullException.ThrowIfNull(scores);
        double sum = 0, weights = 0;
        foreach (var c in criteria)
        {
            sum += c.Weight * scores.GetValueOrDefault(c.Key);
            weights += c.Weight;
        }

        return weights > 0 ? sum / weights : 0;
    }

    /// <summary>
    /// The aggregate score: the mean of the reviews' weighted means, plus the regional bonus where it applies; null when
    /// no review was submitted. Rounded to 1/1000 so that the ranking does not depend on the order of additions.
    /// </summary>
    public static double? Aggregate(CallRules rules, IReadOnlyList<ReviewScores> reviews, bool regional)
    {
        ArgumentNullException.ThrowIfNull(rules);
        ArgumentNullException.ThrowIfNull(reviews);
        if (reviews.Count == 0)
        {
            return null;
        }

        var total = 0.0;
        foreach (var r in reviews.OrderBy(r => r.Reviewer, StringComparer.Ordinal))
        {
            total += Weighted(rules.Criteria, r.Scores);
        }

        var mean = total / reviews.Count;
        return Math.Round(mean + (regional ? rules.RegionalBonus : 0), 3, MidpointRounding.AwayFromZero);
    }
}
