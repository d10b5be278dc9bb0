namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Kueue-style quota over the tree root → organisation → project, per partition.
/// A child may use up to nominal + borrowing limit; what children use above their nominal must be covered by
/// what their siblings lend (unused nominal, up to each lending limit) plus the parent's unassigned capacity.
/// </summary>
internal sealed class QuotaTracker
{
    private readonly List<QuotaNode> _orgs = [];
    private readonly List<QuotaNode> _projects = [];
    private readonly List<int> _projectOrg = [];
    private readonly QuotaNode _root;
    private readonly long[] _capacity;

    /// <summary>Per partition, how many projects and organisations use more than their nominal quota.</summary>
    private readonly int[] _borrowers;
    private readonly List<QuotaNode> _over = [];

    public QuotaTracker(long[] capacityMilli)
    {
        _capacity = capacityMilli;
        _borrowers = new int[capacityMilli.Length];
        _minLendTerm = new long[capacityMilli.Length];
        _minUnusedTerm = new long[capacityMilli.Length];
        ResetRootBounds();
        _root = new QuotaNode(capacityMilli.Length, [], _ => 0);
    }

    public int AddOrganisation(QuotaNode node)
    {
        _orgs.Add(node);
        for (var p = 0; p < _capacity.Length; p++)
        {
            _root.ChildNominal[p] += node.Nominal[p];
            _root.ChildLend[p] += node.Lendable(p);
            _root.ChildUnused[p] += node.Unused(p);
        }

        return _orgs.Count - 1;
    }

    public int AddProject(QuotaNode node, int org)
    {
        _projects.Add(node);
        _projectOrg.Add(org);
        var o = _orgs[org];
        for (var p = 0; p < _capacity.Length; p++)
        {
            o.ChildNominal[p] += node.Nominal[p];
            o.ChildLend[p] += node.Lendable(p);
            o.ChildUnused[p] += node.Unused(p);
        }

        return _projects.Count - 1;
    }

    /// <summary>Replaces an organisation's limits; its usage and its projects' sums stay.</summary>
    public void SetOrganisationLimits(int org, QuotaNode limits) => SetLimits(_orgs[org], _root, limits);

    /// <summary>Replaces a project's limits; its usage stays.</summary>
    public void SetProjectLimits(int project, QuotaNode limits) => SetLimits(_projects[project], _orgs[_projectOrg[project]], limits);

    /// <summary>
    /// Clears the over-the-limits allowance of tenants whose usage is back within their limits. Called between
    /// decisions, not from <see cref="Apply"/>: a preemption search lowers and restores usage while it looks.
    /// </summary>
    public void SettleOver()
    {
        if (_over.Count == 0)
        {
            return;
        }

        _over.RemoveAll(node =>
        {
            var any = false;
            for (var p = 0; p < _capacity.Length; p++)
            {
                node.Over[p] &= node.Usage[p] > node.Nominal[p] + node.Borrow[p];
                any |= node.Over[p];
            }

            return !any;
        });
    }

    private void SetLimits(QuotaNode node, QuotaNode parent, QuotaNode limits)
    {
        for (var p = 0; p < _capacity.Length; p++)
        {
            parent.ChildNominal[p] -= node.Nominal[p];
            parent.ChildLend[p] -= node.Lendable(p);
            parent.ChildUnused[p] -= node.Unused(p);
            parent.ChildExcess[p] -= node.Excess(p);
            _borrowers[p] -= node.Borrowing(p) ? 1 : 0;
            node.Nominal[p] = limits.Nominal[p];
            node.Borrow[p] = limits.Borrow[p];
            node.Lend[p] = limits.Lend[p];
            node.Over[p] = node.Usage[p] > node.Nominal[p] + node.Borrow[p];
            if (node.Over[p] && !_over.Contains(node))
            {
                _over.Add(node);
            }

            _borrowers[p] += node.Borrowing(p) ? 1 : 0;
            parent.ChildNominal[p] += node.Nominal[p];
            parent.ChildLend[p] += node.Lendable(p);
            parent.ChildUnused[p] += node.Unused(p);
            parent.ChildExcess[p] += node.Excess(p);
        }
    }

    public QuotaNode Project(int i) => _projects[i];

