namespace GpuCommons.Core.Tenancy;

/// <summary>
/// Quota of a project or organisation on one partition, in GPUs (Kueue semantics).
/// <see cref="NominalGpus"/> is guaranteed; up to <see cref="BorrowingLimitGpus"/> more may be borrowed from the
/// cohort's idle quota (null: no limit); at most <see cref="LendingLimitGpus"/> of the unused nominal is lent
/// to others (null: all of it).
/// </summary>
public sealed record QuotaSpec(string Partition, double NominalGpus, double? BorrowingLimitGpus = null, double? LendingLimitGpus = null)
{
    /// <summary>Checks the values; a problem is a <see cref="SpecException"/> naming the field under <paramref name="field"/>.</summary>
    public void Validate(string field)
    {
        if (string.IsNullOrWhiteSpace(Partition))
        {
            throw new SpecException(field + ".partition", "is required");
        }

        if (NominalGpus < 0 || !double.IsFinite(NominalGpus))
        {
            throw new SpecException(field + ".nominalGpus", "must be zero or more");
        }

        if (BorrowingLimitGpus is < 0)
        {
            throw new SpecException(field + ".borrowingLimitGpus", "must be zero or more");
        }

        if (LendingLimitGpus is { } l && (l < 0 || l > NominalGpus))
        {
            throw new SpecException(field + ".lendingLimitGpus", "must be between 0 and nominalGpus");
        }
    }
}
