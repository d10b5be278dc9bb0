using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Events from the world: jobs ending, cancellations, node state changes, restarts.
public sealed partial class SchedulerEngine
{
    /// <summary>
    /// A running job stopped. Charges allocated GPUs × runtime to its allocation. Preempted jobs, and requeueable jobs
    /// whose node failed, go back to the queue with their original submit time. <paramref name="ranFrom"/> is when the job
    /// actually began to run where the backend reports it (Slurm's start time): the charge runs from there to
    /// <paramref name="at"/> instead of from the moment the engine placed it.
    /// </summary>
    public JobEnd Complete(long jobId, JobOutcome outcome, DateTimeOffset? at = null, DateTimeOffset? ranFrom = null)
    {
        if (!_jobs.TryGetValue(jobId, out var job) || job.State != JobState.Running)
        {
            throw new ArgumentException($"job {jobId} is not running", nameof(jobId));
        }

        var startTicks = ranFrom?.UtcTicks ?? job.StartTicks;
        var endTicks = Math.Max((at ?? _time.GetUtcNow()).UtcTicks, startTicks);
        var placement = job.Placement!;
        var held = placement.HeldGpuMilli;
        Release(job);

        var runtime = endTicks - startTicks;
        var gpuHours = GpuHours(held, runtime);
        Charge? charge = null;
        var part = Fleet.Partitions[job.Partition];
        if (_admission.Uncommit(job.Allocation, held, job.WalltimeTicks) is { } grant)
        {
            grant.Spent += gpuHours;
            charge = new Charge(grant.Spec.Id, _projectNames[job.Project], part.Name, gpuHours, (decimal)gpuHours * part.RatePerGpuHour);
        }
        else
        {
            charge = new Charge("", _projectNames[job.Project], part.Name, gpuHours, (decimal)gpuHours * part.RatePerGpuHour);
        }

        _fairShare.AddRunning(job.User, -held);
        if (_lastFairShareTicks != long.MinValue && endTicks > _lastFairShareTicks)
        {
            // Usage is counted from the last fair-share step: a job that started after it had that gap subtracted at its
            // start (MarkRunning), expecting the next step to add it back; ending first, it adds it back here.
            var from = _lastFairShareTicks;
            _fairShare.AddUsage(job.User, held * TimeSpan.FromTicks(endTicks - from).TotalSeconds);
        }

        job.AttainedGpuSeconds += held / (double)Milli * TimeSpan.FromTicks(runtime).TotalSeconds;
        if (job.Preempting)
        {
            _preempting--;
            job.Preempting = false;
        }

        var start = new DateTimeOffset(startTicks, TimeSpan.Zero);
        var end = new DateTimeOffset(endTicks, TimeSpan.Zero);
        var requeue = outcome == JobOutcome.Preempted || (outcome == JobOutcome.NodeFailure && job.Requeueable);
        job.Placement = null;
        job.Allocation = -1;
        job.Partition = -1;
        if (requeue)
        {
            job.Attempts++;
            AddPending(job);
            return new JobEnd(jobId, JobState.Pending, true, start, end, placement, charge, outcome);
        }

        job.State = outcome switch
        {
            JobOutcome.Finished => JobState.Finished,
            JobOutcome.Cancelled => JobState.Cancelled,
            _ => JobState.Failed,
        };
        _jobs.Remove(jobId);
        return new JobEnd(jobId, job.State, false, start, end, placement, charge, outcome);
    }

    /// <summary>The backend could not start a job the engine placed: undo the decision and queue the job again.</summary>
    public void StartFailed(long jobId)
    {
        if (!_jobs.TryGetValue(jobId, out var job) || job.State != JobState.Running)
        {
            throw new ArgumentException($"job {jobId} is not running", nameof(jobId));
        }

        var held = job.Placement!.HeldGpuMilli;
        Release(job);
        _admission.Uncommit(job.Allocation, held, job.WalltimeTicks);

        _fairShare.AddRunning(job.User, -held);
        if (_lastFairShareTicks != long.MinValue && job.StartTicks > _lastFairShareTicks)
        {
            _fairShare.AddUsage(job.User, held * TimeSpan.FromTicks(job.StartTicks - _lastFairShareTicks).TotalSeconds);
        }

        if (job.Preempting)
        {
            _preempting--;
            job.Preempting = false;
        }

        job.Placement = null;
        job.Allocation = -1;
        job.Partition = -1;
        AddPending(job);
    }

    /// <summary>
    /// Cancels a job. A pending job leaves the queue at once and its end is returned; for a running job this returns
    /// null: the caller stops it in the backend and then reports <see cref="Complete"/> with <see cref="JobOutcome.Cancelled"/>.
    /// </summary>
    public JobEnd? Cancel(long jobId)
    {
        if (!_jobs.TryGetValue(jobId, out var job))
        {
            throw new ArgumentException($"job {jobId} is not known to the engine", nameof(jobId));
        }

        if (job.State != JobState.Pending)
        {
            return null;
        }

        RemovePending(job);
        _capacityDirty = true;
        job.State = JobState.Cancelled;
        _jobs.Remove(jobId);
        return new JobEnd(jobId, JobState.Cancelled, false, null, _time.GetUtcNow(), null, null, JobOutcome.Cancelled);
    }

