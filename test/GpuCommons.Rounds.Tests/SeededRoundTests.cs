using GpuCommons.Core.Rounds;

namespace GpuCommons.Rounds.Tests;

/// <summary>The seeded round has the published shape, and a whole round over it (assign, review, select) behaves as the call says.</summary>
public sealed class SeededRoundTests
{
    private static readonly SeededRound Round = SeededRound.Generate();

    [Fact]
    public void SeededRound_HasThePublishedShape()
    {
        Round.Proposals.Count.ShouldBe(514);
        Round.Reviewers.Count.ShouldBe(60);
        var asked = Round.Proposals.Sum(p => p.Gpus);
        asked.ShouldBeInRange(12_500, 15_000);
        var academia = Round.Proposals.Where(p => TenantClasses.Of(p.OrgType) == TenantClasses.Academia).Sum(p => p.Gpus);
        academia.ShouldBeInRange(7_500, 9_800);
        Round.Proposals.ShouldAllBe(p => p.Gpus % 8 == 0 && p.Gpus > 0);
        Round.Proposals.Where(p => p.Partition == SeededRound.B200).ShouldAllBe(p => p.Gpus <= 128);
        Round.Proposals.ShouldAllBe(p => p.Gpus <= 256 && p.Months <= 12);
        (Round.Rules.BudgetGpuMonths.Values.Sum() / 6).ShouldBe(4224);
    }

    [Fact]
    public void WholeRound_FundsAboutAThirdWithinEveryClassBudget()
    {
        var assignment = ReviewerAssignment.Assign(Round.ToAssign(), Round.Reviewers, Round.Rules.ReviewersPerProposal);
        assignment.Short.ShouldBeEmpty();
        var result = Selection.Select(Round.Rules, Round.Candidates(Round.Reviews(assignment)));
        var funded = result.Decisions.Count(d => d.Outcome is Outcome.Awarded or Outcome.PartlyAwarded);
        var gpus = result.Decisions.Sum(d => d.Gpus);
        // The first call funded 159 of 514 (31%) with 4,224 GPUs.
        funded.ShouldBeInRange(100, 260);
        gpus.ShouldBeInRange(3_000, 6_000);
        foreach (var c in result.Classes)
        {
            c.AwardedGpuMonths.ShouldBeLessThanOrEqualTo(c.BudgetGpuMonths + 1e-6);
        }

        result.Decisions.Where(d => d.Outcome == Outcome.Waitlisted).ShouldAllBe(d => d.Score >= Round.Rules.WaitlistMinScore);
        result.Decisions.Where(d => d.Outcome == Outcome.Rejected && d.Score is not null).ShouldAllBe(d => d.Score < Round.Rules.WaitlistMinScore);
        foreach (var org in result.Decisions.Join(Round.Proposals, d => d.Id, p => p.Id, (d, p) => (p.Organisation, d.Gpus)).GroupBy(x => x.Organisation))
        {
            org.Sum(x => x.Gpus).ShouldBeLessThanOrEqualTo(Round.Rules.MaxGpusPerOrganisation!.Value);
        }
    }
}
