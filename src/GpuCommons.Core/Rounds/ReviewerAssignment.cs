namespace GpuCommons.Core.Rounds;

/// <summary>A reviewer on a call's panel: their organisation and the conflicts they declared.</summary>
public sealed record PanelReviewer(string Name, string Organisation, IReadOnlyCollection<string> ConflictOrganisations, IReadOnlyCollection<long> ConflictProposals)
{
    /// <summary>A reviewer who declared no conflicts beyond their own organisation.</summary>
    public PanelReviewer(string name, string organisation)
        : this(name, organisation, [], [])
    {
    }

    /// <summary>A reviewer never reviews a proposal of their own organisation, of an organisation they declared, or one they declared.</summary>
    public bool ConflictsWith(long proposal, string organisation) =>
        string.Equals(Organisation, organisation, StringComparison.Ordinal)
        || ConflictOrganisations.Contains(organisation)
        || ConflictProposals.Contains(proposal);
}

/// <summary>What the panel is assigned to review: a proposal and its applicant's organisation.</summary>
public readonly record struct ProposalToAssign(long Id, string Organisation);

/// <summary>Reviewers per proposal, and the proposals that could not get as many reviewers as asked (too many conflicts).</summary>
public sealed record Assignment(IReadOnlyDictionary<long, IReadOnlyList<string>> Reviewers, IReadOnlyList<long> Short)
{
    /// <summary>Proposals assigned to each reviewer in this assignment; a reviewer with none is absent.</summary>
    public IReadOnlyDictionary<string, int> Loads()
    {
        var loads = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var list in Reviewers.Values)
        {
            foreach (var r in list)
            {
                loads[r] = loads.GetValueOrDefault(r) + 1;
            }
        }

        return loads;
    }
}

/// <summary>
/// Assigns reviewers to proposals: <c>k</c> each, never with a conflict of interest, balanced in load. Deterministic:
/// the same proposals and panel give the same assignment. Proposals with the fewest eligible reviewers are served first
/// (so a constrained proposal is not left short by an earlier, easy one); each takes the eligible reviewers with the
/// lowest load so far, ties broken by a fixed hash of (proposal, reviewer) so that panels mix.
/// </summary>
public static class ReviewerAssignment
{
    /// <summary>
    /// Assigns <paramref name="perProposal"/> reviewers of <paramref name="panel"/> to each proposal. A reviewer's load
    /// starts from <paramref name="existingLoads"/> (reviews already given in the call), so that later assignments stay
    /// balanced. A reviewer named twice on the panel is an <see cref="ArgumentException"/>.
    /// </summary>
    public static Assignment Assign(IReadOnlyList<ProposalToAssign> proposals, IReadOnlyList<PanelReviewer> panel, int perProposal,
        IReadOnlyDictionary<string, int>? existingLoads = null)
    {
        ArgumentNullException.ThrowIfNull(proposals);
        ArgumentNullException.ThrowIfNull(panel);
        ArgumentOutOfRangeException.ThrowIfLessThan(perProposal, 1);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in panel)
        {
            if (!names.Add(r.Name))
            {
                throw new ArgumentException($"reviewer '{r.Name}' is on the panel twice", nameof(panel));
            }
        }

        var load = new int[panel.Count];
        for (var i = 0; i < panel.Count; i++)
        {
            load[i] = existingLoads?.GetValueOrDefault(panel[i].Name) ?? 0;
        }

        // Eligible reviewers of each proposal (indices into the panel).
        var eligible = new List<int>[proposals.Count];
        for (var p = 0; p < proposals.Count; p++)
        {
            var list = new List<int>(panel.Count);
            for (var r = 0; r < panel.Count; r++)
            {
                if (!panel[r].ConflictsWith(proposals[p].Id, proposals[p].Organisation))
                {
                    list.Add(r);
                }
            }

            eligible[p] = list;
        }

        var order = Enumerable.Range(0, proposals.Count).OrderBy(p => eligible[p].Count).ThenBy(p => proposals[p].Id).ToArray();
        var result = new Dictionary<long, IReadOnlyList<string>>(proposals.Count);
        var shortList = new List<long>();
        var pick = new List<int>(perProposal);
        foreach (var p in order)
        {
            var id = proposals[p].Id;
            var cands = eligible[p];
            pick.Clear();
            // Partial selection of the k least loaded (ties by hash): k passes over the candidates, cheap for k ≤ 20.
            for (var k = 0; k < perProposal && k < cands.Count; k++)
            {
                var best = -1;
                for (var j = 0; j < cands.Count; j++)
                {
                    var r = cands[j];
                    if (pick.Contains(r))
                    {
                        continue;
                    }

                    if (best < 0 || load[r] < load[best] || (load[r] == load[best] && Tie(id, panel[r].Name) < Tie(id, panel[best].Name)))
                    {
                        best = r;
                    }
                }

                pick.Add(best);
            }

            foreach (var r in pick)
            {
                load[r]++;
            }

            if (pick.Count < perProposal)
            {
                shortList.Add(id);
            }

            result[id] = pick.Select(r => panel[r].Name).Order(StringComparer.Ordinal).ToArray();
        }

        shortList.Sort();
        return new Assignment(result, shortList);
    }

    /// <summary>A fixed hash (FNV-1a) of a proposal and a reviewer: the same on every run and every machine.</summary>
    private static uint Tie(long proposal, string reviewer)
    {
        unchecked
        {
            var h = 2166136261u;
            for (var i = 0; i < 8; i++)
            {
                h = (h ^ (byte)(proposal >> (8 * i))) * 16777619u;
            }

            foreach (var c in reviewer)
            {
                h = (h ^ c) * 16777619u;
            }

            return h;
        }
    }
}