    /// <summary>
    /// Changes a node's state. Draining stops new jobs on it; down also fails the jobs on it (requeueing the requeueable
    /// ones): the returned ends say which, so the caller can stop their processes on other nodes.
    /// </summary>
    public IReadOnlyList<JobEnd> SetNodeState(string nodeName, NodeState state)
    {
        var node = Fleet.FindNode(nodeName) ?? throw new SpecException("node", $"unknown node '{nodeName}'");
        var n = node.Index;
        if ((NodeState)_c.NodeState[n] == state)
        {
            return [];
        }

        _c.SetNodeState(n, state);
        _capacityDirty = true;

        if (state != NodeState.Down)
        {
            return [];
        }

        var ends = new List<JobEnd>();
        foreach (var job in _c.NodeJobs[n].ToArray())
        {
            ends.Add(Complete(job.Id, JobOutcome.NodeFailure));
        }

        return ends;
    }

    /// <summary>The engine's state of a node, by its index in <see cref="Fleet"/>.</summary>
    public NodeState GetNodeState(int node) => (NodeState)_c.NodeState[node];

    /// <summary>Puts back a job that was running before a restart, on the GPUs it holds.</summary>
    public SubmitResult RestoreRunning(JobSpec spec, IReadOnlyList<GpuSlot> slots, DateTimeOffset start, string? allocationId)
    {
        var ok = Validate(spec);
        if (!ok.Accepted)
        {
            return ok;
        }

        if (_jobs.ContainsKey(spec.Id))
        {
            return SubmitResult.Reject("id", $"job {spec.Id} already exists");
        }

        if (slots.Count == 0)
        {
            return SubmitResult.Reject("placement", "a running job needs at least one GPU");
        }

        var p = Fleet.Nodes[slots[0].Node].PartitionIndex;
        var nodes = slots.Select(s => s.Node).Distinct().ToArray();
        var exclusive = nodes.Length > 1;
        foreach (var s in slots)
        {
            var node = Fleet.Nodes[s.Node];
            if (node.PartitionIndex != p || s.Gpu < 0 || s.Gpu >= node.Gpus)
            {
                return SubmitResult.Reject("placement", $"GPU {s.Gpu} of node {node.Name} is not a GPU of one partition");
            }

            var need = exclusive ? Milli : s.Milli;
            if (_c.GpuUsed[node.FirstGpu + s.Gpu] + need > Milli)
            {
                return SubmitResult.Reject("placement", $"GPU {s.Gpu} of node {node.Name} is already in use");
            }
        }

        if (Ledger.CheckRestore(spec, Fleet.Partitions[p], slots) is { } unfit)
        {
            return SubmitResult.Reject("placement", unfit);
        }

        var project = _projectIndex[spec.Project];
        var job = new JobRecord(spec, RequestOf(spec), project, UserIndex(project, spec.User), spec.Partition is null ? -1 : Fleet.FindPartition(spec.Partition)!.Index);
        ResolveShapes(job);
        _jobs.Add(spec.Id, job);
        long held = 0;
        Span<int> scratch = stackalloc int[FleetBuilder.MaxGpusPerNode];
        foreach (var n in nodes)
        {
            var node = Fleet.Nodes[n];
            if (exclusive)
            {
                for (var g = 0; g < node.Gpus; g++)
                {
                    scratch[g] = node.FirstGpu + g;
                }

                _c.ChangeGpus(n, scratch[..node.Gpus], Milli);
                held += (long)node.Gpus * Milli;
                continue;
            }

            foreach (var s in slots)
            {
                if (s.Node == n)
                {
                    _c.ChangeGpu(n, node.FirstGpu + s.Gpu, s.Milli);
                    held += s.Milli;
                }
            }
        }

        var allocation = allocationId is null ? -1 : _admission.Grants.Find(allocationId);
        MarkRunning(job, p, [.. slots], nodes, held, exclusive, allocation, start.UtcTicks);
        _capacityDirty = true;
        return SubmitResult.Ok;
    }

    private void Release(JobRecord job)
    {
        var placement = job.Placement!;
        Ledger.Give(job);
        Span<int> scratch = stackalloc int[FleetBuilder.MaxGpusPerNode];
        foreach (var n in placement.Nodes)
        {
            var node = Fleet.Nodes[n];
            if (job.Exclusive)
            {
                for (var g = 0; g < node.Gpus; g++)
                {
                    scratch[g] = node.FirstGpu + g;
                }

                _c.ChangeGpus(n, scratch[..node.Gpus], -Milli);
            }
            else
            {
                var c = 0;
                foreach (var s in placement.Slots)
                {
                    if (s.Node != n)
                    {
                        continue;
                    }

                    if (s.IsShare)
                    {
                        _c.ChangeGpu(n, node.FirstGpu + s.Gpu, -s.Milli);
                    }
                    else
                    {
                        scratch[c++] = node.FirstGpu + s.Gpu;
                    }
                }

                if (c > 0)
                {
                    _c.ChangeGpus(n, scratch[..c], -Milli);
                }
            }

            _c.NodeJobs[n].Remove(job);
        }

        _c.RunningByEnd[job.Partition].Remove((job.EndByTicks, job.Id));
        _c.RunningPreemptible[job.Partition].Remove((job.EndByTicks, job.Id));
        _admission.Quota.Apply(job.Project, job.Partition, -placement.HeldGpuMilli);
        _running--;
        _capacityDirty = true;
    }
}
