using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>A server restart: a new backend over the same state folder takes back running jobs and finds lost ones.</summary>
[Collection(ProcessCollection.Name)]
public sealed class LocalBackendReattachTests
{
    [Fact]
    public async Task ReattachAsync_StillRunning_TakenBackAndCancellable()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(40, "echo hi; sleep 300"));
        (await t.PollUntilAsync(e => e.Any(x => x.Kind == BackendEventKind.Started))).Count.ShouldBe(1);
        await t.Backend.DisposeAsync();

        var restarted = await t.NewBackendAsync();
        (await restarted.ReattachAsync(40, handle, CancellationToken.None)).ShouldBeTrue();
        (await restarted.PollAsync(CancellationToken.None)).ShouldBeEmpty(); // no second Started

        await restarted.CancelAsync(40, TimeSpan.FromSeconds(1), CancellationToken.None);
        var end = (await t.PollUntilEndAsync(40, restarted)).Last();
        end.Kind.ShouldBe(BackendEventKind.Cancelled);
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(TestBackend.LeaderPid(handle)).Count == 0, "the job to be gone");
    }

    [Fact]
    public async Task ReattachAsync_EndedWhileServerWasDown_ExitCodeRecovered()
    {
        await using var t = new TestBackend();
        var go = Path.Combine(t.Root, "go");
        var handle = await t.StartAsync(t.Job(41, $"while [ ! -e '{go}' ]; do sleep 0.05; done; exit 7"));
        await t.PollUntilAsync(e => e.Any(x => x.Kind == BackendEventKind.Started));
        await t.Backend.DisposeAsync();

        await File.WriteAllTextAsync(go, "");
        await TestBackend.WaitForAsync(() => File.Exists(Path.Combine(t.StateDirectory, "jobs", "41", "exitcode")), "the exit code file");

        var restarted = await t.NewBackendAsync();
        (await restarted.ReattachAsync(41, handle, CancellationToken.None)).ShouldBeTrue();
        var end = (await t.PollUntilEndAsync(41, restarted)).Single();
        end.Kind.ShouldBe(BackendEventKind.Failed);
        end.ExitCode.ShouldBe(7);
    }

    [Fact]
    public async Task ReattachAsync_EndReportedButNotKeptByTheServer_ReportedAgain()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(49, "exit 5"));
        (await t.PollUntilEndAsync(49)).Last().ExitCode.ShouldBe(5);
        await t.Backend.DisposeAsync(); // the server crashed before it saved the Failed event

        var restarted = await t.NewBackendAsync();
        (await restarted.ReattachAsync(49, handle, CancellationToken.None)).ShouldBeTrue();
        var again = (await restarted.PollAsync(CancellationToken.None)).ShouldHaveSingleItem();
        (again.Kind, again.ExitCode).ShouldBe((BackendEventKind.Failed, 5));
    }

    [Fact]
    public async Task ReattachAsync_KilledWhileServerWasDown_Lost()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(42, "sleep 300"));
        await t.PollUntilAsync(e => e.Any(x => x.Kind == BackendEventKind.Started));
        await t.Backend.DisposeAsync();

        var pid = TestBackend.LeaderPid(handle);
        Posix.SignalJob(pid, Posix.SigKill); // no exit code can be written
        await TestBackend.WaitForAsync(() => Posix.ReadStat(pid) is not { IsZombie: false }, "the job to die");

        var restarted = await t.NewBackendAsync();
        (await restarted.ReattachAsync(42, handle, CancellationToken.None)).ShouldBeFalse();
        var lost = (await restarted.PollAsync(CancellationToken.None)).Single();
        lost.Kind.ShouldBe(BackendEventKind.Lost);
        lost.JobId.ShouldBe(42);
        lost.Message!.ShouldContain("no exit code");

        // Asked again (the server did not keep the report): reported again, never silently dropped.
        (await restarted.ReattachAsync(42, handle, CancellationToken.None)).ShouldBeFalse();
        (await restarted.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.Lost);
    }

    [Fact]
    public async Task ReattachAsync_PidNowSomeoneElses_Lost()
    {
        await using var t = new TestBackend();
        // Our own PID with a start time that is not ours: a recycled PID.
        var self = Posix.ReadStat(Environment.ProcessId)!.Value;
        var handle = new BackendHandle(43, JobFile.FormatExternalId(self.Pid, self.StartTime + 12345, Posix.BootId), null, null);

        (await t.Backend.ReattachAsync(43, handle, CancellationToken.None)).ShouldBeFalse();
        var lost = (await t.Backend.PollAsync(CancellationToken.None)).Single();
        lost.Kind.ShouldBe(BackendEventKind.Lost);
        lost.Message!.ShouldContain("another process");
    }

    [Fact]
    public async Task ReattachAsync_HandleOfAnotherBackend_LostWithReason()
    {
        await using var t = new TestBackend();
        (await t.Backend.ReattachAsync(44, new BackendHandle(44, "slurm-12345", null, null), CancellationToken.None)).ShouldBeFalse();
        (await t.Backend.PollAsync(CancellationToken.None)).Single().Message!.ShouldContain("not a local backend handle");
    }

    [Fact]
    public async Task StartAsync_BackendDiedBetweenLaunchAndRecord_FindsTheWrapperInsteadOfLaunchingTwice()
    {
        await using var t = new TestBackend();
        var job = t.Job(46, "echo once; sleep 300");
        var handle = await t.StartAsync(job);
        await t.Backend.DisposeAsync();
        var state = Path.Combine(t.StateDirectory, "jobs", "46", "job.json");
        var text = await File.ReadAllTextAsync(state);
        var pid = TestBackend.LeaderPid(handle);
        // The record as it was just before the launch: no PID, no start time.
        text = System.Text.RegularExpressions.Regex.Replace(text, "\"pid\": \\d+", "\"pid\": 0");
        text = System.Text.RegularExpressions.Regex.Replace(text, "\"startTicks\": \\d+", "\"startTicks\": 0");
        await File.WriteAllTextAsync(state, text);

        var restarted = await t.NewBackendAsync();
        var again = await restarted.StartAsync(job, CancellationToken.None);

        again.ExternalId.ShouldBe(handle.ExternalId);
        await TestBackend.WaitForAsync(() => t.Stdout(46).Length > 0, "the job's first line"); // not killed before it printed
        await restarted.CancelAsync(46, TimeSpan.Zero, CancellationToken.None);
        (await t.PollUntilEndAsync(46, restarted)).Last().Kind.ShouldBe(BackendEventKind.Cancelled);
        t.Stdout(46).ShouldBe("once\n");
    }

    [Fact]
    public async Task ReattachAsync_EmptyHandle_FindsTheRunByJobId()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(50, "sleep 300"));
        await t.Backend.DisposeAsync();

        var restarted = await t.NewBackendAsync();
        (await restarted.ReattachAsync(50, new BackendHandle(50, "", null, null), CancellationToken.None)).ShouldBeTrue();
        (await restarted.ReattachAsync(51, new BackendHandle(51, "", null, null), CancellationToken.None)).ShouldBeFalse();
        (await restarted.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Message.ShouldBe("never launched");

        await restarted.CancelAsync(50, TimeSpan.Zero, CancellationToken.None);
        (await t.PollUntilEndAsync(50, restarted)).Last().Kind.ShouldBe(BackendEventKind.Cancelled);
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(TestBackend.LeaderPid(handle)).Count == 0, "the job to be gone");
    }

    [Fact]
    public async Task StartAsync_RecordWithoutLaunch_Launches()
    {
        await using var t = new TestBackend();
        var job = t.Job(47, "echo ran");
        var dir = Path.Combine(t.StateDirectory, "jobs", "47");
        Directory.CreateDirectory(dir);
        new JobFile { JobId = 47, ExitCodePath = Path.Combine(dir, "exitcode"), BootId = Posix.BootId }.Save(Path.Combine(dir, "job.json"));

        await t.StartAsync(job);
        (await t.PollUntilEndAsync(47)).Last().Kind.ShouldBe(BackendEventKind.Finished);
        t.Stdout(47).ShouldBe("ran\n");
    }

    [Fact]
    public async Task ReattachAsync_OtherStateFolder_TakenBackFromTheHandleAlone()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(48, "sleep 300"));
        await t.Backend.DisposeAsync();

        var options = t.Options();
        options.StateDirectory = Path.Combine(t.Root, "other-state");
        await using var stranger = new LocalBackend(options, TimeProvider.System, FakeNvidiaSmi.NotInstalled());
        (await stranger.ReattachAsync(48, handle, CancellationToken.None)).ShouldBeTrue();
        (await stranger.PollAsync(CancellationToken.None)).ShouldBeEmpty();
        await stranger.CancelAsync(48, TimeSpan.Zero, CancellationToken.None);
        (await t.PollUntilEndAsync(48, stranger)).Single().Kind.ShouldBe(BackendEventKind.Cancelled);
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(TestBackend.LeaderPid(handle)).Count == 0, "the job to be gone");
    }

    [Fact]
    public async Task Reattach_WalltimeStillEnforcedAfterRestart()
    {
        await using var t = new TestBackend();
        var handle = await t.StartAsync(t.Job(45, "sleep 300", walltime: TimeSpan.FromSeconds(2)));
        await t.Backend.DisposeAsync();

        var restarted = await t.NewBackendAsync();
        (await restarted.ReattachAsync(45, handle, CancellationToken.None)).ShouldBeTrue();
        var events = await t.PollUntilEndAsync(45, restarted);
        events.Last().Kind.ShouldBe(BackendEventKind.WalltimeExceeded);
    }
}