    public QuotaNode Organisation(int i) => _orgs[i];

    public int OrgOf(int project) => _projectOrg[project];

    /// <summary>Returns why <paramref name="milli"/> more for the project on partition <paramref name="p"/> is refused, or null.</summary>
    public PendingReason? Check(int project, int p, long milli)
    {
        var proj = _projects[project];
        var org = _orgs[_projectOrg[project]];
        var newProj = proj.Usage[p] + milli;
        if (newProj > proj.Nominal[p] + proj.Borrow[p])
        {
            return PendingReason.ProjectQuota;
        }

        var newOrg = org.Usage[p] + milli;
        if (newOrg > org.Nominal[p] + org.Borrow[p])
        {
            return PendingReason.OrganisationQuota;
        }

        if (org.Borrow[p] < QuotaNode.Unlimited)
        {
            var excess = org.ChildExcess[p] - proj.Excess(p) + proj.ExcessAt(p, newProj);
            var lend = org.ChildLend[p] - proj.Lendable(p) + proj.LendableAt(p, newProj);
            var free = Math.Max(0, org.Nominal[p] + org.Borrow[p] - org.ChildNominal[p]);
            if (excess > lend + free)
            {
                return PendingReason.CohortQuota;
            }
        }

        // The root's test, rearranged so that what depends on this organisation and request (the terms) stands apart
        // from what every start changes (the root's gaps, see RootAnswersHold):
        //   excess + org's added excess <= lendable + org's change of lendable + free
        //   ⇔ root excess − root lendable <= org's change of lendable − org's added excess + free.
        var addedExcess = org.ExcessAt(p, newOrg) - org.Excess(p);
        var rootFree = Math.Max(0, _capacity[p] - _root.ChildNominal[p]);
        var lendTerm = org.LendableAt(p, newOrg) - org.Lendable(p) - addedExcess + rootFree;
        if (_root.ChildExcess[p] - _root.ChildLend[p] <= lendTerm)
        {
            _minLendTerm[p] = Math.Min(_minLendTerm[p], lendTerm);
            return null;
        }

        // Would it fail even if every organisation lent all its unused quota? Then the partition is simply full:
        // that is a matter for placement (and a reservation), not a quota refusal.
        var unusedTerm = org.UnusedAt(p, newOrg) - org.Unused(p) - addedExcess + rootFree;
        if (_root.ChildExcess[p] - _root.ChildUnused[p] > unusedTerm)
        {
            return null;
        }

        _minUnusedTerm[p] = Math.Min(_minUnusedTerm[p], unusedTerm);
        return PendingReason.CohortQuota;
    }

    // The least terms of the root's test among the checks since ResetRootBounds: of those it admitted by lending, and of
    // those it refused.
    private readonly long[] _minLendTerm;
    private readonly long[] _minUnusedTerm;

    /// <summary>Forgets the checks made so far (see <see cref="RootAnswersHold"/>).</summary>
    public void ResetRootBounds()
    {
        Array.Fill(_minLendTerm, long.MaxValue);
        Array.Fill(_minUnusedTerm, long.MaxValue);
    }

    /// <summary>
    /// Whether every check of partition <paramref name="p"/> since <see cref="ResetRootBounds"/> that reached the root
    /// would get the same answer there now, provided only starts happened since (then the root's gaps, excess minus
    /// lendable and excess minus unused, only grew). A check admitted by lending stays so while the first gap is at most
    /// its term; one refused stays refused while the second gap is at most its term; one admitted because the partition
    /// is simply full stays so, as both gaps only grow. So a start changes the answer of no project outside its
    /// organisation (whose own levels did not change) while this holds.
    /// </summary>
    public bool RootAnswersHold(int p) =>
        _root.ChildExcess[p] - _root.ChildLend[p] <= _minLendTerm[p] && _root.ChildExcess[p] - _root.ChildUnused[p] <= _minUnusedTerm[p];

    /// <summary>True when the request stays inside the project's and the organisation's nominal quota.</summary>
    public bool WithinGuarantee(int project, int p, long milli)
    {
        var proj = _projects[project];
        var org = _orgs[_projectOrg[project]];
        return proj.Usage[p] + milli <= proj.Nominal[p] && org.Usage[p] + milli <= org.Nominal[p];
    }

