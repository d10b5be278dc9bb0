using CsCheck;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Internal;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Internal;

/// <summary>
/// <see cref="QuotaTracker.RootAnswersHold"/>: while it says so, a start changes the answer of no check made since
/// <see cref="QuotaTracker.ResetRootBounds"/> for a project outside the start's organisation.
/// </summary>
public sealed class QuotaRootBoundsTests
{
    private static readonly Gen<QuotaSpec> Quota =
        Gen.Select(Gen.Int[0, 12], Gen.Int[0, 3], Gen.Int[-1, 8], Gen.Int[-1, 8])
            .Select((nominal, shape, borrow, lend) => new QuotaSpec(
                "p0",
                nominal,
                shape == 0 || borrow < 0 ? null : borrow,
                shape == 1 || lend < 0 ? null : Math.Min(lend, nominal)));

    [Fact]
    public void WhileTheRootsAnswersHold_NoOtherOrganisationsAnswerChanges()
    {
        var gen = Gen.Select(Quota.Array[2, 4], Gen.Int[2, 8], Quota.Array[8], Gen.Int[0, 40], Gen.Select(Gen.Int[0, 7], Gen.Int[1, 6]).Array[1, 12])
            .Select((orgs, projects, projectQuotas, capacity, starts) => (orgs, projects, projectQuotas, capacity, starts));
        var held = 0;
        var broken = 0;
        gen.Sample(w =>
        {
            var tracker = new QuotaTracker([w.capacity * 1000L]);
            foreach (var o in w.orgs)
            {
                tracker.AddOrganisation(new QuotaNode(1, [o], _ => 0));
            }

            for (var j = 0; j < w.projects; j++)
            {
                tracker.AddProject(new QuotaNode(1, [w.projectQuotas[j]], _ => 0), j % w.orgs.Length);
            }

            // Some usage before the checks, then checks of every project and request, then starts.
            for (var j = 0; j < w.projects; j += 2)
            {
                tracker.Apply(j, 0, 1000L * (j % 3));
            }

            tracker.ResetRootBounds();
            var answers = new Dictionary<(int Project, long Milli), PendingReason?>();
            for (var j = 0; j < w.projects; j++)
            {
                for (var gpus = 1; gpus <= 6; gpus++)
                {
                    answers[(j, gpus * 1000L)] = tracker.Check(j, 0, gpus * 1000L);
                }
            }

            var touched = new HashSet<int>();
            foreach (var (project, gpus) in w.starts)
            {
                var j = project % w.projects;
                if (tracker.Check(j, 0, gpus * 1000L) is not null)
                {
                    continue;
                }

                tracker.Apply(j, 0, gpus * 1000L);
                touched.Add(tracker.OrgOf(j));
                var holds = tracker.RootAnswersHold(0);
                foreach (var ((k, milli), answer) in answers)
                {
                    if (touched.Contains(tracker.OrgOf(k)))
                    {
                        continue;
                    }

                    var now = tracker.Check(k, 0, milli);
                    if (holds)
                    {
                        held++;
                        now.ShouldBe(answer, $"project {k} asking {milli} after a start of project {j}");
                    }
                    else
                    {
                        broken += now != answer ? 1 : 0;
                    }
                }
            }
        }, iter: 2000);

        // Both sides are reached: answers that held, and starts that changed another organisation's answer.
        held.ShouldBeGreaterThan(1000);
        broken.ShouldBeGreaterThan(10);
    }
}
