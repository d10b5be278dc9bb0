using GpuCommons.Backends;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling;
using GpuCommons.Server.Data;
using GpuCommons.Server.Security;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Engine;

/// <summary>What a rebuild produced: the loop's state, and the running jobs whose runs were gone after the restart.</summary>
internal sealed record Rebuilt(LoopState State, DiscoveredFleet Discovered, IReadOnlyList<JobRow> Lost, int Requeued);

/// <summary>
/// Builds the engine and the loop's state from the backend's fleet and the database when the server starts: tenancy,
/// allocations (with their spent GPU-hours from the ledger), node states, reservations, and the live jobs. Pending jobs
/// go back into the queue; running jobs get their GPUs back and are reattached to their runs; a job written as started
/// but without the backend's handle is started again (idempotent by job id).
/// </summary>
internal sealed partial class EngineRebuilder(GpucDbFactory db, IJobBackend backend, ServerOptions options, TimeProvider time, PosixAccounts accounts,
    JobEndRecorder recorder, ILogger log)
{
    public async Task<Rebuilt> RebuildAsync(CancellationToken ct)
    {
        var discovered = await backend.DiscoverAsync(ct);
        var fleet = BuildFleet(discovered, options.RatePerGpuHour);
        LogFleet(backend.Name, discovered.Source, fleet.Nodes.Count, fleet.TotalGpus, discovered.VirtualGpus, discovered.Note ?? "");

        await using var ctx = db.Create();
        var orgs = await ctx.Organisations.AsNoTracking().ToListAsync(ct);
        var projects = await ctx.Projects.AsNoTracking().ToListAsync(ct);
        var allocations = await ctx.Allocations.AsNoTracking().ToListAsync(ct);
        var spent = await ctx.Ledger.AsNoTracking().GroupBy(l => l.AllocationId).Select(g => new { g.Key, Sum = g.Sum(x => x.GpuHours) }).ToDictionaryAsync(x => x.Key, x => x.Sum, ct);
        var tenancy = new TenancySpec();
        foreach (var o in orgs)
        {
            tenancy.Organisations.Add(new OrganisationSpec(o.Name, Enum.Parse<OrganisationType>(o.Type, true)) { Shares = o.Shares, Quotas = KnownQuotas(fleet, o.Name, o.Quotas) });
        }

        var orgType = orgs.ToDictionary(o => o.Name, o => o.Type, StringComparer.Ordinal);
        foreach (var p in projects)
        {
            tenancy.Projects.Add(new ProjectSpec(p.Name, p.Organisation) { Shares = p.Shares, Quotas = KnownQuotas(fleet, p.Name, p.Quotas) });
        }

        var engine = new SchedulerEngine(fleet, tenancy, new SchedulerOptions { MaxWalltime = options.MaxWalltime }, time);
        var state = new LoopState(engine, fleet);
        foreach (var p in projects)
        {
            state.ProjectClass[p.Name] = orgType.GetValueOrDefault(p.Organisation, "unknown");
        }

        foreach (var n in discovered.Nodes)
        {
            state.Discovered[n.Name] = n;
        }

        foreach (var a in allocations)
        {
            state.Allocations[a.Id] = a;
            if (fleet.FindPartition(a.Partition ?? "") is null && a.Partition is not null)
            {
                continue;
            }

            engine.UpsertAllocation(ToSpec(a, spent.GetValueOrDefault(a.Id)));
        }

        foreach (var n in fleet.Nodes)
        {
            state.NodeStates[n.Name] = (n.InitialState, null);
        }

        foreach (var ns in await ctx.NodeStates.AsNoTracking().ToListAsync(ct))
        {
            if (fleet.FindNode(ns.Node) is not null && Enum.TryParse<NodeState>(ns.State, true, out var st))
            {
                engine.SetNodeState(ns.Node, st);
                state.NodeStates[ns.Node] = (st, ns.Reason);
            }
        }

        foreach (var r in await ctx.Reservations.AsNoTracking().ToListAsync(ct))
        {
            try
            {
                engine.AddReservation(new AdvanceReservation(r.Name, r.Nodes.Split(','), r.Start, r.End, r.Project));
            }
            catch (SpecException e)
            {
                LogReservationSkipped(r.Name, e.Message);
            }
        }

        state.NextId = (await ctx.Jobs.MaxAsync(j => (long?)j.Id, ct) ?? 0) + 1;
        foreach (var k in await ctx.Jobs.AsNoTracking().Where(j => j.IdempotencyKey != null).Select(j => new { j.User, j.IdempotencyKey, j.Id }).ToListAsync(ct))
        {
            state.Idempotency[(k.User, k.IdempotencyKey!)] = k.Id;
        }

        var live = await ctx.Jobs.Where(j => j.State == JobState.Pending || j.State == JobState.Running).OrderBy(j => j.Id).ToListAsync(ct);
        await ArrayRebuild.HoldAsync(ctx, state, live, ct); // arrays and jobs held by a dependency: not in the engine
        live.RemoveAll(r => r.IsArray || state.Held.ContainsKey(r.Id));
        var lost = new List<JobRow>();
        var requeued = 0;
        foreach (var row in live)
        {
            state.Active[row.Id] = row;
            var restartStart = row.State == JobState.Running && row.BackendId is null;
            if (restartStart && row.StartedOn is { } scope && scope != backend.RunScope)
            {
                // Handed to a backend this server cannot see (the old leader's own machine) before its handle was recorded:
                // whether it runs there cannot be asked, so it is lost with that machine, never started a second time here.
                LogStartedElsewhere(row.Id, scope);
                if (JobMapping.ParseSlots(row.Slots, fleet) is { } held && engine.RestoreRunning(JobMapping.ToSpec(row), held, row.StartTime ?? row.SubmitTime, row.AllocationId).Accepted)
                {
                    lost.Add(row);
                    continue;
                }

                row.State = JobState.Failed;
                row.Outcome = "lost";
                row.EndTime = time.GetUtcNow();
                state.Active.Remove(row.Id);
                continue;
            }

            if (row.State == JobState.Pending)
            {
                var r = engine.Submit(JobMapping.ToSpec(row));
                if (!r.Accepted)
                {
                    LogRestoreRejected(row.Id, r.Error!.Message);
                    row.State = JobState.Failed;
                    row.Outcome = "rejected on restart: " + r.Error.Message;
                    row.EndTime = time.GetUtcNow();
                    state.Active.Remove(row.Id);
                }

                continue;
            }

            var slots = JobMapping.ParseSlots(row.Slots, fleet);
            var restored = slots is not null && engine.RestoreRunning(JobMapping.ToSpec(row), slots, row.StartTime ?? row.SubmitTime, row.AllocationId).Accepted;
            if (restored && restartStart)
            {
                // Written as started, but the server died before it recorded the backend's handle. Starting is idempotent
                // by job id: the backend returns the handle of the run it has, or starts it now on the same GPUs.
                try
                {
                    var placement = engine.GetJob(row.Id)!.Placement!;
                    var runAs = await accounts.ResolveAsync(row.User, row.Project, ct);
                    var h = await backend.StartAsync(JobMapping.ToBackendJob(row, placement, state, options.LogDirectory) with { RunAs = runAs }, ct);
                    row.BackendId = h.ExternalId;
                    row.StdoutPath = h.StdoutPath;
                    row.StderrPath = h.StderrPath;
                    requeued++;
                    continue;
                }
                catch (JobStartRejectedException e)
                {
                    LogStartRejected(row.Id, e.Message);
                    engine.StartFailed(row.Id);
                    engine.Cancel(row.Id);
                    recorder.FailUnstarted(state, row, "failed to start: " + e.Message);
                    continue;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogBackendError("start after restart", row.Id, e);
                    engine.StartFailed(row.Id);
                    Coordinator.ResetToPending(row);
                    engine.Cancel(row.Id);
                    engine.Submit(JobMapping.ToSpec(row));
                    continue;
                }
            }

            var handle = new BackendHandle(row.Id, row.BackendId ?? "", row.StdoutPath, row.StderrPath);
            if (restored && await backend.ReattachAsync(row.Id, handle, ct))
            {
                continue;
            }

            lost.Add(row);
            if (!restored)
            {
                // Cannot hold its GPUs any more (the fleet changed): end it without a charge through the engine.
                row.State = JobState.Failed;
                row.Outcome = "lost";
                row.EndTime = time.GetUtcNow();
                state.Active.Remove(row.Id);
            }
        }

        ArrayRebuild.LinkTasks(state);

        // The live rows are tracked: only those the rebuild changed (lost, failed, a handle found) are written, and only
        // their changed columns. Marking every row modified made one SaveChanges order thousands of updates against the
        // jobs' unique (array, task) index, which is quadratic.
        await ctx.SaveChangesAsync(ct);
        return new Rebuilt(state, discovered, lost.Where(r => state.Active.ContainsKey(r.Id)).ToList(), requeued);
    }

    internal static Fleet BuildFleet(DiscoveredFleet discovered, decimal rate)
    {
        var b = new FleetBuilder("local");
        foreach (var part in discovered.Nodes.GroupBy(n => n.Partition))
        {
            b.AddPartition(part.Key, part.First().GpuModel, rate);
            foreach (var n in part)
            {
                var state = n.State.ToLowerInvariant() switch
                {
                    "down" => NodeState.Down,
                    "draining" or "drain" or "drained" => NodeState.Draining,
                    _ => NodeState.Up,
                };
                b.AddNode(part.Key, n.Name, n.Gpus.Count, null, state, NodeResources.FromDiscovery(n.Cpus, n.MemoryMiB, n.Features), n.GpuModel);
            }
        }

        return b.Build();
    }

    /// <summary>Stored quotas on partitions the fleet still has (a quota on a partition that is gone is logged and left out).</summary>
    private List<QuotaSpec> KnownQuotas(Fleet fleet, string tenant, string? json)
    {
        var quotas = Api.QuotasApi.FromJson(json);
        foreach (var q in quotas.Where(q => fleet.FindPartition(q.Partition) is null))
        {
            LogQuotaSkipped(tenant, q.Partition);
        }

        return quotas.Where(q => fleet.FindPartition(q.Partition) is not null).ToList();
    }

    internal static AllocationSpec ToSpec(AllocationRow a, double spent) =>
        new(a.Id, a.Project, a.Partition, a.ReleasedGpuHours, a.Start, a.End) { SpentGpuHours = spent };

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "fleet from backend {Backend} ({Source}): {Nodes} nodes, {Gpus} GPUs, virtual={Virtual} {Note}")]
    private partial void LogFleet(string backend, string source, int nodes, int gpus, bool @virtual, string note);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning, Message = "backend {Action} failed for job {JobId}")]
    private partial void LogBackendError(string action, long jobId, Exception e);

    [LoggerMessage(EventId = 130, Level = LogLevel.Warning, Message = "job {JobId} failed to start: {Reason}")]
    private partial void LogStartRejected(long jobId, string reason);

    [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "job {JobId} rejected while restoring: {Reason}")]
    private partial void LogRestoreRejected(long jobId, string reason);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "reservation {Name} skipped: {Reason}")]
    private partial void LogReservationSkipped(string name, string reason);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "quota of {Tenant} on partition {Partition} left out: the fleet has no such partition")]
    private partial void LogQuotaSkipped(string tenant, string partition);

    [LoggerMessage(EventId = 112, Level = LogLevel.Warning, Message = "job {JobId} was handed to backend {Scope} before its handle was recorded; this server's backend cannot see that run: it is lost with that machine, not started again")]
    private partial void LogStartedElsewhere(long jobId, string scope);
}
