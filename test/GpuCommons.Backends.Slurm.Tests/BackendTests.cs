using Microsoft.Extensions.Time.Testing;
using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

public class BackendTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 18, 0, 0, TimeSpan.Zero));
    private readonly FakeSlurm _slurm = new();

    private SlurmBackend CreateSut(SlurmBackendOptions? options = null) => new(options, _slurm, _time);

    [Fact]
    public async Task StartAsync_Twice_SubmitsOnce()
    {
        await using var b = CreateSut();
        var job = Jobs.Make(42, ["n1"], 1);

        var h1 = await b.StartAsync(job, default);
        var h2 = await b.StartAsync(job, default);

        h1.ShouldBe(h2);
        h1.ExternalId.ShouldBe("1000");
        _slurm.Count("sbatch").ShouldBe(1);
        _slurm.Calls.Single(c => c.Tool == "sbatch").Stdin!.ShouldContain("exec '/bin/true'");
    }

    [Fact]
    public async Task StartAsync_ContainerJob_SbatchGetsPyxisOptions_OrSlurmsContainerBundle_WorkdirNotCheckedOnTheHost()
    {
        var job = Jobs.Make(45, ["n1"], 1, command: ["python", "x.py"]) with
        {
            Container = new ContainerSpec("registry.example.org/ml/torch:2", [new ContainerMount("/data/set", "/data", true)]),
            WorkingDirectory = "/workspace",
        };
        await using (var pyxis = CreateSut(new SlurmBackendOptions { ContainerMode = SlurmContainerMode.Pyxis, CheckWorkingDirectory = true }))
        {
            await pyxis.StartAsync(job, default);
        }

        var script = _slurm.Calls.Single(c => c.Tool == "sbatch").Stdin!;
        script.ShouldContain("srun --export=ALL --ntasks-per-node=1 --kill-on-bad-exit=1 --gpus-per-node=1 --container-image='registry.example.org#ml/torch:2' --container-mounts='/data/set:/data:ro' --container-workdir='/workspace' -- 'python' 'x.py'");
        _slurm.Calls.ShouldNotContain(c => c.Tool != "sbatch" && c.Args.Contains("/workspace")); // no host check of a container path

        // Slurm's own --container: the job runs in its own bundle beside its output, made from the image's root file system.
        var image = Directory.CreateTempSubdirectory("gpuc-image-").FullName;
        Directory.CreateDirectory(Path.Combine(image, "rootfs"));
        var ociOptions = new SlurmBackendOptions { ContainerMode = SlurmContainerMode.Oci };
        await using var oci = CreateSut(ociOptions);
        var ociJob = job with { JobId = 46, Container = new ContainerSpec(image, [new ContainerMount("/data/set", "/data", true)]), LogDirectory = Path.Combine(image, "logs") };
        await oci.StartAsync(ociJob, default);
        var bundle = SlurmSubmission.BundleDirectoryFor(ociJob, ociOptions);
        _slurm.Calls.Last(c => c.Tool == "sbatch").Args.ShouldContain("--container=" + bundle);
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(bundle, "config.json")))!;
        config["root"]!["path"]!.GetValue<string>().ShouldBe("rootfs");
        Directory.Exists(Path.Combine(bundle, "rootfs")).ShouldBeTrue();
        config["process"]!["cwd"]!.GetValue<string>().ShouldBe("/workspace");
        config["mounts"]!.AsArray().ShouldContain(m => m!["destination"]!.GetValue<string>() == "/data" && m["options"]!.AsArray().Any(o => o!.GetValue<string>() == "ro"));
        (await Should.ThrowAsync<JobStartRejectedException>(() => oci.StartAsync(ociJob with { JobId = 48, Container = new ContainerSpec("/nonexistent/bundle", []) }, default)))
            .Message.ShouldContain("not a directory");
        Directory.Delete(image, true);

        await using var none = CreateSut();
        (await Should.ThrowAsync<JobStartRejectedException>(() => none.StartAsync(job with { JobId = 47 }, default))).Message.ShouldContain("runs no container jobs");
    }

    [Fact]
    public async Task StartAsync_AfterCrashBetweenSbatchAndSave_AdoptsExistingJob()
    {
        _slurm.Squeue = "777|RUNNING|None|n1|2026-11-27T17:59:00|2026-11-27T17:59:01|N/A|gpuc-42\n";
        await using var b = CreateSut(); // a fresh process: knows nothing

        var h = await b.StartAsync(Jobs.Make(42, ["n1"], 1), default);

        h.ExternalId.ShouldBe("777");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task StartAsync_SameNameSubmittedBeforeTheJobExisted_IsNotAdopted()
    {
        // A job of an earlier database with the same id, in the queue and in accounting: not ours.
        _slurm.Squeue = "777|RUNNING|None|n1|2026-11-26T09:00:00|2026-11-26T09:00:01|N/A|gpuc-42\n";
        _slurm.Sacct = "778|COMPLETED|0:0|2026-11-26T08:00:00|2026-11-26T08:00:01|2026-11-26T08:01:01|60|n1|gres/gpu=1|gpuc-42\n";
        await using var b = CreateSut();

        var h = await b.StartAsync(Jobs.Make(42, ["n1"], 1) with { NotBefore = _time.GetUtcNow().AddMinutes(-1) }, default);

        h.ExternalId.ShouldBe("1000");
        _slurm.Count("sbatch").ShouldBe(1);
    }

    [Fact]
    public async Task StartAsync_JobOnlyInAccounting_IsAdoptedNotResubmitted()
    {
        _slurm.Sacct = "778|COMPLETED|0:0|2026-11-27T17:00:00|2026-11-27T17:00:01|2026-11-27T17:01:01|60|n1|gres/gpu=1|gpuc-43\n";
        await using var b = CreateSut();

        var h = await b.StartAsync(Jobs.Make(43, ["n1"], 1), default);

        h.ExternalId.ShouldBe("778");
        _slurm.Count("sbatch").ShouldBe(0);
        var events = await b.PollAsync(default);
        events.Select(e => e.Kind).ShouldBe([BackendEventKind.Started, BackendEventKind.Finished]);
    }

    [Fact]
    public async Task StartAsync_NewAttempt_IsSubmittedUnderNewName()
    {
        _slurm.Sacct = "778|NODE_FAIL|0:0|2026-11-27T17:00:00|2026-11-27T17:00:01|2026-11-27T17:01:01|60|n1|gres/gpu=1|gpuc-43\n";
        await using var b = CreateSut();

        var h = await b.StartAsync(Jobs.Make(43, ["n2"], 1, attempt: 1), default);

        h.ExternalId.ShouldBe("1000");
        _slurm.Calls.Single(c => c.Tool == "sbatch").Args.ShouldContain("--job-name=gpuc-43-r1");
    }

    [Fact]
    public async Task StartAsync_AgainAfterItsEndWasReported_RunsANewAttempt()
    {
        await using var b = CreateSut();
        var job = Jobs.Make(44, ["n1"], 1);
        await b.StartAsync(job, default);
        _slurm.Squeue = "1000|NODE_FAIL|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|gpuc-44\n";
        _slurm.Sacct = "1000|NODE_FAIL|0:0|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|60|n1|gres/gpu=1|gpuc-44\n";
        (await b.PollAsync(default)).Last().Kind.ShouldBe(BackendEventKind.Failed);

        var again = await b.StartAsync(job, default); // the server requeued it without counting attempts

        again.ExternalId.ShouldBe("1001");
        _slurm.Calls.Where(c => c.Tool == "sbatch").Last().Args.ShouldContain("--job-name=gpuc-44-r1");
    }

    [Fact]
    public async Task StartAsync_AfterRestart_AdoptsALiveLaterAttemptInsteadOfTheEndedFirst()
    {
        _slurm.Squeue = "900|NODE_FAIL|None|n1|2026-11-27T17:00:00|2026-11-27T17:00:01|2026-11-27T17:05:00|gpuc-45\n"
                        + "901|RUNNING|None|n2|2026-11-27T17:06:00|2026-11-27T17:06:01|N/A|gpuc-45-r1\n";
        await using var b = CreateSut();

        var h = await b.StartAsync(Jobs.Make(45, ["n2"], 1), default);

        h.ExternalId.ShouldBe("901");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task StartAsync_SbatchTimesOutButJobWasCreated_RetryAdoptsIt()
    {
        var first = true;
        _slurm.Handler = (tool, args, stdin) =>
        {
            if (tool == "sbatch" && first)
            {
                first = false;
                _slurm.Default(tool, args, stdin); // slurmctld took the job…
                return new SlurmCommandResult(-1, "", "", TimeSpan.FromSeconds(30), TimedOut: true); // …but we never heard back
            }

            return _slurm.Default(tool, args, stdin);
        };
        await using var b = CreateSut();
        var job = Jobs.Make(5, ["n1"], 1);

        var e = await Should.ThrowAsync<SlurmException>(() => b.StartAsync(job, default));
        e.IsTransient.ShouldBeTrue();
        var h = await b.StartAsync(job, default);

        h.ExternalId.ShouldBe("1000");
        _slurm.Count("sbatch").ShouldBe(1);
    }

    [Fact]
    public async Task StartAsync_ControllerDown_IsTransientAndNothingIsSubmittedTwice()
    {
        await using var b = CreateSut();
        var job = Jobs.Make(6, ["n1"], 1);
        _slurm.Down = true;

        (await Should.ThrowAsync<SlurmException>(() => b.StartAsync(job, default))).IsTransient.ShouldBeTrue();
        b.Health.Available.ShouldBeFalse();
        _slurm.Down = false;
        _time.Advance(TimeSpan.FromMinutes(1));
        await b.StartAsync(job, default);
        await b.StartAsync(job, default);

        _slurm.Squeue.Split('\n').Count(l => l.EndsWith("|gpuc-6", StringComparison.Ordinal)).ShouldBe(1);
        b.Health.Available.ShouldBeTrue();
        b.Health.Outages.ShouldBe(1);
    }

    [Fact]
    public async Task StartAsync_Refused_IsPermanent()
    {
        _slurm.Handler = (tool, args, stdin) => tool == "sbatch"
            ? new SlurmCommandResult(1, "", "sbatch: error: Batch job submission failed: Invalid node name specified", TimeSpan.Zero)
            : _slurm.Default(tool, args, stdin);
        await using var b = CreateSut();

        var e = await Should.ThrowAsync<SlurmException>(() => b.StartAsync(Jobs.Make(1, ["nosuch"], 1), default));

        e.IsTransient.ShouldBeFalse();
        e.Message.ShouldContain("Invalid node name");
    }

    [Fact]
    public async Task StartAsync_UnreadableLineNamedLikeOurs_RefusesToSubmit()
    {
        _slurm.Squeue = "garbage line mentioning gpuc-9\n";
        await using var b = CreateSut();

        var e = await Should.ThrowAsync<SlurmException>(() => b.StartAsync(Jobs.Make(9, ["n1"], 1), default));

        e.Message.ShouldContain("cannot tell");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task PollAsync_RunningThenFailed_ReportsStartAndExitCodeFromSacct()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 2), default);
        _slurm.Squeue = "1000|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:05:05|gpuc-1\n";

        var e1 = await b.PollAsync(default);
        e1.ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.Started);
        e1[0].Time.ShouldBe(new DateTimeOffset(2026, 11, 27, 18, 0, 5, TimeSpan.Zero));
        (await b.PollAsync(default)).ShouldBeEmpty();

        _slurm.Squeue = "1000|FAILED|NonZeroExitCode|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|gpuc-1\n";
        _slurm.Sacct = "1000|FAILED|3:0|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|60|n1|gres/gpu=2|gpuc-1\n";
        var e2 = await b.PollAsync(default);

        var end = e2.ShouldHaveSingleItem();
        end.Kind.ShouldBe(BackendEventKind.Failed);
        end.ExitCode.ShouldBe(3);
        end.Time.ShouldBe(new DateTimeOffset(2026, 11, 27, 18, 1, 5, TimeSpan.Zero));
        (await b.PollAsync(default)).ShouldBeEmpty();
    }

    [Fact]
    public async Task PollAsync_CancelledBeforeItRan_StartsAsItEnds_SoItsRunLastsNoTime()
    {
        // Cancelled while pending (or held): Slurm has no start. The run is reported as starting when it ended, so that
        // its charge is 0 s as in sacct, not the time since the engine placed it.
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 2), default);
        _slurm.Squeue = "1000|PENDING|JobHeldUser||2026-11-27T18:00:00|None|None|gpuc-1\n";
        (await b.PollAsync(default)).ShouldBeEmpty();

        _slurm.Squeue = "";
        _slurm.Sacct = "1000|CANCELLED by 0|0:0|2026-11-27T18:00:00|None|2026-11-27T18:00:02|0|None assigned|gres/gpu=2|gpuc-1\n";
        var events = await b.PollAsync(default);

        events.Select(e => e.Kind).ShouldBe([BackendEventKind.Started, BackendEventKind.Cancelled]);
        var ended = new DateTimeOffset(2026, 11, 27, 18, 0, 2, TimeSpan.Zero);
        events[0].Time.ShouldBe(ended);
        events[1].Time.ShouldBe(ended);
        (await b.PollAsync(default)).ShouldBeEmpty();
    }

    [Fact]
    public async Task PollAsync_EndedButAccountingLags_TakesExitCodeFromController()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1), default);
        _slurm.Squeue = "1000|TIMEOUT|TimeLimit|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|gpuc-1\n";
        _slurm.Sacct = "1000|RUNNING|0:0|2026-11-27T18:00:00|2026-11-27T18:00:05|Unknown|60|n1|gres/gpu=1|gpuc-1\n";
        var scontrol = "JobId=1000 JobName=gpuc-1 JobState=TIMEOUT Reason=TimeLimit ExitCode=0:15 SubmitTime=2026-11-27T18:00:00 StartTime=2026-11-27T18:00:05 EndTime=2026-11-27T18:01:05 NodeList=n1\n";
        _slurm.Handler = (tool, args, stdin) => tool == "scontrol" ? FakeSlurm.Ok(scontrol) : _slurm.Default(tool, args, stdin);

        var events = await b.PollAsync(default);

        events.Select(e => e.Kind).ShouldBe([BackendEventKind.Started, BackendEventKind.WalltimeExceeded]);
        events[1].ExitCode.ShouldBe(143);
    }

    [Fact]
    public async Task PollAsync_EndedWithoutAnyExitCode_WaitsInsteadOfGuessing()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1), default);
        _slurm.Squeue = "1000|COMPLETED|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|gpuc-1\n";
        _slurm.Handler = (tool, args, stdin) => tool is "sacct" ? new SlurmCommandResult(1, "", "sacct: error: Problem talking to the database: Connection refused", TimeSpan.Zero)
            : tool is "scontrol" ? new SlurmCommandResult(1, "", "slurm_load_jobs error: Invalid job id specified", TimeSpan.Zero)
            : _slurm.Default(tool, args, stdin);

        var events = await b.PollAsync(default);

        events.Select(e => e.Kind).ShouldBe([BackendEventKind.Started]); // the end waits for a record with an exit code
    }

    [Fact]
    public async Task PollAsync_JobInNeitherSqueueNorSacct_IsLostAfterTwoPolls()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1), default);
        _slurm.Squeue = "";

        (await b.PollAsync(default)).ShouldBeEmpty();
        var events = await b.PollAsync(default);

        // Never seen running: it starts as it is lost, so its run is charged nothing.
        events.Select(e => e.Kind).ShouldBe([BackendEventKind.Started, BackendEventKind.Lost]);
        events[0].Time.ShouldBe(events[1].Time);
        (await b.PollAsync(default)).ShouldBeEmpty();
    }

    [Fact]
    public async Task PollAsync_RunningJobThatVanishes_IsLostWithTheStartItHad()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1), default);
        _slurm.Squeue = "1000|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:05:05|gpuc-1\n";
        (await b.PollAsync(default)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.Started);

        _slurm.Squeue = "";
        (await b.PollAsync(default)).ShouldBeEmpty();
        (await b.PollAsync(default)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.Lost);
    }

    [Fact]
    public async Task PollAsync_MalformedQueue_NeverDeclaresLost()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1), default);
        _slurm.Squeue = "1000|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|NEW_COLUMN|2026-11-27T18:05:05|gpuc-1\n";

        for (var i = 0; i < 5; i++)
        {
            (await b.PollAsync(default)).ShouldBeEmpty();
        }

        b.LastSnapshot!.Errors.ShouldNotBeEmpty();
    }

    [Fact]
    public async Task PollAsync_ControllerDown_BacksOffAndCatchesUp()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1), default);
        _slurm.Down = true;

        (await b.PollAsync(default)).ShouldBeEmpty();
        var calls = _slurm.Calls.Count;
        (await b.PollAsync(default)).ShouldBeEmpty();
        _slurm.Calls.Count.ShouldBe(calls); // backing off: Slurm is not asked again yet
        _time.Advance(TimeSpan.FromSeconds(2));
        (await b.PollAsync(default)).ShouldBeEmpty();
        _slurm.Calls.Count.ShouldBeGreaterThan(calls);

        _slurm.Down = false;
        _slurm.Squeue = "1000|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:05:05|gpuc-1\n";
        _time.Advance(TimeSpan.FromMinutes(1));
        (await b.PollAsync(default)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.Started);
    }

    [Fact]
    public async Task PollAsync_NodeDownAndDrained_RaiseNodeEvents()
    {
        await using var b = CreateSut();
        await b.DiscoverAsync(default);
        _slurm.Sinfo = "n1|gpu*|down|32|16000|gpu:8|(null)|bad gpu\nn2|gpu*|draining|32|16000|gpu:8|(null)|gpuc: maintenance\n";

        var events = await b.PollAsync(default);

        events.Select(e => (e.Kind, e.Node)).ShouldBe([(BackendEventKind.NodeDown, "n1"), (BackendEventKind.NodeDraining, "n2")]);
        events[0].Message!.ShouldContain("bad gpu");
        _slurm.Sinfo = "n1|gpu*|unknown|32|16000|gpu:8|(null)|none\nn2|gpu*|idle|32|16000|gpu:8|(null)|none\n";
        var back = await b.PollAsync(default);
        back.ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.NodeUp); // n1 "unknown" is no news
    }

    [Fact]
    public async Task PollAsync_NodeFail_ReportsFailedWithNode()
    {
        await using var b = CreateSut();
        await b.DiscoverAsync(default);
        await b.StartAsync(Jobs.Make(1, ["n1", "n2"], 8), default);
        _slurm.Sinfo = "n1|gpu*|idle|32|16000|gpu:8|(null)|none\nn2|gpu*|down|32|16000|gpu:8|(null)|dead\n";
        _slurm.Squeue = "1000|NODE_FAIL|None|n[1-2]|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|gpuc-1\n";
        _slurm.Sacct = "1000|NODE_FAIL|0:0|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:01:05|60|n[1-2]|gres/gpu=16|gpuc-1\n";

        var events = await b.PollAsync(default);

        events.Select(e => e.Kind).ShouldBe([BackendEventKind.NodeDown, BackendEventKind.Started, BackendEventKind.Failed]);
        events[2].Node.ShouldBe("n2");
    }

    [Fact]
    public async Task CancelAsync_WithGrace_SignalsThenKillsAfterGrace()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1, checkpointable: true), default);
        _slurm.Squeue = "1000|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:05:05|gpuc-1\n";
        await b.PollAsync(default);

        await b.CancelAsync(1, TimeSpan.FromSeconds(30), default);
        var signal = _slurm.Calls.Single(c => c.Tool == "scancel");
        signal.Args.ShouldBe(["--signal=TERM", "--full", "1000"]);
        await b.PollAsync(default);
        _slurm.Count("scancel").ShouldBe(1);
        _time.Advance(TimeSpan.FromSeconds(31));
        await b.PollAsync(default);

        _slurm.Calls.Where(c => c.Tool == "scancel").Last().Args.ShouldBe(["1000"]);
    }

    [Fact]
    public async Task CancelAsync_ExitAfterSignal_IsReportedCancelled()
    {
        await using var b = CreateSut();
        await b.StartAsync(Jobs.Make(1, ["n1"], 1), default);
        _slurm.Squeue = "1000|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:05:05|gpuc-1\n";
        await b.PollAsync(default);
        await b.CancelAsync(1, TimeSpan.FromSeconds(30), default);
        _slurm.Squeue = "1000|FAILED|NonZeroExitCode|n1|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:00:10|gpuc-1\n";
        _slurm.Sacct = "1000|FAILED|143:0|2026-11-27T18:00:00|2026-11-27T18:00:05|2026-11-27T18:00:10|5|n1|gres/gpu=1|gpuc-1\n";

        var e = (await b.PollAsync(default)).ShouldHaveSingleItem();

        e.Kind.ShouldBe(BackendEventKind.Cancelled);
        e.ExitCode.ShouldBe(143);
    }

    [Fact]
    public async Task CancelAsync_UnknownToThisProcess_CancelsByIndex()
    {
        _slurm.Squeue = "55|PENDING|Resources||2026-11-27T18:00:00|N/A|N/A|gpuc-9\n";
        await using var b = CreateSut();

        await b.CancelAsync(9, TimeSpan.Zero, default);

        _slurm.Calls.Single(c => c.Tool == "scancel").Args.ShouldBe(["55"]);
    }

    [Fact]
    public async Task ReattachAsync_KnownAndUnknown()
    {
        _slurm.Squeue = "55|RUNNING|None|n1|2026-11-27T18:00:00|2026-11-27T18:00:01|N/A|gpuc-9\n";
        await using var b = CreateSut();

        (await b.ReattachAsync(9, new BackendHandle(9, "55", null, null), default)).ShouldBeTrue();
        (await b.ReattachAsync(10, new BackendHandle(10, "56", null, null), default)).ShouldBeFalse();
        (await b.ReattachAsync(11, new BackendHandle(11, "55", null, null), default)).ShouldBeFalse(); // someone else's id
        // Its start once more, at Slurm's start time: the server that started it may have died before hearing of it.
        var started = (await b.PollAsync(default)).ShouldHaveSingleItem();
        started.Kind.ShouldBe(BackendEventKind.Started);
        started.Time.ShouldBe(DateTimeOffset.Parse("2026-11-27T18:00:01Z", System.Globalization.CultureInfo.InvariantCulture));
        (await b.PollAsync(default)).ShouldBeEmpty();
        (await b.StartAsync(Jobs.Make(9, ["n1"], 1), default)).ExternalId.ShouldBe("55");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task DrainNodeAsync_CallsScontrolUpdate()
    {
        await using var b = CreateSut();

        await b.DrainNodeAsync("n3", "bad fan", default);
        await b.ResumeNodeAsync("n3", default);

        _slurm.Calls[0].Args.ShouldBe(["update", "nodename=n3", "state=drain", "reason=gpuc: bad fan"]);
        _slurm.Calls[1].Args.ShouldBe(["update", "nodename=n3", "state=resume"]);
    }

    [Fact]
    public async Task DiscoverAsync_CapturedSinfo_BuildsFleet()
    {
        _slurm.Sinfo = Fixture.Read("sinfo-nodes.txt");
        await using var b = CreateSut();

        var fleet = await b.DiscoverAsync(default);

        fleet.Source.ShouldBe("slurm");
        fleet.Nodes.Count.ShouldBe(4);
        fleet.Nodes.Select(n => n.State).ShouldBe(["up", "down", "up", "draining"]);
        fleet.Nodes[0].Gpus.Count.ShouldBe(8);
        fleet.Nodes[1].Reason.ShouldBe("bad gpu 3");
        var core = SlurmFleet.ToFleet(fleet);
        core.Nodes.Count.ShouldBe(4);
        core.Partitions.ShouldHaveSingleItem().TotalGpus.ShouldBe(32);
    }
}
