namespace GpuCommons.Core.Rounds;

/// <summary>Ledger charges of one project in one month on one partition, at the market price.</summary>
public sealed record ChargeLine(string Partition, double GpuHours, decimal MarketAmount);

/// <summary>A line of a monthly statement: use at the market price, the applicant's share and the public subsidy.</summary>
public sealed record StatementLine(string Partition, double GpuHours, decimal MarketAmount, double Share, decimal Due, decimal Subsidy);

/// <summary>Co-pay: what an organisation pays of the market price of what its project used (universities and institutes nothing).</summary>
public static class Copay
{
    public static IReadOnlyList<StatementLine> Statement(IEnumerable<ChargeLine> charges, double share)
    {
        ArgumentNullException.ThrowIfNull(charges);
        if (share is < 0 or > 1 || !double.IsFinite(share))
        {
            throw new ArgumentOutOfRangeException(nameof(share), "a share is between 0 and 1");
        }

        return charges.GroupBy(c => c.Partition, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g =>
        {
            var market = g.Sum(c => c.MarketAmount);
            var due = Math.Round(market * (decimal)share, 0, MidpointRounding.AwayFromZero);
            return new StatementLine(g.Key, g.Sum(c => c.GpuHours), market, share, due, market - due);
        }).ToList();
    }
}
