using System.Globalization;
using GpuCommons.Backends.Slurm.Parsing;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling;
using Shouldly;
using Xunit;
using static GpuCommons.Backends.Slurm.Tests.Integration.SlurmTestKit;

namespace GpuCommons.Backends.Slurm.Tests.Integration;

[CollectionDefinition("slurm", DisableParallelization = true)]
public sealed class SlurmCollection;

/// <summary>Against the real local Slurm (ci/slurm). Sequential: some tests set nodes down or restart slurmctld.</summary>
[Collection("slurm")]
public class SlurmIntegrationTests
{
    private static readonly TimeSpan Short = TimeSpan.FromSeconds(60);

    public SlurmIntegrationTests() => LocalSlurm.Require();

    [SlurmFact]
    public async Task Gang_PlacedByEngine_RunsOnExactlyThoseNodesWithAllGpus()
    {
        await using var backend = Backend();
        var discovered = await backend.DiscoverAsync(default);
        var fleet = SlurmFleet.ToFleet(discovered);
        var engine = new SchedulerEngine(fleet, new TenancySpec
        {
            Organisations = [new OrganisationSpec("uni", OrganisationType.University)],
            Projects = [new ProjectSpec("proj", "uni")],
            Allocations = [AllocationSpec.Unlimited("proj")],
        });
        var id = NextId();
        var spec = new JobSpec { Id = id, Project = "proj", Gpus = 16, Nodes = 2, Walltime = TimeSpan.FromMinutes(5), SubmitTime = TimeProvider.System.GetUtcNow() };
        engine.Submit(spec).Accepted.ShouldBeTrue();
        var start = engine.Schedule().Started.ShouldHaveSingleItem();
        var demand = ResourceDemand.For(spec, fleet.Partitions[start.Placement.Partition]);
        var placement = start.Placement.ByNode().Select(p => new AssignedNode(fleet.Nodes[p.Node].Name, p.Gpus, []) { Cpus = demand.Cpus, MemoryMiB = demand.MemoryMiB }).ToArray();
        var job = Job(id, [], 8, "echo \"$SLURMD_NODENAME CVD=$CUDA_VISIBLE_DEVICES\"") with { Nodes = placement };

        var handle = await backend.StartAsync(job, default);
        var events = await PollUntilAsync(backend, [], e => e.Ended(id), Short);

        events.Has(id, BackendEventKind.Finished).ShouldBeTrue(string.Join("; ", events.Select(Describe)));
        var lines = Output(handle).Split('\n', StringSplitOptions.RemoveEmptyEntries).Order().ToArray();
        var wanted = placement.Select(p => p.Node).Order().ToArray();
        lines.ShouldBe(wanted.Select(n => $"{n} CVD=0,1,2,3,4,5,6,7").ToArray());
        // slurmdbd records a job's end a moment after slurmctld reports it: read accounting until the row is final.
        var acct = SlurmOutputParser.ParseSacct(LocalSlurm.Run("sacct", "-n", "-X", "-P", "-j", handle.ExternalId, "--format=" + SlurmOutputParser.SacctFormat).Output);
        for (var attempt = 0; attempt < 30 && (acct.Rows.Count != 1 || acct.Rows[0].Nodes.Count != wanted.Length); attempt++)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            acct = SlurmOutputParser.ParseSacct(LocalSlurm.Run("sacct", "-n", "-X", "-P", "-j", handle.ExternalId, "--format=" + SlurmOutputParser.SacctFormat).Output);
        }

