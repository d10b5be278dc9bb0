namespace GpuCommons.Server.Rounds;

/// <summary>The events of allocation rounds that the webhook delivers, besides allocation alerts: every state change of a call, proposal, review or award.</summary>
public static class RoundEvents
{
    public static readonly string[] Kinds =
    [
        "call.created", "call.review", "call.decided", "committee.added", "committee.removed",
        "proposal.drafted", "proposal.changed", "proposal.submitted", "proposal.withdrawn", "proposal.under_review",
        "proposal.awarded", "proposal.partly_awarded", "proposal.waitlisted", "proposal.rejected",
        "review.submitted",
        "award.created", "award.cut", "award.ended", "award.quota",
    ];
}
