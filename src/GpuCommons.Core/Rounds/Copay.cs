namespace GpuCommons.Core.Rounds;

/// <summary>
/// Ledger charges of one project on one partition at one co-pay share: the market value and what the organisation pays
/// (as the ledger recorded it when the job ended).
/// </summary>
public sealed record ChargeLine(string Partition, double GpuHours, decimal MarketAmount, double Share = 0, decimal Payable = 0);

/// <summary>A line of a monthly statement: use at the market price, the applicant's share and the public subsidy.</summary>
public sealed record StatementLine(string Partition, double GpuHours, decimal MarketAmount, double Share, decimal Due, decimal Subsidy);

/// <summary>Co-pay: what an organisation pays of the market price of what its project used (universities and institutes nothing).</summary>
public static class Copay
{
    /// <summary>What the organisation pays of a market amount at a share (the ledger's rounding: 4 decimals).</summary>
    public static decimal Payable(decimal marketAmount, double share)
    {
        CheckShare(share);
        return Math.Round(marketAmount * (decimal)share, 4, MidpointRounding.AwayFromZero);
    }

    /// <summary>
    /// A statement from the ledger's lines: per partition and share, the market value, and what is due as the sum of what
    /// the ledger recorded payable (rounded to whole currency units); the subsidy is the rest.
    /// </summary>
    public static IReadOnlyList<StatementLine> Statement(IEnumerable<ChargeLine> charges)
    {
        ArgumentNullException.ThrowIfNull(charges);
        return charges.GroupBy(c => (c.Partition, c.Share)).OrderBy(g => g.Key.Partition, StringComparer.Ordinal).ThenBy(g => g.Key.Share).Select(g =>
        {
            CheckShare(g.Key.Share);
            var market = g.Sum(c => c.MarketAmount);
            var due = Math.Min(market, Math.Round(g.Sum(c => c.Payable), 0, MidpointRounding.AwayFromZero));
            return new StatementLine(g.Key.Partition, g.Sum(c => c.GpuHours), market, g.Key.Share, due, market - due);
        }).ToList();
    }

    /// <summary>A statement of charges all at one share, what is payable computed from the market value.</summary>
    public static IReadOnlyList<StatementLine> Statement(IEnumerable<ChargeLine> charges, double share)
    {
        ArgumentNullException.ThrowIfNull(charges);
        CheckShare(share);
        return Statement(charges.Select(c => c with { Share = share, Payable = Payable(c.MarketAmount, share) }));
    }

    private static void CheckShare(double share)
    {
        if (share is < 0 or > 1 || !double.IsFinite(share))
        {
            throw new ArgumentOutOfRangeException(nameof(share), "a share is between 0 and 1");
        }
    }
}
