namespace GpuCommons.Scheduling;

/// <summary>Why a job is not running yet. Machine-readable; <see cref="PendingReasons.Describe"/> gives the words.</summary>
public enum PendingReason
{
    /// <summary>Not looked at yet by a scheduling cycle.</summary>
    New,
    /// <summary>The project has no active allocation on any partition that could run the job.</summary>
    NoAllocation,
    /// <summary>The allocation's remaining GPU-hours (after spent and committed) cannot cover walltime × GPUs.</summary>
    GrantExhausted,
    /// <summary>The project would exceed its nominal quota plus borrowing limit.</summary>
    ProjectQuota,
    /// <summary>The organisation would exceed its nominal quota plus borrowing limit.</summary>
    OrganisationQuota,
    /// <summary>There is no idle quota in the cohort to borrow right now.</summary>
    CohortQuota,
    /// <summary>Not enough free GPUs in a shape that fits the job; waiting for running jobs to end.</summary>
    Resources,
    /// <summary>GPUs are free, but using them would delay a reserved higher-priority job.</summary>
    BehindReservation,
    /// <summary>A higher-priority job is blocked ahead of this one and backfill is off.</summary>
    Priority,
    /// <summary>The job holds a reservation: it starts when the GPUs it is waiting for are released.</summary>
    Reserved,
    /// <summary>Jobs are being preempted to make room for this job.</summary>
    WaitingForPreemption,
    /// <summary>The nodes that could hold the job are drained or down.</summary>
    NodesUnavailable,
    /// <summary>GPUs are free in a shape that fits the job, but no node with them has the CPU cores it asks for free.</summary>
    Cpus,
    /// <summary>GPUs are free in a shape that fits the job, but no node with them has the memory it asks for free.</summary>
    Memory,
    /// <summary>GPUs are free in a shape that fits the job, but none of the GPU models it asks for.</summary>
    GpuModel,
    /// <summary>GPUs of its model are free in a shape that fits the job, but not on nodes with the features it asks for.</summary>
    Features,
}

/// <summary>Plain words for each <see cref="PendingReason"/>.</summary>
public static class PendingReasons
{
    /// <summary>The reason's stable machine-readable code (<c>grant_exhausted</c>), the one the API reports for a pending job.</summary>
    public static string Code(PendingReason r) => r switch
    {
        PendingReason.New => "new",
        PendingReason.NoAllocation => "no_allocation",
        PendingReason.GrantExhausted => "grant_exhausted",
        PendingReason.ProjectQuota => "project_quota",
        PendingReason.OrganisationQuota => "organisation_quota",
        PendingReason.CohortQuota => "cohort_quota",
        PendingReason.Resources => "resources",
        PendingReason.BehindReservation => "behind_reservation",
        PendingReason.Priority => "priority",
        PendingReason.Reserved => "reserved",
        PendingReason.WaitingForPreemption => "waiting_for_preemption",
        PendingReason.NodesUnavailable => "nodes_unavailable",
        PendingReason.Cpus => "cpus",
        PendingReason.Memory => "memory",
        PendingReason.GpuModel => "gpu_model",
        PendingReason.Features => "features",
        _ => r.ToString().ToLowerInvariant(),
    };

    /// <summary>The reason in a short English sentence for the job's owner.</summary>
    public static string Describe(PendingReason r) => r switch
    {
        PendingReason.New => "submitted; waiting for the next scheduling cycle",
        PendingReason.NoAllocation => "the project has no active allocation on a partition that can run this job",
        PendingReason.GrantExhausted => "the allocation has too few GPU-hours left for walltime × GPUs",
        PendingReason.ProjectQuota => "the project is at its GPU quota (nominal + borrowing limit)",
        PendingReason.OrganisationQuota => "the organisation is at its GPU quota (nominal + borrowing limit)",
        PendingReason.CohortQuota => "no idle quota to borrow right now",
        PendingReason.Resources => "waiting for GPUs to be released by running jobs",
        PendingReason.BehindReservation => "free GPUs are held for a higher-priority job",
        PendingReason.Priority => "waiting behind higher-priority jobs",
        PendingReason.Reserved => "next in line: GPUs are reserved for this job",
        PendingReason.WaitingForPreemption => "lower-priority jobs are being stopped to make room",
        PendingReason.NodesUnavailable => "the nodes that could run this job are drained or down",
        PendingReason.Cpus => "GPUs are free, but not on a node with the CPU cores this job asks for free",
        PendingReason.Memory => "GPUs are free, but not on a node with the memory this job asks for free",
        PendingReason.GpuModel => "GPUs are free, but not of the GPU model this job asks for",
        PendingReason.Features => "GPUs are free, but not on a node with the features this job asks for",
        _ => r.ToString(),
    };
}