    /// <summary>True when the project or its organisation uses more than its nominal quota.</summary>
    public bool Borrowing(int project, int p) => _projects[project].Borrowing(p) || _orgs[_projectOrg[project]].Borrowing(p);

    /// <summary>True when some project or organisation uses more than its nominal quota on the partition.</summary>
    public bool AnyBorrowing(int p) => _borrowers[p] > 0;

    /// <summary>The same as <see cref="AnyBorrowing"/>, counted from scratch (for invariant checks).</summary>
    public bool CountBorrowing(int p) => _projects.Any(x => x.Borrowing(p)) || _orgs.Any(x => x.Borrowing(p));

    public void Apply(int project, int p, long delta)
    {
        var proj = _projects[project];
        var org = _orgs[_projectOrg[project]];
        org.ChildExcess[p] -= proj.Excess(p);
        org.ChildLend[p] -= proj.Lendable(p);
        org.ChildUnused[p] -= proj.Unused(p);
        _root.ChildExcess[p] -= org.Excess(p);
        _root.ChildLend[p] -= org.Lendable(p);
        _root.ChildUnused[p] -= org.Unused(p);
        _borrowers[p] -= (proj.Borrowing(p) ? 1 : 0) + (org.Borrowing(p) ? 1 : 0);
        proj.Usage[p] += delta;
        org.Usage[p] += delta;
        _root.Usage[p] += delta;
        _borrowers[p] += (proj.Borrowing(p) ? 1 : 0) + (org.Borrowing(p) ? 1 : 0);
        org.ChildExcess[p] += proj.Excess(p);
        org.ChildLend[p] += proj.Lendable(p);
        org.ChildUnused[p] += proj.Unused(p);
        _root.ChildExcess[p] += org.Excess(p);
        _root.ChildLend[p] += org.Lendable(p);
        _root.ChildUnused[p] += org.Unused(p);
    }

    /// <summary>Every usage and cached sum, as text (for tests that check that a what-if leaves no trace).</summary>
    public string Fingerprint()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var node in _projects.Concat(_orgs).Append(_root))
        {
            sb.AppendJoin(',', node.Usage).Append('|').AppendJoin(',', node.ChildExcess).Append('|').AppendJoin(',', node.ChildLend)
                .Append('|').AppendJoin(',', node.ChildUnused).Append('|').AppendJoin(',', node.Over).Append(';');
        }

        return sb.AppendJoin(',', _borrowers).Append('|').Append(_over.Count).ToString();
    }

    /// <summary>Checks that the cached sums match the usage (for invariant tests).</summary>
    public string? Verify()
    {
        for (var p = 0; p < _capacity.Length; p++)
        {
            long rootExcess = 0, rootLend = 0, rootUsage = 0;
            for (var o = 0; o < _orgs.Count; o++)
            {
                long excess = 0, lend = 0, usage = 0;
                for (var j = 0; j < _projects.Count; j++)
                {
                    if (_projectOrg[j] != o)
                    {
                        continue;
                    }

                    excess += _projects[j].Excess(p);
                    lend += _projects[j].Lendable(p);
                    usage += _projects[j].Usage[p];
                    if (_projects[j].Usage[p] > _projects[j].Nominal[p] + _projects[j].Borrow[p] && !_projects[j].Over[p])
                    {
                        return $"project {j} over quota on partition {p}";
                    }
                }

                var org = _orgs[o];
                if (usage != org.Usage[p] || excess != org.ChildExcess[p] || lend != org.ChildLend[p])
                {
                    return $"organisation {o} sums out of date on partition {p}";
                }

                if (org.Usage[p] > org.Nominal[p] + org.Borrow[p] && !org.Over[p])
                {
                    return $"organisation {o} over quota on partition {p}";
                }

                rootExcess += org.Excess(p);
                rootLend += org.Lendable(p);
                rootUsage += org.Usage[p];
            }

            if (rootExcess != _root.ChildExcess[p] || rootLend != _root.ChildLend[p] || rootUsage != _root.Usage[p])
            {
                return $"root sums out of date on partition {p}";
            }
        }

        return null;
    }
}
