namespace GpuCommons.Scheduling.Internal;

/// <summary>
/// Admission: the quota tree (Kueue semantics) and the GPU-hour grants, and the one decision made from them: may this
/// job hold this much on this partition now, and which allocation pays. It owns the two trackers; the engine applies
/// usage to them when jobs start and stop.
/// </summary>
internal sealed class Admission(QuotaTracker quota, SchedulerOptions options)
{
    private const double Milli = Core.Jobs.JobSpec.MilliPerGpu;

    public QuotaTracker Quota { get; } = quota;

    public GrantTracker Grants { get; } = new();

    /// <summary>Quota first, then (when the engine requires one) an allocation that covers held GPUs × walltime.</summary>
    public AdmissionResult Admit(int project, int p, long heldMilli, long walltimeTicks, long now)
    {
        if (Quota.Check(project, p, heldMilli) is { } quota)
        {
            return new AdmissionResult(-1, quota);
        }

        if (!options.RequireAllocation)
        {
            return new AdmissionResult(-1, null);
        }

        var allocation = Grants.Find(project, p, GpuHours(heldMilli, walltimeTicks), now, out var why);
        return new AdmissionResult(allocation, allocation < 0 ? why : null);
    }

    /// <summary>A job started on the allocation: its held GPUs × walltime are committed until it stops.</summary>
    public void Commit(int allocation, long heldMilli, long walltimeTicks)
    {
        if (allocation >= 0)
        {
            Grants[allocation].Committed += GpuHours(heldMilli, walltimeTicks);
        }
    }

    /// <summary>A job stopped (or never started): releases what <see cref="Commit"/> committed; returns the allocation's grant, if any.</summary>
    public Grant? Uncommit(int allocation, long heldMilli, long walltimeTicks)
    {
        if (allocation < 0)
        {
            return null;
        }

        var grant = Grants[allocation];
        grant.Committed = Math.Max(0, grant.Committed - GpuHours(heldMilli, walltimeTicks));
        return grant;
    }

    public static double GpuHours(long milli, long ticks) => milli / Milli * (ticks / (double)TimeSpan.TicksPerHour);
}

/// <summary>An admission decision: the allocation to charge (-1: none needed), or the reason for a refusal.</summary>
internal readonly record struct AdmissionResult(int Allocation, PendingReason? Reason);
