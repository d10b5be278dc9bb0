using GpuCommons.Core.Rounds;

namespace GpuCommons.Contracts;

/// <summary>A call for proposals (<c>/api/calls</c>).</summary>
/// <param name="Id">The call's id.</param>
/// <param name="TitleEn">Its title in English.</param>
/// <param name="TitleKo">Its title in Korean.</param>
/// <param name="TextEn">Its text in English.</param>
/// <param name="TextKo">Its text in Korean.</param>
/// <param name="Opens">When proposals may first be submitted.</param>
/// <param name="Closes">When submissions end.</param>
/// <param name="Phase"><c>open</c>, <c>review</c> or <c>decided</c>.</param>
/// <param name="Status"><c>scheduled</c>, <c>open</c>, <c>closed</c> (no more changes; awaiting panels), <c>review</c> or <c>decided</c>.</param>
/// <param name="Rules">Partitions, budgets, caps, eligibility, criteria and co-pay.</param>
/// <param name="Capacity">Deliveries laid over the fleet (empty: the fleet as it is).</param>
/// <param name="Proposals">Proposals submitted to it (not drafts, not withdrawn).</param>
/// <param name="Created">When it was made.</param>
/// <param name="Decided">When selection awarded it.</param>
public sealed record CallDto(string Id, string TitleEn, string TitleKo, string TextEn, string TextKo, DateTimeOffset Opens, DateTimeOffset Closes,
    string Phase, string Status, CallRules Rules, IReadOnlyList<CapacityStep> Capacity, int Proposals, DateTimeOffset Created, DateTimeOffset? Decided);

/// <summary>What selection decides, or would decide, for one proposal.</summary>
/// <param name="Proposal">The proposal's id.</param>
/// <param name="Project">Its project.</param>
/// <param name="Organisation">Its organisation.</param>
/// <param name="Class">The tenant class whose budget it draws on.</param>
/// <param name="Rank">Its rank within the class, from 1.</param>
/// <param name="Score">Its weighted score; absent without reviews.</param>
/// <param name="Outcome"><c>awarded</c>, <c>partly_awarded</c>, <c>waitlisted</c> or <c>rejected</c>.</param>
/// <param name="Gpus">GPUs awarded (capacity awards).</param>
/// <param name="Months">Months awarded.</param>
/// <param name="GpuHours">GPU-hours awarded.</param>
/// <param name="Reason">Why, in words.</param>
/// <param name="ReviewsDone">Reviews submitted.</param>
/// <param name="ReviewsAssigned">Reviews assigned.</param>
public sealed record DecisionDto(long Proposal, string Project, string Organisation, string Class, int Rank, double? Score, string Outcome, int Gpus, int Months,
    double GpuHours, string Reason, int ReviewsDone, int ReviewsAssigned);

/// <summary>One partition and month of the fleet's feasibility: dedicated capacity against what is in service.</summary>
/// <param name="Partition">The partition.</param>
/// <param name="Month">The month, <c>yyyy-MM</c>.</param>
/// <param name="Capacity">GPUs in service.</param>
/// <param name="Existing">GPUs awarded by earlier rounds.</param>
/// <param name="Added">GPUs this round awards.</param>
/// <param name="SharedQueue">GPUs left to the shared queue (negative: over).</param>
/// <param name="Over">Whether the awards exceed the capacity.</param>
public sealed record FeasibilityRowDto(string Partition, string Month, int Capacity, int Existing, int Added, int SharedQueue, bool Over);

/// <summary>The committee's view of a call (<c>GET /api/calls/{id}/committee</c>, the answer to select).</summary>
/// <param name="Call">The call's id.</param>
/// <param name="Phase">The call's phase.</param>
/// <param name="Classes">Budget and totals per tenant class.</param>
/// <param name="Decisions">The ranking and decision of every proposal.</param>
/// <param name="Feasibility">Every partition and month.</param>
/// <param name="Violations">The rows that are over.</param>
/// <param name="Feasible">Whether the fleet holds every award in every month.</param>
public sealed record CommitteeDto(string Call, string Phase, IReadOnlyList<ClassTotals> Classes, IReadOnlyList<DecisionDto> Decisions,
    IReadOnlyList<FeasibilityRowDto> Feasibility, IReadOnlyList<FeasibilityRowDto> Violations, bool Feasible);

/// <summary>A member of a call's committee (<c>/api/calls/{id}/members</c>).</summary>
/// <param name="Call">The call's id.</param>
/// <param name="User">The member.</param>
/// <param name="AddedBy">The admin who named them.</param>
/// <param name="Added">When.</param>
public sealed record CommitteeMemberDto(string Call, string User, string AddedBy, DateTimeOffset Added);

