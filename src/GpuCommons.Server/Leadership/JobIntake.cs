using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;

namespace GpuCommons.Server.Leadership;

/// <summary>
/// Where the API hands a submission: to the scheduler loop on the leader (as before), into the database inbox on a standby.
/// A null outcome means: durably taken into the inbox, but no leader has given it a job id yet (the API answers 202).
/// </summary>
public sealed class JobIntake(ILeadership leadership, Coordinator coordinator, StandbyInbox inbox)
{
    public async Task<SubmitOutcome?> SubmitAsync(JobRow row, CancellationToken ct) =>
        leadership.IsLeader ? await coordinator.SubmitAsync(row) : await inbox.SubmitAsync(row, ct);
}
