using GpuCommons.Core.Tenancy;

namespace GpuCommons.Core.Rounds;

/// <summary>One published criterion of a call, with its weight in the aggregate score.</summary>
public sealed record Criterion(string Key, double Weight, string NameEn, string NameKo);

/// <summary>
/// The rules of a call for proposals: what is on offer, who may apply, how proposals are scored and how the committee
/// selects. Budgets are per tenant class in GPU-months (GPUs × months of a capacity award; a GPU-hour award counts
/// its GPU-hours ÷ <see cref="Months.HoursPerMonth"/>). Plain data: the server stores it as JSON.
/// </summary>
public sealed record CallRules
{
    /// <summary>Partitions on offer.</summary>
    public IReadOnlyList<string> Partitions { get; init; } = [];
    /// <summary>Budget per tenant class (<see cref="TenantClasses"/>) in GPU-months; a class not listed gets nothing.</summary>
    public IReadOnlyDictionary<string, double> BudgetGpuMonths { get; init; } = new Dictionary<string, double>();
    /// <summary>Most GPUs one project may get, per partition (absent: no cap beyond the budget).</summary>
    public IReadOnlyDictionary<string, int> MaxGpusPerProject { get; init; } = new Dictionary<string, int>();
    /// <summary>GPUs per server of each partition: capacity is asked for and awarded in whole servers (absent: 8).</summary>
    public IReadOnlyDictionary<string, int> ServerGpus { get; init; } = new Dictionary<string, int>();
    /// <summary>Longest award in months. Default 12.</summary>
    public int MaxMonths { get; init; } = 12;
    /// <summary>Most GPU-hours of one shared-queue (GPU-hour) award; null: only the class budget limits it.</summary>
    public double? MaxGpuHoursPerProject { get; init; }
    /// <summary>Organisation types that may apply (<c>university</c>, <c>institute</c>, <c>companylab</c>, <c>startup</c>, <c>flagship</c>); empty: all.</summary>
    public IReadOnlyList<string> EligibleTypes { get; init; } = [];
    /// <summary>The published criteria; each reviewer scores each from 0 to 100.</summary>
    public IReadOnlyList<Criterion> Criteria { get; init; } = [];
    /// <summary>Reviewers per proposal. Default 3.</summary>
    public int ReviewersPerProposal { get; init; } = 3;
    /// <summary>Points added to the weighted mean of a regional applicant (outside the capital region).</summary>
    public double RegionalBonus { get; init; }
    /// <summary>Most capacity one organisation may be awarded in the call, in GPUs (null: no cap).</summary>
    public int? MaxGpusPerOrganisation { get; init; }
    /// <summary>Whether the committee may award less than asked (whole servers) when the budget or a cap runs short. Default true.</summary>
    public bool AllowPartial { get; init; } = true;
    /// <summary>Smallest partial award, as a fraction of what was asked. Default 0.5.</summary>
    public double MinPartialFraction { get; init; } = 0.5;
    /// <summary>Proposals not funded with at least this score are waitlisted; the rest are rejected. Default 60.</summary>
    public double WaitlistMinScore { get; init; } = 60;
    /// <summary>Share of the market price each organisation type pays (0: free; absent: free).</summary>
    public IReadOnlyDictionary<string, double> Copay { get; init; } = new Dictionary<string, double>();
    /// <summary>Further discount on the co-pay of youth-founded firms (0.5: half). Default 0.5.</summary>
    public double YouthDiscount { get; init; } = 0.5;

    /// <summary>GPUs per server of the partition under this call (<see cref="ServerGpus"/>, else 8).</summary>
    public int ServerSize(string partition) => ServerGpus.TryGetValue(partition, out var s) && s > 0 ? s : 8;

    /// <summary>Whether an organisation of that type (compared in lower case) may apply: listed in <see cref="EligibleTypes"/>, or the list is empty.</summary>
    public bool IsEligible(string orgType) => EligibleTypes.Count == 0 || EligibleTypes.Contains(orgType.ToLowerInvariant());

    /// <summary>Share of the market price an organisation pays under this call (0–1).</summary>
    public double CopayShare(string orgType, bool youth)
    {
        var share = Copay.TryGetValue(orgType.ToLowerInvariant(), out var s) ? s : 0;
        return Math.Clamp(youth ? share * (1 - YouthDiscount) : share, 0, 1);
    }

