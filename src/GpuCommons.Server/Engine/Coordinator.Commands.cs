using GpuCommons.Backends;
using GpuCommons.Contracts;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore;

namespace GpuCommons.Server.Engine;

// The API's typed commands. Each runs on the loop, writes its rows with an audit event and applies the change to the
// engine once, after the write committed; a conflict or bad reference found there is an ApiException for the caller.
// The view is published again before the command's task completes, so a read right after sees the change.
public sealed partial class Coordinator
{
    /// <summary>Cancels a job: a pending one leaves the queue now; a running one is signalled and ends when the backend says so.</summary>
    public async Task<bool> CancelAsync(long id, string actor)
    {
        var signal = await OnLoopAsync(async () =>
        {
            await using var db = _db.Create();
            var signals = new List<long>();
            if (_s.Held.TryGetValue(id, out var held))
            {
                // Held by its dependency: never queued.
                Unhold(held);
                held.State = JobState.Cancelled;
                held.Outcome = "cancelled by " + actor;
                held.EndTime = _time.GetUtcNow();
                NoteEnded(held);
                _depsDirty = true;
                _touched.Add(id);
                _metrics.Outcome(JobState.Cancelled);
                db.Jobs.Update(held);
                db.Events.Add(Event(actor, "job.cancel", $"job/{id}", held.Project, held.State.ToWire()));
            }
            else if (_s.Arrays.TryGetValue(id, out var array))
            {
                // The whole array: nothing more is expanded, its live tasks are cancelled, and it ends with the last of them.
                foreach (var task in CancelArray(array, actor))
                {
                    if (CancelRow(task, actor, db))
                    {
                        signals.Add(task.Id);
                    }

                    if (task.State == JobState.Cancelled && array.Live.Remove(task.Id))
                    {
                        CountTaskEnd(array, JobState.Cancelled);
                    }
                }

                if (array.Live.Count == 0)
                {
                    EndArray(array);
                }

                await AddDeferredAsync(db, CancellationToken.None);
                _deferredRows.Clear();
                _deferredEvents.Clear();
            }
            else if (_s.Active.TryGetValue(id, out var row))
            {
                if (CancelRow(row, actor, db))
                {
                    signals.Add(id);
                }
            }
            else
            {
                return (Found: false, Signals: signals);
            }

            await db.SaveChangesAsync();
            return (Found: true, Signals: signals);
        });
        foreach (var job in signal.Signals)
        {
            try
            {
                await _backend.CancelAsync(job, _options.CancelGrace, CancellationToken.None);
            }
            catch (Exception e)
            {
                LogBackendError("cancel", job, e);
            }
        }

        return signal.Found;
    }

    /// <summary>
    /// Cancels a live job on the loop: a pending one ends now, a running one is asked to stop. Adds its row and event to
    /// <paramref name="db"/>; true when the backend is to be signalled (running, and its start not in flight: a job whose
    /// start is in flight is signalled when the start comes back, in ApplyStartResultAsync).
    /// </summary>
    private bool CancelRow(JobRow row, string actor, GpucDb db)
    {
        var id = row.Id;
        _touched.Add(id);
        if (row.State == JobState.Pending)
        {
            if (_s.Engine.GetJob(id) is not null)
            {
                _s.Engine.Cancel(id); // a job held back after a failed start is not in the queue
            }

            _s.StartRetries.Remove(id);
            row.State = JobState.Cancelled;
            row.Outcome = "cancelled by " + actor;
            row.EndTime = _time.GetUtcNow();
            _s.Active.Remove(id);
            _metrics.Outcome(JobState.Cancelled);
        }
        else
        {
            row.CancelRequested = true;
        }

        db.Jobs.Update(row);
        db.Events.Add(Event(actor, "job.cancel", $"job/{id}", row.Project, row.State.ToWire()));
        return row.State == JobState.Running && !_s.Starting.ContainsKey(id);
    }