/// <summary>An award of a call (<c>/api/awards</c>): dedicated capacity or GPU-hours, and the allocation it made.</summary>
/// <param name="Id">The award's id.</param>
/// <param name="Proposal">The proposal it awards.</param>
/// <param name="Call">The call.</param>
/// <param name="Project">The project.</param>
/// <param name="Organisation">The project's organisation.</param>
/// <param name="Kind"><c>capacity</c> or <c>gpu_hours</c>.</param>
/// <param name="Partition">The partition.</param>
/// <param name="Gpus">GPUs of dedicated capacity (0 for GPU-hours).</param>
/// <param name="GpuHours">GPU-hours of its allocation.</param>
/// <param name="Start">When it starts.</param>
/// <param name="End">When it ends.</param>
/// <param name="CopayShare">The share of the market value the organisation pays, 0–1.</param>
/// <param name="State"><c>active</c> or <c>ended</c> (ended early).</param>
/// <param name="Status"><c>scheduled</c>, <c>active</c>, <c>expired</c> or <c>ended</c>.</param>
/// <param name="Allocation">The allocation it made.</param>
public sealed record AwardDto(string Id, long Proposal, string Call, string Project, string Organisation, string Kind, string Partition, int Gpus, double GpuHours,
    DateTimeOffset Start, DateTimeOffset End, double CopayShare, string State, string Status, string Allocation);

/// <summary>A proposal against a call (<c>/api/proposals</c>) and, once decided, its outcome.</summary>
/// <param name="Id">The proposal's id.</param>
/// <param name="Call">The call.</param>
/// <param name="Project">The project (its PI proposes).</param>
/// <param name="Organisation">The project's organisation.</param>
/// <param name="OrgType">The organisation's type.</param>
/// <param name="Title">Its title.</param>
/// <param name="Team">Its team.</param>
/// <param name="Partition">The partition asked for.</param>
/// <param name="Gpus">GPUs asked for (capacity award); 0 for GPU-hours.</param>
/// <param name="GpuHours">GPU-hours asked for (shared-queue award).</param>
/// <param name="StartMonth">First month, <c>yyyy-MM</c>.</param>
/// <param name="Months">Months asked for.</param>
/// <param name="Justification">Why.</param>
/// <param name="Regional">A regional organisation (the call's bonus applies).</param>
/// <param name="Youth">A youth-founded firm (a further co-pay discount).</param>
/// <param name="State"><c>draft</c>, <c>submitted</c>, <c>under_review</c>, <c>awarded</c>, <c>partly_awarded</c>, <c>waitlisted</c>, <c>rejected</c> or <c>withdrawn</c>.</param>
/// <param name="CreatedBy">Who drafted it.</param>
/// <param name="Created">When.</param>
/// <param name="Submitted">When it was submitted.</param>
/// <param name="Score">Once decided: its weighted score.</param>
/// <param name="Rank">Once decided: its rank in its class.</param>
/// <param name="AwardedGpus">GPUs awarded.</param>
/// <param name="AwardedMonths">Months awarded.</param>
/// <param name="AwardedGpuHours">GPU-hours awarded.</param>
/// <param name="Reason">Why it was decided so, in words.</param>
/// <param name="Decided">When it was decided.</param>
public sealed record ProposalDto(long Id, string Call, string Project, string Organisation, string OrgType, string Title, string Team, string Partition, int Gpus,
    double GpuHours, string StartMonth, int Months, string Justification, bool Regional, bool Youth, string State, string CreatedBy, DateTimeOffset Created,
    DateTimeOffset? Submitted, double? Score, int? Rank, int AwardedGpus, int AwardedMonths, double AwardedGpuHours, string? Reason, DateTimeOffset? Decided);

/// <summary>A review as its reader may see it (<c>/api/reviews/{proposal}</c>): the reviewer's name only for the committee and the reviewer themselves.</summary>
/// <param name="Proposal">The proposal reviewed.</param>
/// <param name="Reviewer">The reviewer; absent for others.</param>
/// <param name="Label">How the review is named to its reader (the reviewer, or <c>Reviewer N</c>).</param>
/// <param name="Scores">Criterion key → score 0–100.</param>
/// <param name="Weighted">The scores weighted by the call's criteria.</param>
/// <param name="Comment">The reviewer's comment.</param>
/// <param name="Submitted">When it was submitted; absent while not.</param>
public sealed record ReviewDto(long Proposal, string? Reviewer, string Label, Dictionary<string, double>? Scores, double? Weighted, string? Comment, DateTimeOffset? Submitted);

/// <summary>A proposal a reviewer is assigned to (<c>GET /api/reviews</c>).</summary>
/// <param name="Proposal">The proposal's id.</param>
/// <param name="Call">The call.</param>
/// <param name="Project">The project.</param>
/// <param name="Title">Its title.</param>
/// <param name="Organisation">The project's organisation.</param>
/// <param name="Partition">The partition asked for.</param>
/// <param name="Gpus">GPUs asked for.</param>
/// <param name="GpuHours">GPU-hours asked for.</param>
/// <param name="Months">Months asked for.</param>
/// <param name="State">The proposal's state.</param>
/// <param name="Submitted">Whether this reviewer submitted their review.</param>
public sealed record AssignmentDto(long Proposal, string Call, string Project, string Title, string Organisation, string Partition, int Gpus, double GpuHours, int Months,
    string State, bool Submitted);

