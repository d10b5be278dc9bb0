using Microsoft.Extensions.Time.Testing;
using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

/// <summary>Jobs that run as their user's own account: the account switch, the project account, the spool, refusals.</summary>
public sealed class IdentityTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 27, 18, 0, 0, TimeSpan.Zero));
    private readonly FakeSlurm _slurm = new();
    private readonly string _spool = Path.Combine(Path.GetTempPath(), "gpuc-spool-unit-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        if (Directory.Exists(_spool))
        {
            Directory.Delete(_spool, true);
        }
    }

    private SlurmBackendOptions Options(SlurmSubmitMode mode = SlurmSubmitMode.Runuser) => new() { SubmitAs = mode, JobSpoolDirectory = _spool };

    private SlurmBackend CreateSut(SlurmBackendOptions? options = null) => new(options ?? Options(), _slurm, _time);

    private static BackendJob AsAlice(long id, string? workingDirectory = null) =>
        Jobs.Make(id, ["n1"], 1) with { RunAs = Jobs.Alice, WorkingDirectory = workingDirectory };

    private (string Tool, IReadOnlyList<string> Args, string? As) Call(string tool) =>
        _slurm.Calls.Select(c => FakeSlurm.Unwrap(c.Tool, c.Args)).Single(c => c.Tool == tool);

    [Fact]
    public void Submission_WithIdentity_ChargesProjectAccount_WritesToTheUsersSpool_AndExportsOnlyTheJobsEnvironment()
    {
        var env = new Dictionary<string, string> { ["GPUC_PROJECT"] = "proj", ["FOO"] = "bar" };
        var job = Jobs.Make(42, ["n1"], 1, env: env) with { RunAs = Jobs.Alice };

        var s = SlurmSubmission.Create(job, Options(), "gpu");

        s.Arguments.ShouldContain("--account=proj");
        s.Arguments.ShouldContain("--export=NONE");
        s.Arguments.ShouldContain($"--output={_spool}/alice/42/gpuc-42.out");
        s.Arguments.ShouldContain($"--error={_spool}/alice/42/gpuc-42.err");
        s.Arguments.ShouldContain($"--chdir={_spool}/alice/42"); // never the server's directory
        s.StdoutPath.ShouldBe($"{_spool}/alice/42/gpuc-42.out");
        s.Script.ShouldContain("export HOME='/home/alice'\n");
        s.Script.ShouldContain("export USER='alice'\n");
        s.Script.ShouldContain("export GPUC_PROJECT='proj'\n");
        s.Script.ShouldContain("export FOO='bar'\n");
        s.Script.Split('\n').Where(l => l.StartsWith("export ", StringComparison.Ordinal)).Select(l => l[7..l.IndexOf('=', StringComparison.Ordinal)])
            .ShouldBe(["PATH", "GPUC_JOB_ID", "HOME", "USER", "LOGNAME", "FOO", "GPUC_PROJECT"], ignoreOrder: true);
    }

    [Fact]
    public void Submission_WithoutIdentity_KeepsTheServersLogDirectory_AndAFixedAccountWins()
    {
        var job = Jobs.Make(7, ["n1"], 1, env: new Dictionary<string, string>());
        var o = Options();
        o.Account = "center";

        var s = SlurmSubmission.Create(job, o, null);

        s.Arguments.ShouldContain("--account=center");
        s.Arguments.ShouldContain("--output=/tmp/gpuc-test-logs/gpuc-7.out");
        s.Arguments.ShouldNotContain(a => a.StartsWith("--chdir", StringComparison.Ordinal));
        s.Script.ShouldNotContain("export HOME");
    }

    [Fact]
    public void Submission_WorkingDirectory_TheScriptFailsRatherThanRunInTmp()
    {
        var s = SlurmSubmission.Create(AsAlice(1, "/data/alice/run 1"), Options(), null);

        s.Arguments.ShouldContain("--chdir=/data/alice/run 1");
        s.Script.ShouldContain("cd -- '/data/alice/run 1' || exit 111\nexec ");
    }

    [Theory]
    [InlineData("proj", "proj")]
    [InlineData("ml-lab_2", "ml-lab_2")]
    [InlineData("Demo", "demo-")]
    [InlineData("AI Lab", "ai_lab-")]
    [InlineData("서울대학교", "p-")]
    [InlineData("2024-cohort", "p2024-cohort-")]
    [InlineData("a,b|c=d", "a_b_c_d-")]
    public void AccountName_KeepsSlurmsCharacters_AndHashesAnythingChanged(string project, string expectedStart)
    {
        var name = SlurmAccountName.FromProject(project);

        name.ShouldStartWith(expectedStart);
        name.ShouldMatch("^[a-z][a-z0-9_-]*$");
        if (expectedStart.EndsWith('-'))
        {
            name.Length.ShouldBe(expectedStart.Length + 8);
        }
        else
        {
            name.ShouldBe(expectedStart);
        }
    }

    [Fact]
    public void AccountName_DistinctProjects_NeverShareAnAccount()
    {
        string[] projects = ["demo", "Demo", "DEMO", "de mo", "de-mo", "서울대학교", "서울대", "a b", "a  b", "a_b"];
        projects.Select(p => SlurmAccountName.FromProject(p)).Distinct().Count().ShouldBe(projects.Length);
        SlurmAccountName.FromProject("x", "gpuc_").ShouldBe("gpuc_x");
        SlurmAccountName.FromProject(new string('a', 100)).Length.ShouldBeLessThanOrEqualTo(49);
    }

    [Theory]
    [InlineData("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: Invalid partition name specified", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: Invalid qos specification", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: Invalid user id", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: User's group not permitted to use this partition", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: Access/permission denied", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: Pathname of a file, directory or other parameter too long", SlurmFailureKind.JobRejected)]
    [InlineData("runuser: user gpucs-x does not exist or the user entry does not contain all the required fields", SlurmFailureKind.JobRejected)]
    [InlineData("sudo: unknown user gpucs-x", SlurmFailureKind.JobRejected)]
    [InlineData("runuser: group gpucs-p does not exist", SlurmFailureKind.JobRejected)]
    [InlineData("sudo: unknown group gpucs-p", SlurmFailureKind.JobRejected)]
    [InlineData("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", SlurmFailureKind.Transient)]
    [InlineData("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", SlurmFailureKind.Transient)]
    [InlineData("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying", SlurmFailureKind.Transient)]
    [InlineData("sbatch: error: slurm_receive_msg: Zero Bytes were transmitted or received", SlurmFailureKind.Transient)]
    [InlineData("sbatch: error: Batch job submission failed: Invalid node name specified", SlurmFailureKind.Refused)]
    [InlineData("sbatch: error: Batch job submission failed: Requested node configuration is not available", SlurmFailureKind.Refused)]
    [InlineData("sudo: a password is required", SlurmFailureKind.Refused)]
    [InlineData("gpuc is not in the sudoers file.  This incident will be reported.", SlurmFailureKind.Refused)]
    public void Classifier_SbatchMessages(string stderr, SlurmFailureKind expected) => SlurmFailures.Classify(stderr).ShouldBe(expected);

    [Fact]
    public void Classifier_TimeoutAndKilled_AreTransient()
    {
        SlurmFailures.Classify(new SlurmCommandResult(-1, "", "", TimeSpan.FromSeconds(30), TimedOut: true)).ShouldBe(SlurmFailureKind.Transient);
        SlurmFailures.Classify("", 137).ShouldBe(SlurmFailureKind.Transient);
    }

    [Fact]
    public async Task Start_AsRoot_SubmitsThroughRunuser_InAUserOwnedSpool_AndEnsuresTheAssociationOnce()
    {
        await using var b = CreateSut();

        var h = await b.StartAsync(AsAlice(42), default);
        await b.StartAsync(AsAlice(43), default);

        var sbatch = _slurm.Calls.First(c => FakeSlurm.Unwrap(c.Tool, c.Args).Tool == "sbatch");
        sbatch.Tool.ShouldBe("runuser");
        sbatch.Args.Take(6).ShouldBe(["-u", "alice", "-g", "gpuc-proj", "--", "sbatch"]); // the project's group is the job's primary group
        sbatch.Args.ShouldContain("--account=proj");
        sbatch.Args.ShouldContain("--export=NONE");
        h.StdoutPath.ShouldBe($"{_spool}/alice/42/gpuc-42.out");
        var dir = Path.Combine(_spool, "alice", "42");
        Directory.Exists(dir).ShouldBeTrue();
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        File.GetUnixFileMode(dir).ShouldBe((UnixFileMode)Convert.ToInt32("750", 8));
        File.GetUnixFileMode(Path.Combine(_spool, "alice")).ShouldBe((UnixFileMode)Convert.ToInt32("711", 8));
        _slurm.Calls.ShouldContain(c => c.Tool == "chown" && c.Args.SequenceEqual(new[] { "-h", "1500:2500", dir }));
        var sacctmgr = _slurm.Calls.Where(c => c.Tool == "sacctmgr").Select(c => string.Join(' ', c.Args)).ToList();
        sacctmgr.ShouldContain("-i add account proj");
        sacctmgr.ShouldContain("-i add user alice account=proj");
        sacctmgr.Count(a => a.Contains(" add ", StringComparison.Ordinal)).ShouldBe(2); // once per (account, user)
    }

    [Fact]
    public async Task Start_AssociationAlreadyThere_AddsNothing_AndManageAssociationsOffAsksNothing()
    {
        _slurm.Handler = (tool, args, stdin) => tool == "sacctmgr" && args.Contains("list") ? FakeSlurm.Ok("proj|alice\n") : _slurm.Default(tool, args, stdin);
        await using (var b = CreateSut())
        {
            await b.StartAsync(AsAlice(1), default);
        }

        _slurm.Calls.Count(c => c.Tool == "sacctmgr").ShouldBe(1);

        var o = Options();
        o.ManageAssociations = false;
        await using var b2 = CreateSut(o);
        await b2.StartAsync(AsAlice(2), default);
        _slurm.Calls.Count(c => c.Tool == "sacctmgr").ShouldBe(1);
    }

    [Fact]
    public async Task Start_SacctmgrRefuses_FailsWithAClearReason_NotRejected()
    {
        _slurm.Handler = (tool, args, stdin) => tool == "sacctmgr" && args.Contains("add")
            ? new SlurmCommandResult(1, "", " Your user doesn't have privilege to perform this action", TimeSpan.Zero)
            : _slurm.Default(tool, args, stdin);
        await using var b = CreateSut();

        var e = await Should.ThrowAsync<SlurmException>(() => b.StartAsync(AsAlice(1), default));

        e.Message.ShouldContain("cannot create the Slurm association");
        e.Message.ShouldContain("ManageAssociations=false");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task Start_WithSudo_SubmitsThroughSudo_AndTheUserMakesTheSpool()
    {
        _slurm.Handler = (tool, args, stdin) => tool == "stat"
            ? FakeSlurm.Ok(string.Join("", args.Skip(2).Select(p => $"1500|directory|{p}\n")))
            : _slurm.Default(tool, args, stdin);
        await using var b = CreateSut(Options(SlurmSubmitMode.Sudo));

        await b.StartAsync(AsAlice(42), default);

        var sbatch = _slurm.Calls.Single(c => FakeSlurm.Unwrap(c.Tool, c.Args).Tool == "sbatch");
        sbatch.Tool.ShouldBe("sudo");
        sbatch.Args.Take(7).ShouldBe(["-n", "-u", "alice", "-g", "gpuc-proj", "--", "sbatch"]);
        _slurm.Calls.Where(c => c.Tool == "sudo" && c.Args.Contains("install")).Select(c => string.Join(' ', c.Args.Skip(c.Args.ToList().IndexOf("--") + 1)))
            .ShouldBe([$"install -d -m 0750 -g 2500 {_spool}/alice/42", $"install -d -m 0711 {_spool}/alice"]);
        _slurm.Calls.ShouldNotContain(c => c.Tool == "chown");
    }

    [Fact]
    public async Task Start_WithSudo_SpoolOwnedBySomeoneElse_IsNotUsed()
    {
        _slurm.Handler = (tool, args, stdin) => tool == "stat"
            ? FakeSlurm.Ok(string.Join("", args.Skip(2).Select(p => $"1666|directory|{p}\n")))
            : _slurm.Default(tool, args, stdin);
        await using var b = CreateSut(Options(SlurmSubmitMode.Sudo));

        (await Should.ThrowAsync<SlurmException>(() => b.StartAsync(AsAlice(42), default))).Message.ShouldContain("not directories owned by uid 1500");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task Start_AsUidZero_IsRejected_WithoutRunningAnything()
    {
        await using var b = CreateSut();

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => b.StartAsync(Jobs.Make(1, ["n1"], 1) with
        {
            RunAs = new PosixIdentity("toor", 0, "proj", 2500, "/root"),
        }, default));

        e.Message.ShouldContain("uid 0");
        _slurm.Calls.ShouldBeEmpty();
    }

    [Fact]
    public async Task Start_AsTheServersOwnAccount_IsRejected()
    {
        await using var b = CreateSut();
        var me = SlurmUserSwitch.ServerUid;

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => b.StartAsync(Jobs.Make(1, ["n1"], 1) with
        {
            RunAs = new PosixIdentity("someone", me, "proj", 2500, "/home/someone"),
        }, default));

        e.Message.ShouldContain(me == 0 ? "uid 0" : "server's own account");
    }

    [Fact]
    public async Task Start_LoginUnknownOnTheSubmitHost_IsRejected()
    {
        await using var b = CreateSut();

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => b.StartAsync(Jobs.Make(1, ["n1"], 1) with
        {
            RunAs = new PosixIdentity("mallory", 1777, "proj", 2500, "/home/mallory"),
        }, default));

        e.Message.ShouldContain("no such account exists");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task Start_LoginWithAnotherUid_IsRejected()
    {
        await using var b = CreateSut();

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => b.StartAsync(Jobs.Make(1, ["n1"], 1) with
        {
            RunAs = Jobs.Alice with { Uid = 1999 },
        }, default));

        e.Message.ShouldContain("has uid 1500");
    }

    [Fact]
    public async Task Start_WorkingDirectoryTheUserCannotEnter_IsRejected_CheckedAsTheUser()
    {
        _slurm.Handler = (tool, args, stdin) => FakeSlurm.Unwrap(tool, args).Tool == "test" ? new SlurmCommandResult(1, "", "", TimeSpan.Zero) : _slurm.Default(tool, args, stdin);
        await using var b = CreateSut();

        var e = await Should.ThrowAsync<JobStartRejectedException>(() => b.StartAsync(AsAlice(5, "/root/secret"), default));

        e.Message.ShouldContain("cannot enter its working directory '/root/secret'");
        Call("test").As.ShouldBe("alice");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task Start_SbatchRefusesTheAccount_IsRejected_ControllerDownIsNot()
    {
        var answer = new SlurmCommandResult(1, "", "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified", TimeSpan.Zero);
        _slurm.Handler = (tool, args, stdin) => FakeSlurm.Unwrap(tool, args).Tool == "sbatch" ? answer : _slurm.Default(tool, args, stdin);
        await using var b = CreateSut();

        (await Should.ThrowAsync<JobStartRejectedException>(() => b.StartAsync(AsAlice(6), default))).Message.ShouldContain("Invalid account");

        answer = FakeSlurm.Unreachable("sbatch");
        var e = await Should.ThrowAsync<SlurmException>(() => b.StartAsync(AsAlice(7), default));
        e.IsTransient.ShouldBeTrue();
    }

    [Fact]
    public async Task Start_BadEnvironmentName_IsRejected()
    {
        await using var b = CreateSut();

        await Should.ThrowAsync<JobStartRejectedException>(() => b.StartAsync(
            Jobs.Make(1, ["n1"], 1, env: new Dictionary<string, string> { ["A B"] = "x" }), default));
    }

    [Fact]
    public async Task SubmitAsSelf_JobWithAnIdentity_IsNotRunAsTheServer()
    {
        await using var b = CreateSut(Options(SlurmSubmitMode.Self));

        var e = await Should.ThrowAsync<SlurmException>(() => b.StartAsync(AsAlice(1), default));

        e.Message.ShouldContain("SubmitAs=Self");
        _slurm.Count("sbatch").ShouldBe(0);
    }

    [Fact]
    public async Task Cancel_RunsScancelAsTheJobsUser_AndFallsBackToTheServerWhenTheAccountIsGone()
    {
        await using var b = CreateSut();
        await b.StartAsync(AsAlice(8), default);

        await b.CancelAsync(8, TimeSpan.Zero, default);

        var scancel = _slurm.Calls.Single(c => FakeSlurm.Unwrap(c.Tool, c.Args).Tool == "scancel");
        scancel.Tool.ShouldBe("runuser");
        scancel.Args.ShouldBe(["-u", "alice", "--", "scancel", "1000"]);

        _slurm.Handler = (tool, args, stdin) => tool == "runuser"
            ? new SlurmCommandResult(1, "", "runuser: user alice does not exist or the user entry does not contain all the required fields", TimeSpan.Zero)
            : _slurm.Default(tool, args, stdin);
        await b.CancelAsync(8, TimeSpan.Zero, default);
        _slurm.Calls.Last().Tool.ShouldBe("scancel");
    }
}
