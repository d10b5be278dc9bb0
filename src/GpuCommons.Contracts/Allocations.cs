namespace GpuCommons.Contracts;

/// <summary>A request for GPU-hours (<c>/api/allocation-requests</c>) and, once reviewed, its decision.</summary>
/// <param name="Id">The request's id.</param>
/// <param name="Project">The project it is for.</param>
/// <param name="Partition">The partition the GPU-hours are for; absent: any.</param>
/// <param name="GpuHours">GPU-hours asked for.</param>
/// <param name="Justification">Why (the science case).</param>
/// <param name="RequestedBy">Who asked.</param>
/// <param name="State"><c>submitted</c>, <c>awarded</c> or <c>rejected</c>.</param>
/// <param name="Score">The reviewer's score, 0–100.</param>
/// <param name="AwardedGpuHours">GPU-hours awarded (possibly fewer than asked).</param>
/// <param name="ReviewedBy">Who reviewed it.</param>
/// <param name="Comment">The reviewer's comment to the PI.</param>
/// <param name="Allocation">The allocation an award made.</param>
/// <param name="Created">When it was asked.</param>
/// <param name="Decided">When it was reviewed.</param>
public sealed record AllocationRequestDto(long Id, string Project, string? Partition, double GpuHours, string Justification, string RequestedBy,
    string State, int? Score, double? AwardedGpuHours, string? ReviewedBy, string? Comment, string? Allocation, DateTimeOffset Created, DateTimeOffset? Decided);

/// <summary>An allocation of GPU-hours (<c>/api/allocations</c>) with what is spent, committed to running jobs and left.</summary>
/// <param name="Id">The allocation's id.</param>
/// <param name="Project">The project it is charged to.</param>
/// <param name="Partition">The partition it is for; absent: any.</param>
/// <param name="AwardedGpuHours">GPU-hours awarded in all.</param>
/// <param name="ReleasedGpuHours">GPU-hours of the tranches released so far.</param>
/// <param name="Tranches">Tranches in all.</param>
/// <param name="TranchesReleased">Tranches released so far.</param>
/// <param name="Start">When it starts.</param>
/// <param name="End">When it ends.</param>
/// <param name="State"><c>scheduled</c>, <c>active</c>, <c>exhausted</c> or <c>expired</c>.</param>
/// <param name="SpentGpuHours">GPU-hours charged.</param>
/// <param name="CommittedGpuHours">GPU-hours held by running jobs (their walltime left).</param>
/// <param name="RemainingGpuHours">Released GPU-hours neither spent nor committed.</param>
/// <param name="UsedPercent">Spent, in percent of released.</param>
public sealed record AllocationDto(string Id, string Project, string? Partition, double AwardedGpuHours, double ReleasedGpuHours, int Tranches, int TranchesReleased,
    DateTimeOffset Start, DateTimeOffset End, string State, double SpentGpuHours, double CommittedGpuHours, double RemainingGpuHours, double UsedPercent);

/// <summary>One line of <c>GET /api/usage?by=…</c>: GPU-hours granted, spent, committed and remaining, and the amount charged.</summary>
/// <param name="Key">The allocation, project, member or organisation type the line is for.</param>
/// <param name="GrantedGpuHours">GPU-hours granted.</param>
/// <param name="SpentGpuHours">GPU-hours charged.</param>
/// <param name="CommittedGpuHours">GPU-hours held by running jobs.</param>
/// <param name="RemainingGpuHours">GPU-hours left.</param>
/// <param name="Amount">The amount charged, in the center's currency.</param>
public sealed record UsageRow(string Key, double GrantedGpuHours, double SpentGpuHours, double CommittedGpuHours, double RemainingGpuHours, decimal Amount);

/// <summary>A PI's request for GPU-hours (<c>POST /api/allocation-requests</c>).</summary>
public sealed class AllocationRequestBody
{
    /// <summary>The project.</summary>
    public string? Project { get; set; }

    /// <summary>Partition the GPU-hours are for (null: any).</summary>
    public string? Partition { get; set; }

    /// <summary>GPU-hours asked for.</summary>
    public double? GpuHours { get; set; }

    /// <summary>Why (the science case).</summary>
    public string? Justification { get; set; }

    /// <summary>Months asked for (default 6).</summary>
    public int? Months { get; set; }
}

/// <summary>A reviewer's decision on an allocation request (<c>POST /api/allocation-requests/{id}/review</c>).</summary>
public sealed class ReviewBody
{
    /// <summary>award or reject.</summary>
    public string? Decision { get; set; }

    /// <summary>0–100.</summary>
    public int? Score { get; set; }

    /// <summary>GPU-hours awarded (default: as asked; may be less).</summary>
    public double? GpuHours { get; set; }

    /// <summary>When the allocation starts (default: now).</summary>
    public DateTimeOffset? Start { get; set; }

    /// <summary>When it ends (default: six months after the start).</summary>
    public DateTimeOffset? End { get; set; }

    /// <summary>Number of tranches (default 1); the first is released at once.</summary>
    public int? Tranches { get; set; }

    /// <summary>Comment to the PI.</summary>
    public string? Comment { get; set; }
}