        acct.Rows.ShouldHaveSingleItem().Nodes.Order().ShouldBe(wanted);
        acct.Rows[0].Gpus.ShouldBe(16);
    }

    [SlurmFact]
    public async Task PartialNode_CudaVisibleDevices_IsWhatSlurmAllocated_AndServerEnvironmentStaysOut()
    {
        Environment.SetEnvironmentVariable("GPUC_SERVER_SECRET", "do-not-leak");
        await using var backend = Backend();
        var id = NextId();
        var env = new Dictionary<string, string> { ["FOO"] = "bar baz", ["CUDA_VISIBLE_DEVICES"] = "7" };
        var job = Job(id, ["n3"], 3, "echo \"CVD=$CUDA_VISIBLE_DEVICES JOB_GPUS=$SLURM_JOB_GPUS N=$SLURM_GPUS_ON_NODE FOO=$FOO SECRET=${GPUC_SERVER_SECRET:-none} ID=$GPUC_JOB_ID\"", env: env);

        var handle = await backend.StartAsync(job, default);
        var events = await PollUntilAsync(backend, [], e => e.Ended(id), Short);

        events.Has(id, BackendEventKind.Finished).ShouldBeTrue(string.Join("; ", events.Select(Describe)));
        var line = Output(handle).Trim();
        var cvd = line.Split(' ')[0]["CVD=".Length..];
        cvd.Split(',').Length.ShouldBe(3, line);
        line.ShouldContain($"JOB_GPUS={cvd} N=3 FOO=bar baz SECRET=none ID={id}");
    }

    [SlurmFact]
    public async Task Cancel_RunningJob_ImmediatelyAndWithGraceForCheckpoint()
    {
        await using var backend = Backend();
        var plain = NextId();
        var ckpt = NextId();
        var h1 = await backend.StartAsync(Job(plain, ["n1"], 1, "sleep 300"), default);
        var h2 = await backend.StartAsync(Job(ckpt, ["n1"], 1, "trap 'echo checkpointed; exit 0' TERM; echo ready; sleep 300 & wait", checkpointable: true), default);
        // RUNNING in slurmctld comes before slurmd launches the script; a signal sent in between is lost, so wait for it.
        var events = await PollUntilAsync(backend, [], e => e.Has(plain, BackendEventKind.Started) && e.Has(ckpt, BackendEventKind.Started)
            && Output(h2).Contains("ready", StringComparison.Ordinal), Short);

        await backend.CancelAsync(plain, TimeSpan.Zero, default);
        await backend.CancelAsync(ckpt, TimeSpan.FromSeconds(20), default);
        await PollUntilAsync(backend, events, e => e.Ended(plain) && e.Ended(ckpt), Short);

        events.Has(plain, BackendEventKind.Cancelled).ShouldBeTrue();
        events.Has(ckpt, BackendEventKind.Cancelled).ShouldBeTrue();
        Output(h2).ShouldContain("checkpointed");
        events.Single(e => e.JobId == ckpt && e.Kind == BackendEventKind.Cancelled).ExitCode.ShouldBe(0);
        h1.ExternalId.ShouldNotBe(h2.ExternalId);
    }

    [SlurmFact]
    public async Task NodeSetDownMidJob_RaisesNodeDownAndFailsJob_ThenRequeuedAttemptRunsElsewhere()
    {
        await using var backend = Backend();
        await backend.DiscoverAsync(default);
        var id = NextId();
        await backend.StartAsync(Job(id, ["n2"], 2, "sleep 300"), default);
        var events = await PollUntilAsync(backend, [], e => e.Has(id, BackendEventKind.Started), Short);
        try
        {
            await backend.SetNodeDownAsync("n2", "integration test", default);
            await PollUntilAsync(backend, events, e => e.Ended(id) && e.Any(x => x.Kind == BackendEventKind.NodeDown && x.Node == "n2"), Short);

            var failed = events.Single(e => e.JobId == id && e.Kind != BackendEventKind.Started);
            failed.Kind.ShouldBe(BackendEventKind.Failed, Describe(failed));
            failed.Node.ShouldBe("n2");
            events.FindIndex(e => e.Kind == BackendEventKind.NodeDown).ShouldBeLessThanOrEqualTo(events.IndexOf(failed));

            // The server requeues: a new attempt gets a new Slurm name and runs where the engine now places it.
            var retry = await backend.StartAsync(Job(id, ["n3"], 2, "true", attempt: 1), default);
            await PollUntilAsync(backend, events, e => e.Count(x => x.JobId == id && x.Kind == BackendEventKind.Finished) == 1, Short);
            CountInSlurm(SlurmJobName.Format("gpuc-", id, 1)).ShouldBe(1);
            backend.SlurmJobIdOf(id)?.ToString(CultureInfo.InvariantCulture).ShouldBe(retry.ExternalId);
        }
        finally
        {
            await LocalSlurm.ResumeAsync("n2");
        }

        await PollUntilAsync(backend, events, e => e.Any(x => x.Kind == BackendEventKind.NodeUp && x.Node == "n2"), Short);
    }

    [SlurmFact]
    public async Task OperatorDrain_DrainsInSlurm()
    {
        await using var backend = Backend();
        await backend.DiscoverAsync(default);
        try
        {
            await backend.DrainNodeAsync("n4", "maintenance by test", default);
            var events = await PollUntilAsync(backend, [], e => e.Any(x => x.Kind == BackendEventKind.NodeDraining && x.Node == "n4"), Short);
            events.Single(x => x.Node == "n4").Message!.ShouldContain("gpuc: maintenance by test");
            (await backend.DiscoverAsync(default)).Nodes.Single(n => n.Name == "n4").State.ShouldBe("draining");
        }
        finally
        {
            await backend.ResumeNodeAsync("n4", default);
        }
    }

    [SlurmFact]
    public async Task ControllerStoppedAndRestartedMidRun_NothingLostOrDoubled()
    {
        await using var backend = Backend();
        var reconciler = new SlurmReconciler(backend);
        var before = new[] { NextId(), NextId(), NextId() };
        var during = NextId();
        var handles = new Dictionary<long, BackendHandle>();
        foreach (var id in before)
        {
            handles[id] = await backend.StartAsync(Job(id, ["n1"], 1, "sleep 12"), default);
        }

        var events = await PollUntilAsync(backend, [], e => before.All(id => e.Has(id, BackendEventKind.Started)), Short);
        await LocalSlurm.StopControllerAsync();
        try
        {
            // Down: polls report nothing (no guessed state), submission fails transiently, reconciliation says so.
            (await backend.PollAsync(default)).ShouldBeEmpty();
            backend.Health.Available.ShouldBeFalse();
            var err = await Should.ThrowAsync<SlurmException>(() => backend.StartAsync(Job(during, ["n1"], 1, "sleep 1"), default));
            err.IsTransient.ShouldBeTrue();
            await Task.Delay(2500);
            var down = await reconciler.ReconcileAsync([], default);
            down.SlurmReachable.ShouldBeFalse();
            down.Discrepancies.ShouldContain(d => d.Kind == DiscrepancyKind.ControllerUnreachable);
        }
        finally
        {
            await LocalSlurm.StartControllerAsync();
        }

        // Back: the retried submission goes through once; everything catches up.
        await Task.Delay(2500); // past the back-off
        handles[during] = await backend.StartAsync(Job(during, ["n1"], 1, "sleep 1"), default);
        (await backend.StartAsync(Job(during, ["n1"], 1, "sleep 1"), default)).ShouldBe(handles[during]);
        var all = before.Append(during).ToArray();
        await PollUntilAsync(backend, events, e => all.All(e.Ended), TimeSpan.FromSeconds(90));

        foreach (var id in all)
        {
            events.Count(e => e.JobId == id && e.Kind == BackendEventKind.Started).ShouldBe(1, $"job {id}");
            events.Count(e => e.JobId == id && e.Kind == BackendEventKind.Finished).ShouldBe(1, $"job {id}: {string.Join("; ", events.Where(x => x.JobId == id).Select(Describe))}");
            CountInSlurm(SlurmJobName.Format("gpuc-", id, 0)).ShouldBe(1, $"job {id}");
        }

        var after = await reconciler.ReconcileAsync([], default);
        after.SlurmReachable.ShouldBeTrue();
        after.Discrepancies.ShouldNotContain(d => d.JobId.HasValue && all.Contains(d.JobId.Value));
        backend.Health.Outages.ShouldBeGreaterThanOrEqualTo(1);
    }

    [SlurmFact]
    public async Task IdempotentSubmit_AfterCrashBetweenSbatchAndSavingTheId()
    {
        var id = NextId();
        var job = Job(id, ["n4"], 1, "sleep 5");
        string first;
        await using (var crashed = Backend())
        {
            first = (await crashed.StartAsync(job, default)).ExternalId; // the server dies before saving this
        }

        await using var restarted = Backend();
        var again = await restarted.StartAsync(job, default);

        again.ExternalId.ShouldBe(first);
        CountInSlurm(SlurmJobName.Format("gpuc-", id, 0)).ShouldBe(1);

        // sbatch reached slurmctld but its answer was lost (timeout): the retry finds the job by name.
        var id2 = NextId();
        var lossy = new AnswerLosingRunner(new ProcessSlurmCommandRunner());
        await using var b2 = Backend(runner: lossy);
        (await Should.ThrowAsync<SlurmException>(() => b2.StartAsync(Job(id2, ["n4"], 1, "sleep 1"), default))).IsTransient.ShouldBeTrue();
        var h2 = await b2.StartAsync(Job(id2, ["n4"], 1, "sleep 1"), default);
        CountInSlurm(SlurmJobName.Format("gpuc-", id2, 0)).ShouldBe(1);
        h2.ExternalId.ShouldBe(lossy.LostId);

        var events = await PollUntilAsync(restarted, [], e => e.Ended(id), Short);
        events.Count(e => e.JobId == id && e.Kind == BackendEventKind.Finished).ShouldBe(1);
    }

    [SlurmFact]
    public async Task Accounting_RuntimeTimesGpus_EqualsSacct()
    {
        await using var backend = Backend();
        var id = NextId();
        var handle = await backend.StartAsync(Job(id, ["n1"], 2, "sleep 4"), default);
        var events = await PollUntilAsync(backend, [], e => e.Ended(id), Short);

        var started = events.Single(e => e.JobId == id && e.Kind == BackendEventKind.Started).Time;
        var finished = events.Single(e => e.JobId == id && e.Kind == BackendEventKind.Finished).Time;
        var gpuSeconds = (finished - started).TotalSeconds * 2;
        var acct = SlurmOutputParser.ParseSacct(LocalSlurm.Run("sacct", "-n", "-X", "-P", "-j", handle.ExternalId, "--format=" + SlurmOutputParser.SacctFormat).Output)
            .Rows.ShouldHaveSingleItem();

        (finished - started).TotalSeconds.ShouldBeGreaterThanOrEqualTo(4);
        gpuSeconds.ShouldBe((double)(acct.ElapsedSeconds!.Value * acct.Gpus!.Value));
        started.ShouldBe(acct.Start!.Value);
        finished.ShouldBe(acct.End!.Value);
    }

    [SlurmFact]
    public async Task Reconciler_ReportsUnknownJobNamedLikeOurs_AndLostJob()
    {
        await using var backend = Backend();
        var reconciler = new SlurmReconciler(backend);
        var stray = NextId();
        var lost = NextId();
        var (code, outp) = LocalSlurm.Run("sbatch", "--parsable", "-J", SlurmJobName.Format("gpuc-", stray, 0), "-H", "--gpus=1", "-o", "/dev/null", "--wrap=true");
        code.ShouldBe(0, outp);
        try
        {
            var report = await reconciler.ReconcileAsync(
                [new ExpectedJob(lost, 0, ExpectedJobState.Running, 999_999_999, TimeProvider.System.GetUtcNow().AddMinutes(-5), ["n1"])], default);

            report.SlurmReachable.ShouldBeTrue();
            report.Discrepancies.ShouldContain(d => d.Kind == DiscrepancyKind.UnknownInSlurm && d.JobId == stray);
            report.Discrepancies.ShouldContain(d => d.Kind == DiscrepancyKind.LostInSlurm && d.JobId == lost);
            reconciler.Recent.ShouldNotBeEmpty();
        }
        finally
        {
            LocalSlurm.Run("scancel", outp.Trim());
        }
    }

    /// <summary>Runs the real tools, but loses the answer of the first sbatch (as if the server crashed or timed out).</summary>
    private sealed class AnswerLosingRunner(ISlurmCommandRunner inner) : ISlurmCommandRunner
    {
        private bool _lost;

        public string? LostId { get; private set; }

        public async Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, TimeSpan timeout, CancellationToken cancellationToken)
        {
            var r = await inner.RunAsync(tool, args, stdin, timeout, cancellationToken);
            if (tool == "sbatch" && !_lost)
            {
                _lost = true;
                LostId = r.Stdout.Trim();
                return new SlurmCommandResult(-1, "", "", timeout, TimedOut: true);
            }

            return r;
        }
    }
}

/// <summary>Walltime kill takes a minute (Slurm's limits are in minutes): its own collection, so it runs beside the others.</summary>
[Collection("slurm-walltime")]
public class SlurmWalltimeTests
{
    public SlurmWalltimeTests() => LocalSlurm.Require();

    [SlurmFact]
    public async Task Walltime_JobPastItsLimit_IsKilledAndReported()
    {
        await using var backend = Backend();
        var id = NextId();
        await backend.StartAsync(Job(id, ["n4"], 1, "sleep 600", walltime: TimeSpan.FromSeconds(30)), default);

        var events = await PollUntilAsync(backend, [], e => e.Ended(id), TimeSpan.FromSeconds(180));

        var end = events.Single(e => e.JobId == id && e.Kind != BackendEventKind.Started);
        end.Kind.ShouldBe(BackendEventKind.WalltimeExceeded, Describe(end));
        var start = events.Single(e => e.JobId == id && e.Kind == BackendEventKind.Started).Time;
        (end.Time - start).ShouldBeGreaterThanOrEqualTo(TimeSpan.FromSeconds(60));
    }
}