    /// <summary>Sets a node's state (an operator's drain, undrain or down), and holds it in the cluster manager too.</summary>
    public async Task ChangeNodeStateAsync(string node, NodeState state, string? reason, string actor)
    {
        await OnLoopAsync(async () =>
        {
            await ApplyNodeStateAsync(node, state, reason, actor, CancellationToken.None);
            return true;
        });
        if (_backend is INodeControl control)
        {
            // An operator's drain holds in the cluster manager too (Slurm: scontrol update state=drain), so that
            // nothing else schedules onto the node either; down is a drain there, not a kill.
            try
            {
                if (state == NodeState.Up)
                {
                    await control.ResumeNodeAsync(node, CancellationToken.None);
                }
                else
                {
                    await control.DrainNodeAsync(node, reason ?? $"drained by {actor} in GpuCommons", CancellationToken.None);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogBackendError("node " + state.ToString().ToLowerInvariant(), 0, e);
            }
        }
    }

    /// <summary>On the loop: the engine's node state, its row and event, and the jobs the node took down.</summary>
    private async Task ApplyNodeStateAsync(string node, NodeState state, string? reason, string actor, CancellationToken ct)
    {
        var ends = _s.Engine.SetNodeState(node, state);
        await using var db = _db.Create();
        var existing = await db.NodeStates.FindAsync([node], ct);
        if (existing is null)
        {
            db.NodeStates.Add(new NodeStateRow { Node = node, State = state.ToString().ToLowerInvariant(), Reason = reason });
        }
        else
        {
            existing.State = state.ToString().ToLowerInvariant();
            existing.Reason = reason;
        }

        db.Events.Add(Event(actor, "node." + state.ToString().ToLowerInvariant(), $"node/{node}", null, reason));
        await db.SaveChangesAsync(ct);
        _s.NodeStates[node] = (state, reason);
        foreach (var end in ends)
        {
            // The engine already ended these; record them and stop what is left of them.
            if (_s.Active.TryGetValue(end.JobId, out var row))
            {
                _s.BackendStarted.Remove(row.Id);
                _touched.Add(row.Id);
                var inFlight = _s.Starting.TryGetValue(row.Id, out var attempt) && attempt == row.Attempt;
                VoidStart(row);
                await using var db2 = _db.Create();
                _recorder.RecordNodeFailure(db2, _s, row, end);
                await db2.SaveChangesAsync(ct);
                if (!inFlight)
                {
                    _dispatcher.Cancel(row.Id, TimeSpan.Zero);
                }
            }
        }
    }

    /// <summary>Adds an organisation (409 when the name is taken).</summary>
    public Task CreateOrganisationAsync(OrganisationRow row, string actor) => OnLoopAsync(async () =>
    {
        await using var db = _db.Create();
        if (await db.Organisations.FindAsync(row.Name) is not null)
        {
            throw new ApiException(409, "conflict", "name", $"name: organisation '{row.Name}' exists");
        }

        db.Organisations.Add(row);
        db.Events.Add(Event(actor, "organisation.created", $"organisation/{row.Name}", null, row.Type));
        await db.SaveChangesAsync();
        _s.Engine.AddOrganisation(new OrganisationSpec(row.Name, Enum.Parse<OrganisationType>(row.Type, true)) { Shares = row.Shares, Quotas = QuotasApi.FromJson(row.Quotas) });
        return true;
    });

    /// <summary>Adds a project of an existing organisation, with its PI when given (409 when the name is taken).</summary>
    public Task CreateProjectAsync(ProjectRow row, string? pi, string actor) => OnLoopAsync(async () =>
    {
        await using var db = _db.Create();
        if (await db.Projects.FindAsync(row.Name) is not null)
        {
            throw new ApiException(409, "conflict", "name", $"name: project '{row.Name}' exists");
        }

        var org = await db.Organisations.FindAsync(row.Organisation) ?? throw ApiException.Field("organisation", $"unknown organisation '{row.Organisation}'");
        if (pi is not null && await db.Users.FindAsync(pi) is null)
        {
            throw ApiException.Field("pi", $"unknown user '{pi}'");
        }

        db.Projects.Add(row);
        if (pi is not null)
        {
            db.Memberships.Add(new MembershipRow { Project = row.Name, User = pi, Role = "pi" });
        }

        db.Events.Add(Event(actor, "project.created", $"project/{row.Name}", row.Name, row.Organisation));
        await db.SaveChangesAsync();
        _s.Engine.AddProject(new ProjectSpec(row.Name, row.Organisation) { Shares = row.Shares, Quotas = QuotasApi.FromJson(row.Quotas) });
        _s.ProjectClass[row.Name] = org.Type;
        return true;
    });

    /// <summary>Replaces an organisation's quotas (404 when it does not exist).</summary>
    public Task SetOrganisationQuotasAsync(string name, IReadOnlyList<QuotaSpec> quotas, string actor) =>
        SetQuotasAsync<OrganisationRow>("organisation", name, null, quotas, actor, (r, q) => r.Quotas = q, () => _s.Engine.SetOrganisationQuotas(name, quotas));

    /// <summary>Replaces a project's quotas (404 when it does not exist).</summary>
    public Task SetProjectQuotasAsync(string name, IReadOnlyList<QuotaSpec> quotas, string actor) =>
        SetQuotasAsync<ProjectRow>("project", name, name, quotas, actor, (r, q) => r.Quotas = q, () => _s.Engine.SetProjectQuotas(name, quotas));

    private Task SetQuotasAsync<TRow>(string kind, string name, string? project, IReadOnlyList<QuotaSpec> quotas, string actor, Action<TRow, string?> store, Action apply)
        where TRow : class => OnLoopAsync(async () =>
    {
        await using var db = _db.Create();
        var row = await db.Set<TRow>().FindAsync(name) ?? throw ApiException.NotFound($"{kind} {name}");
        store(row, QuotasApi.ToJson(quotas.ToList()));
        db.Events.Add(Event(actor, $"{kind}.quotas", $"{kind}/{name}", project, QuotasApi.Describe(quotas)));
        await db.SaveChangesAsync();
        apply();
        return true;
    });

    /// <summary>Adds a reservation (409 when the name is taken; 400 naming the field when the engine refuses it).</summary>
    public Task AddReservationAsync(ReservationRow row, string actor) => OnLoopAsync(async () =>
    {
        await using var db = _db.Create();
        if (await db.Reservations.FindAsync(row.Name) is not null)
        {
            throw new ApiException(409, "conflict", "name", $"name: reservation '{row.Name}' exists");
        }

        if (row.Project is not null && await db.Projects.FindAsync(row.Project) is null)
        {
            throw ApiException.Field("project", $"unknown project '{row.Project}'");
        }

        try
        {
            _s.Engine.AddReservation(new AdvanceReservation(row.Name, row.Nodes.Split(','), row.Start, row.End, row.Project));
        }
        catch (SpecException e)
        {
            throw ApiException.Field(e.Field, e.Reason);
        }

        db.Reservations.Add(row);
        db.Events.Add(Event(actor, "reservation.created", $"reservation/{row.Name}", row.Project, $"{row.Nodes} {row.Start:u}–{row.End:u}"));
        try
        {
            await db.SaveChangesAsync();
        }
        catch
        {
            _s.Engine.RemoveReservation(row.Name);
            throw;
        }

        return true;
    });

    /// <summary>Removes a reservation (404 when there is none of that name).</summary>
    public Task RemoveReservationAsync(string name, string actor) => OnLoopAsync(async () =>
    {
        await using var db = _db.Create();
        var r = await db.Reservations.FindAsync(name) ?? throw ApiException.NotFound($"reservation {name}");
        db.Reservations.Remove(r);
        db.Events.Add(Event(actor, "reservation.removed", $"reservation/{name}", r.Project, null));
        await db.SaveChangesAsync();
        _s.Engine.RemoveReservation(name);
        return true;
    });

    /// <summary>
    /// Changes allocations: <paramref name="write"/> checks and changes rows in the context it is given (and may throw an
    /// ApiException); the loop commits them, then gives the engine the allocation it returns (with its spent GPU-hours
    /// from the ledger). Runs on the loop so that no ledger entry lands between the write and the engine's update.
    /// </summary>
    public Task<T> ChangeAllocationAsync<T>(Func<GpucDb, Task<(T Result, AllocationRow? Changed)>> write) => OnLoopAsync(async () =>
    {
        await using var db = _db.Create();
        var (result, changed) = await write(db);
        await db.SaveChangesAsync();
        if (changed is not null)
        {
            var spent = await db.Ledger.Where(l => l.AllocationId == changed.Id).SumAsync(l => (double?)l.GpuHours) ?? 0;
            _s.Allocations[changed.Id] = changed;
            _s.Engine.UpsertAllocation(EngineRebuilder.ToSpec(changed, spent));
        }

        return result;
    });

    /// <summary>
    /// Records allocation alerts decided by <see cref="AllocationAlertService"/>: the bits are set on the allocations the
    /// loop holds (an alert is raised once) and the events written. True when any alert was new.
    /// </summary>
    internal Task<bool> RecordAllocationAlertsAsync(IReadOnlyList<(string AllocationId, int Bit, string Detail)> alerts) => OnLoopAsync(async () =>
    {
        var changed = new Dictionary<string, AllocationRow>(StringComparer.Ordinal);
        var events = new List<EventRow>();
        foreach (var (id, bit, detail) in alerts)
        {
            if (!_s.Allocations.TryGetValue(id, out var a) || (a.AlertsSent & (1 << bit)) != 0)
            {
                continue;
            }

            a.AlertsSent |= 1 << bit;
            changed[id] = a;
            events.Add(Event("scheduler", "allocation.alert", $"allocation/{a.Id}", a.Project, detail));
        }

        if (events.Count == 0)
        {
            return false;
        }

        await using var db = _db.Create();
        foreach (var a in changed.Values)
        {
            db.Allocations.Update(a);
        }

        db.Events.AddRange(events);
        await db.SaveChangesAsync();
        return true;
    });

    /// <summary>
    /// The allocations the engine holds with their usage and the alerts already sent, taken together on the loop (an
    /// extension resets alerts and changes usage at once), for <see cref="AllocationAlertService"/>.
    /// </summary>
    internal Task<List<AllocationAlertState>> AllocationsAsync() => OnLoopAsync(() =>
    {
        var list = new List<AllocationAlertState>(_s.Allocations.Count);
        foreach (var a in _s.Allocations.Values)
        {
            if (_s.Engine.GetAllocationUsage(a.Id) is { } u)
            {
                list.Add(new AllocationAlertState(a.Id, a.Project, a.AlertsSent, a.End, u.Granted, u.Spent));
            }
        }

        return Task.FromResult(list);
    });

    /// <summary>
    /// Work that reads and changes the engine together with rows, for the parts that keep their own state beside it
    /// (allocation rounds' selection and award quotas): runs on the loop, so no cycle interleaves. Prefer a typed command.
    /// </summary>
    internal Task<T> RunAsync<T>(Func<SchedulerEngine, Task<T>> work) => OnLoopAsync(() => work(_s.Engine));

    /// <summary>The database, for the work of <see cref="RunAsync{T}"/>.</summary>
    internal GpucDbFactory Db => _db;

    /// <summary>Gives the engine an allocation written just now (with its spent GPU-hours). Call only from <see cref="RunAsync{T}"/>.</summary>
    internal async Task UpsertAllocationAsync(AllocationRow row)
    {
        await using var db = _db.Create();
        var spent = await db.Ledger.Where(l => l.AllocationId == row.Id).SumAsync(l => (double?)l.GpuHours) ?? 0;
        _s.Allocations[row.Id] = row;
        _s.Engine.UpsertAllocation(EngineRebuilder.ToSpec(row, spent));
    }
}
