using GpuCommons.Core.Tenancy;

namespace GpuCommons.Scheduling.Internal;

/// <summary>Quota and usage of one organisation or project, per partition, in thousandths of a GPU.</summary>
internal sealed class QuotaNode
{
    public const long Unlimited = long.MaxValue / 4;

    public QuotaNode(int partitions, IReadOnlyList<QuotaSpec> quotas, Func<string, int> partitionIndex)
    {
        Nominal = new long[partitions];
        Borrow = new long[partitions];
        Lend = new long[partitions];
        Usage = new long[partitions];
        ChildExcess = new long[partitions];
        ChildLend = new long[partitions];
        ChildNominal = new long[partitions];
        ChildUnused = new long[partitions];
        Over = new bool[partitions];
        Array.Fill(Borrow, Unlimited);
        foreach (var q in quotas)
        {
            var p = partitionIndex(q.Partition);
            Nominal[p] = ToMilli(q.NominalGpus);
            Borrow[p] = q.BorrowingLimitGpus is { } b ? ToMilli(b) : Unlimited;
            Lend[p] = q.LendingLimitGpus is { } l ? ToMilli(l) : Nominal[p];
        }
    }

    public long[] Nominal { get; }
    public long[] Borrow { get; }
    public long[] Lend { get; }
    public long[] Usage { get; }
    // For a parent: Σ over children of max(0, U−N), of min(L, max(0, N−U)), and of N.
    public long[] ChildExcess { get; }
    public long[] ChildLend { get; }
    public long[] ChildNominal { get; }
    /// <summary>Σ over children of max(0, N−U): what they would lend with no lending limit.</summary>
    public long[] ChildUnused { get; }
    /// <summary>
    /// Per partition: the limits were lowered below what already runs. Running jobs are not stopped for it; nothing
    /// more is admitted, and the flag clears once usage is back within the limits.
    /// </summary>
    public bool[] Over { get; }

    public long Unused(int p) => Math.Max(0, Nominal[p] - Usage[p]);

    public long UnusedAt(int p, long usage) => Math.Max(0, Nominal[p] - usage);

    public long Excess(int p) => Math.Max(0, Usage[p] - Nominal[p]);

    public long Lendable(int p) => Math.Min(Lend[p], Math.Max(0, Nominal[p] - Usage[p]));

    public long ExcessAt(int p, long usage) => Math.Max(0, usage - Nominal[p]);

    public long LendableAt(int p, long usage) => Math.Min(Lend[p], Math.Max(0, Nominal[p] - usage));

    public bool Borrowing(int p) => Usage[p] > Nominal[p];

    public static long ToMilli(double gpus) => (long)Math.Round(gpus * 1000);
}
