using System.Text.Json;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Rounds;
using GpuCommons.Server.Data;
using GpuCommons.Server.Security;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Rounds;

/// <summary>One proposal on the committee's table: the row, its aggregate score, its reviews and the decision selection would take.</summary>
public sealed record CommitteeLine(ProposalRow Proposal, Decision Decision, int ReviewsDone, int ReviewsAssigned);

/// <summary>What the committee sees for a call: the ranking with decisions, the class totals and the fleet feasibility.</summary>
public sealed record CommitteeView(CallRow Call, CallRules Rules, IReadOnlyList<CommitteeLine> Lines, IReadOnlyList<ClassTotals> Classes, FeasibilityReport Feasibility);

/// <summary>Reads a call's state from the database and runs the pure round logic (scoring, selection, feasibility) over it.</summary>
public static class RoundService
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static readonly string[] Decided = ["awarded", "partly_awarded", "waitlisted", "rejected"];

    public static CallRules RulesOf(CallRow call) => JsonSerializer.Deserialize<CallRules>(call.Rules, Json) ?? new CallRules();

    public static List<CapacityStep> CapacityOf(CallRow call) =>
        call.Capacity is null ? [] : JsonSerializer.Deserialize<List<CapacityStep>>(call.Capacity, Json) ?? [];

    public static CapacityTimeline Timeline(Fleet fleet, CallRow call) =>
        CapacityTimeline.Constant(fleet.Partitions.Select(p => (p.Name, p.TotalGpus))).With(CapacityOf(call));

    public static Dictionary<string, double> ScoresOf(string? json) =>
        json is null ? [] : JsonSerializer.Deserialize<Dictionary<string, double>>(json, Json) ?? [];

    /// <summary>Whether the caller sits on the call's committee: an admin, or a member named for the call.</summary>
    public static async Task<bool> IsCommitteeAsync(GpucDb db, Caller c, string callId, CancellationToken ct = default) =>
        c.IsAdmin || await db.Set<CommitteeMemberRow>().AnyAsync(m => m.CallId == callId && m.User == c.User, ct);

    /// <summary>The calls whose committee the user sits on (as a named member).</summary>
    public static Task<List<string>> CommitteeCallsAsync(GpucDb db, string user, CancellationToken ct = default) =>
        db.Set<CommitteeMemberRow>().AsNoTracking().Where(m => m.User == user).Select(m => m.CallId).ToListAsync(ct);

    /// <summary>The call is open for drafts, submissions and withdrawals at <paramref name="now"/>.</summary>
    public static bool IsOpen(CallRow call, DateTimeOffset now) => call.Phase == "open" && now >= call.Opens && now < call.Closes;

    /// <summary>Scored, ranked and selected as the committee would now; with the fleet's feasibility of the capacity it adds.</summary>
    public static async Task<CommitteeView> CommitteeAsync(GpucDb db, Fleet fleet, CallRow call, CancellationToken ct = default)
    {
        var rules = RulesOf(call);
        var proposals = await db.Set<ProposalRow>().AsNoTracking()
            .Where(p => p.CallId == call.Id && p.State != "draft" && p.State != "withdrawn").ToListAsync(ct);
        var reviews = await db.Set<ReviewRow>().AsNoTracking().Where(r => r.CallId == call.Id)
            .Select(r => new { r.ProposalId, r.Reviewer, r.Scores, r.Submitted }).ToListAsync(ct);
        var byProposal = reviews.GroupBy(r => r.ProposalId).ToDictionary(g => g.Key, g => g.ToList());
        var candidates = new List<Candidate>(proposals.Count);
        var counts = new Dictionary<long, (int Done, int Assigned)>();
        foreach (var p in proposals)
        {
            var rs = byProposal.GetValueOrDefault(p.Id) ?? [];
            var done = rs.Where(r => r.Submitted is not null && r.Scores is not null).Select(r => new ReviewScores(r.Reviewer, ScoresOf(r.Scores))).ToList();
            counts[p.Id] = (done.Count, rs.Count);
            candidates.Add(new Candidate(p.Id, p.Organisation, p.OrgType, p.Partition, p.Gpus, p.Months, p.GpuHours, Scoring.Aggregate(rules, done, p.Regional)));
        }

        // Capacity the organisations already hold under this call's earlier decisions does not count twice: selection starts afresh.
        var result = Selection.Select(rules, candidates);
        var byId = proposals.ToDictionary(p => p.Id);
        var lines = result.Decisions.Select(d => new CommitteeLine(byId[d.Id], d, counts[d.Id].Done, counts[d.Id].Assigned)).ToList();
        var existing = await db.Set<AwardRow>().AsNoTracking().Where(a => a.CallId != call.Id && a.Kind == "capacity" && a.Gpus > 0)
            .Select(a => new { a.Partition, a.Gpus, a.Start, a.End }).ToListAsync(ct);
        var existingCap = existing.Select(a => new DedicatedCapacity(a.Partition, a.Gpus, Months.Of(a.Start), Math.Max(1, Months.Of(a.End.AddTicks(-1)) - Months.Of(a.Start) + 1))).ToList();
        var added = lines.Where(l => l.Decision.Gpus > 0)
            .Select(l => new DedicatedCapacity(l.Proposal.Partition, l.Decision.Gpus, l.Proposal.StartMonth, l.Decision.Months)).ToList();
        var feasibility = Feasibility.Check(Timeline(fleet, call), existingCap, added);
        return new CommitteeView(call, rules, lines, result.Classes, feasibility);
    }
}