/// <summary>A statement line: <c>marketAmount</c> is the market value of the use, <c>due</c> what the organisation pays (the ledger's payable), <c>subsidy</c> the rest.</summary>
/// <param name="Project">The project.</param>
/// <param name="Partition">The partition.</param>
/// <param name="GpuHours">GPU-hours used.</param>
/// <param name="MarketAmount">Their market value.</param>
/// <param name="Share">The co-pay share, 0–1.</param>
/// <param name="Due">What the organisation pays.</param>
/// <param name="Subsidy">What the center pays.</param>
public sealed record StatementLineDto(string Project, string Partition, double GpuHours, decimal MarketAmount, double Share, decimal Due, decimal Subsidy);

/// <summary>A monthly statement of a project, or of an organisation (<c>project</c> absent) with a line per project.</summary>
/// <param name="Project">The project; absent for an organisation's statement.</param>
/// <param name="Organisation">The organisation.</param>
/// <param name="Month">The month, <c>yyyy-MM</c>.</param>
/// <param name="Lines">A line per project, partition and co-pay share.</param>
/// <param name="GpuHours">GPU-hours in all.</param>
/// <param name="MarketAmount">Market value in all.</param>
/// <param name="Due">What the organisation pays in all.</param>
/// <param name="Subsidy">The subsidy in all.</param>
public sealed record StatementDto(string? Project, string Organisation, string Month, IReadOnlyList<StatementLineDto> Lines, double GpuHours, decimal MarketAmount, decimal Due, decimal Subsidy);

/// <summary>The committee's selection (<c>POST /api/calls/{id}/select</c>).</summary>
public sealed class SelectBody
{
    /// <summary>Award even where the fleet cannot hold the dedicated capacity in some month (the committee's explicit override).</summary>
    public bool? Override { get; set; }

    /// <summary>The committee's note (audit).</summary>
    public string? Note { get; set; }
}

/// <summary>A cut or end of an award (<c>POST /api/awards/{id}/cut</c>, <c>…/end</c>).</summary>
public sealed class AwardChangeBody
{
    /// <summary>For a cut: the GPUs the award keeps (whole servers, fewer than now).</summary>
    public int? Gpus { get; set; }

    /// <summary>Why (audit).</summary>
    public string? Note { get; set; }
}

/// <summary>A proposal as its PI drafts or changes it (<c>POST /api/proposals</c>, <c>PUT /api/proposals/{id}</c>).</summary>
public sealed class ProposalBody
{
    /// <summary>The call.</summary>
    public string? Call { get; set; }

    /// <summary>The project (the caller is its PI).</summary>
    public string? Project { get; set; }

    /// <summary>Title.</summary>
    public string? Title { get; set; }

    /// <summary>Team.</summary>
    public string? Team { get; set; }

    /// <summary>A partition on offer.</summary>
    public string? Partition { get; set; }

    /// <summary>GPUs in whole servers, for a capacity award (or give gpuHours).</summary>
    public int? Gpus { get; set; }

    /// <summary>GPU-hours, for a shared-queue award (or give gpus).</summary>
    public double? GpuHours { get; set; }

    /// <summary>First month, yyyy-MM.</summary>
    public string? StartMonth { get; set; }

    /// <summary>Months.</summary>
    public int? Months { get; set; }

    /// <summary>Justification.</summary>
    public string? Justification { get; set; }

    /// <summary>A regional organisation (the call's bonus applies).</summary>
    public bool? Regional { get; set; }

    /// <summary>A youth-founded firm (a further co-pay discount).</summary>
    public bool? Youth { get; set; }
}

/// <summary>A reviewer's scores and comment (<c>PUT /api/reviews/{proposal}</c>).</summary>
public sealed class ReviewSubmitBody
{
    /// <summary>Criterion key → score from 0 to 100, for every criterion of the call.</summary>
    public Dictionary<string, double>? Scores { get; set; }

    /// <summary>Comment (the applicant sees it without the reviewer's name).</summary>
    public string? Comment { get; set; }
}

/// <summary>A reviewer's organisation and conflicts of interest (<c>PUT /api/reviews/profiles/{user}</c>: the request and its answer).</summary>
public sealed class ReviewerProfileBody
{
    /// <summary>The reviewer's organisation (never reviews its proposals).</summary>
    public string? Organisation { get; set; }

    /// <summary>Organisations the reviewer declares a conflict of interest with.</summary>
    public List<string>? Conflicts { get; set; }
}
