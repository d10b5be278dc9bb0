using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Data;

// Rows of allocation rounds: calls, proposals, reviews, reviewer profiles and capacity awards (docs/rounds.md).

/// <summary>A call for proposals. Its rules (budgets, caps, criteria, preferences, co-pay) are a JSON <c>CallRules</c>.</summary>
public sealed class CallRow
{
    public required string Id { get; set; }
    public required string TitleEn { get; set; }
    public required string TitleKo { get; set; }
    public string TextEn { get; set; } = "";
    public string TextKo { get; set; } = "";
    public DateTimeOffset Opens { get; set; }
    public DateTimeOffset Closes { get; set; }
    /// <summary>JSON of <c>GpuCommons.Core.Rounds.CallRules</c>.</summary>
    public required string Rules { get; set; }
    /// <summary>JSON array of capacity steps laid over the fleet (deliveries still to come); null: the fleet as it is.</summary>
    public string? Capacity { get; set; }
    /// <summary>open (taking proposals until it closes), review (panels assigned) or decided (selection done).</summary>
    public required string Phase { get; set; }
    public required string CreatedBy { get; set; }
    public DateTimeOffset Created { get; set; }
    public DateTimeOffset? Decided { get; set; }
}

/// <summary>A proposal against a call, from a project's PI.</summary>
public sealed class ProposalRow
{
    public long Id { get; set; }
    public required string CallId { get; set; }
    public required string Project { get; set; }
    public required string Organisation { get; set; }
    public required string OrgType { get; set; }
    public required string Title { get; set; }
    public string Team { get; set; } = "";
    public required string Partition { get; set; }
    /// <summary>GPUs asked for (whole servers); 0 for a GPU-hour (shared queue) proposal.</summary>
    public int Gpus { get; set; }
    /// <summary>First month (year × 12 + month − 1).</summary>
    public int StartMonth { get; set; }
    public int Months { get; set; }
    /// <summary>GPU-hours asked for a shared-queue award (0 for capacity).</summary>
    public double GpuHours { get; set; }
    public string Justification { get; set; } = "";
    /// <summary>The applicant declares a regional organisation (outside the capital region): the call's bonus applies.</summary>
    public bool Regional { get; set; }
    /// <summary>A youth-founded firm: a further discount on the co-pay.</summary>
    public bool Youth { get; set; }
    /// <summary>draft, submitted, under_review, awarded, partly_awarded, waitlisted, rejected or withdrawn.</summary>
    public required string State { get; set; }
    public required string CreatedBy { get; set; }
    public DateTimeOffset Created { get; set; }
    public DateTimeOffset? Submitted { get; set; }
    public double? Score { get; set; }
    public int? Rank { get; set; }
    public int AwardedGpus { get; set; }
    public int AwardedMonths { get; set; }
    public double AwardedGpuHours { get; set; }
    public string? Reason { get; set; }
    public DateTimeOffset? Decided { get; set; }
}

/// <summary>A reviewer's assignment to a proposal and, once submitted, their scores and comment.</summary>
public sealed class ReviewRow
{
    public long ProposalId { get; set; }
    public required string Reviewer { get; set; }
    public required string CallId { get; set; }
    /// <summary>JSON object criterion → score (0–100); null until submitted.</summary>
    public string? Scores { get; set; }
    public string? Comment { get; set; }
    public DateTimeOffset Assigned { get; set; }
    public DateTimeOffset? Submitted { get; set; }
}

/// <summary>A reviewer's home organisation and declared conflicts (JSON array of organisation names).</summary>
public sealed class ReviewerProfileRow
{
    public required string User { get; set; }
    public string Organisation { get; set; } = "";
    public string? Conflicts { get; set; }
}

/// <summary>
/// An award of a call: capacity (GPUs on a partition from start to end, honoured as a guaranteed quota) or GPU-hours
/// (an allocation, as a plain request). Cut or ended early by a stage review.
/// </summary>
public sealed class AwardRow
{
    public required string Id { get; set; }
    public long ProposalId { get; set; }
    public required string CallId { get; set; }
    public required string Project { get; set; }
    public required string Organisation { get; set; }
    public required string OrgType { get; set; }
    public required string Partition { get; set; }
    /// <summary>capacity or gpu_hours.</summary>
    public required string Kind { get; set; }
    public int Gpus { get; set; }
    public double GpuHours { get; set; }
    public DateTimeOffset Start { get; set; }
    public DateTimeOffset End { get; set; }
    /// <summary>Share of the market price the organisation pays (0–1).</summary>
    public double CopayShare { get; set; }
    /// <summary>active (until its end) or ended (ended early).</summary>
    public required string State { get; set; }
    public required string AllocationId { get; set; }
    public DateTimeOffset Created { get; set; }
}

/// <summary>
/// A member of a call's selection committee: with the admins, the only ones who see the committee's table, select, and
/// cut or end the call's awards; they see every proposal of the call and its reviews with the reviewers' names.
/// </summary>
public sealed class CommitteeMemberRow
{
    public required string CallId { get; set; }
    public required string User { get; set; }
    public required string AddedBy { get; set; }
    public DateTimeOffset Added { get; set; }
}

internal static class RoundModel
{
    public static void Configure(ModelBuilder b)
    {
        b.Entity<CallRow>(e =>
        {
            e.ToTable("calls");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasMaxLength(64);
        });
        b.Entity<ProposalRow>(e =>
        {
            e.ToTable("proposals");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.CallId, x.State });
            e.HasIndex(x => x.Project);
        });
        b.Entity<ReviewRow>(e =>
        {
            e.ToTable("reviews");
            e.HasKey(x => new { x.ProposalId, x.Reviewer });
            e.HasIndex(x => new { x.Reviewer, x.CallId });
            e.HasIndex(x => x.CallId);
        });
        b.Entity<ReviewerProfileRow>(e =>
        {
            e.ToTable("reviewer_profiles");
            e.HasKey(x => x.User);
        });
        b.Entity<AwardRow>(e =>
        {
            e.ToTable("awards");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Project);
            e.HasIndex(x => x.CallId);
            e.HasIndex(x => x.ProposalId).IsUnique();
        });
        b.Entity<CommitteeMemberRow>(e =>
        {
            e.ToTable("committee_members");
            e.HasKey(x => new { x.CallId, x.User });
            e.HasIndex(x => x.User);
        });
    }
}