    /// <summary>The criteria of the national call (2025–26), with equal weights on the four published headings.</summary>
    public static IReadOnlyList<Criterion> NationalCriteria { get; } =
    [
        new("impact", 30, "Technical and social impact", "기술적·사회적 파급효과"),
        new("ecosystem", 20, "Contribution to the AI ecosystem", "AI 생태계 기여도"),
        new("capability", 25, "Capability and readiness", "수행 역량 및 준비도"),
        new("feasibility", 25, "Feasibility", "실현 가능성"),
    ];

    /// <summary>Checks the rules; every error names its field (under <paramref name="field"/>).</summary>
    public void Validate(string field = "rules")
    {
        if (Partitions.Count == 0)
        {
            throw new SpecException(field + ".partitions", "at least one partition is required");
        }

        if (BudgetGpuMonths.Count == 0)
        {
            throw new SpecException(field + ".budgetGpuMonths", "a budget for at least one tenant class is required");
        }

        foreach (var (cls, b) in BudgetGpuMonths)
        {
            if (!TenantClasses.All.Contains(cls))
            {
                throw new SpecException($"{field}.budgetGpuMonths.{cls}", $"unknown tenant class (known: {string.Join(", ", TenantClasses.All)})");
            }

            if (!(b >= 0) || !double.IsFinite(b))
            {
                throw new SpecException($"{field}.budgetGpuMonths.{cls}", "must be zero or more");
            }
        }

        foreach (var (p, cap) in MaxGpusPerProject)
        {
            if (!Partitions.Contains(p))
            {
                throw new SpecException($"{field}.maxGpusPerProject.{p}", "is not a partition on offer");
            }

            if (cap < 1)
            {
                throw new SpecException($"{field}.maxGpusPerProject.{p}", "must be at least 1");
            }
        }

        foreach (var (p, s) in ServerGpus)
        {
            if (s < 1)
            {
                throw new SpecException($"{field}.serverGpus.{p}", "must be at least 1");
            }
        }

        if (MaxMonths is < 1 or > 60)
        {
            throw new SpecException(field + ".maxMonths", "must be between 1 and 60");
        }

        if (MaxGpuHoursPerProject is { } mh && (!(mh > 0) || !double.IsFinite(mh)))
        {
            throw new SpecException(field + ".maxGpuHoursPerProject", "must be a positive number");
        }

        foreach (var t in EligibleTypes)
        {
            if (!Enum.TryParse<OrganisationType>(t, true, out _))
            {
                throw new SpecException(field + ".eligibleTypes", $"unknown organisation type '{t}' (known: {string.Join(", ", Enum.GetNames<OrganisationType>().Select(n => n.ToLowerInvariant()))})");
            }
        }

        if (Criteria.Count == 0)
        {
            throw new SpecException(field + ".criteria", "at least one criterion is required");
        }

        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < Criteria.Count; i++)
        {
            var c = Criteria[i];
            if (c is null || string.IsNullOrWhiteSpace(c.Key) || !keys.Add(c.Key))
            {
                throw new SpecException($"{field}.criteria[{i}].key", "is required and must be unique");
            }

            if (!(c.Weight > 0) || !double.IsFinite(c.Weight))
            {
                throw new SpecException($"{field}.criteria[{i}].weight", "must be a positive number");
            }
        }

        if (ReviewersPerProposal is < 1 or > 20)
        {
            throw new SpecException(field + ".reviewersPerProposal", "must be between 1 and 20");
        }

        if (RegionalBonus is < 0 or > 100 || !double.IsFinite(RegionalBonus))
        {
            throw new SpecException(field + ".regionalBonus", "must be between 0 and 100");
        }

        if (MaxGpusPerOrganisation is < 1)
        {
            throw new SpecException(field + ".maxGpusPerOrganisation", "must be at least 1");
        }

        if (MinPartialFraction is <= 0 or > 1 || !double.IsFinite(MinPartialFraction))
        {
            throw new SpecException(field + ".minPartialFraction", "must be more than 0 and at most 1");
        }

        foreach (var (t, s) in Copay)
        {
            if (!Enum.TryParse<OrganisationType>(t, true, out _))
            {
                throw new SpecException($"{field}.copay.{t}", "unknown organisation type");
            }

            if (s is < 0 or > 1 || !double.IsFinite(s))
            {
                throw new SpecException($"{field}.copay.{t}", "must be a share between 0 and 1");
            }
        }

        if (YouthDiscount is < 0 or > 1 || !double.IsFinite(YouthDiscount))
        {
            throw new SpecException(field + ".youthDiscount", "must be between 0 and 1");
        }
    }
}
