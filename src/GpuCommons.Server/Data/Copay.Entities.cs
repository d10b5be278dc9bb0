namespace GpuCommons.Server.Data;

// Co-pay in the ledger (docs/rounds.md, "Co-pay"): an allocation carries the share of the market price its organisation
// pays, and each ledger entry records both the market value and what the organisation pays, so that funders see both.

public sealed partial class AllocationRow
{
    /// <summary>
    /// Share of the market price the organisation pays for use charged here (0–1): 0 for a grant and for universities and
    /// institutes; a company's co-pay rate of its call, halved again for a youth-founded firm. Set when an award is made.
    /// </summary>
    public double CopayShare { get; set; }
}

public sealed partial class LedgerRow
{
    /// <summary>The allocation's co-pay share when the entry was written (the rate may change later; the entry does not).</summary>
    public double CopayShare { get; set; }

    /// <summary>What the organisation pays for this entry: <see cref="Amount"/> (the market value) × <see cref="CopayShare"/>.</summary>
    public decimal Payable { get; set; }
}
