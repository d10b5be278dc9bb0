using GpuCommons.Backends.Local.Internal;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>Walltime and grace periods follow the injected clock, not the wall clock.</summary>
[Collection(ProcessCollection.Name)]
public sealed class LocalBackendClockTests
{
    [Fact]
    public async Task PollAsync_WalltimeOnTheInjectedClock_NotBeforeItIsReached()
    {
        var clock = new ManualTimeProvider();
        await using var t = new TestBackend(time: clock);
        // "ready" comes from the job's own shell, whose SIGTERM is the default by then.
        var handle = await t.StartAsync(t.Job(60, "echo ready; sleep 300", walltime: TimeSpan.FromHours(1)));
        await TestBackend.WaitForAsync(() => Out(t, 60).Contains("ready", StringComparison.Ordinal), "the job to start");
        var started = (await t.Backend.PollAsync(CancellationToken.None)).ShouldHaveSingleItem();
        started.Kind.ShouldBe(BackendEventKind.Started);
        started.Time.ShouldBe(clock.GetUtcNow());

        clock.Advance(TimeSpan.FromMinutes(59));
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty();
        Posix.ReadStat(TestBackend.LeaderPid(handle)).ShouldNotBeNull();

        clock.Advance(TimeSpan.FromMinutes(2));
        var end = (await t.PollUntilEndAsync(60)).Single();
        end.Kind.ShouldBe(BackendEventKind.WalltimeExceeded);
        end.Time.ShouldBe(clock.GetUtcNow());
        end.ExitCode.ShouldBe(143); // the job died of SIGTERM; the wrapper recorded 128 + 15
    }

    [Fact]
    public async Task PollAsync_CheckpointableAtWalltime_Usr1ThenTermThenKill_OneGraceApart()
    {
        var clock = new ManualTimeProvider();
        await using var t = new TestBackend(time: clock);
        var script = "trap 'echo usr1' USR1; trap 'echo term' TERM; echo ready; while true; do sleep 0.05; done";
        await t.StartAsync(t.Job(61, script, walltime: TimeSpan.FromHours(1), checkpointable: true));
        await TestBackend.WaitForAsync(() => Out(t, 61).Contains("ready", StringComparison.Ordinal), "the job to start");
        await t.Backend.PollAsync(CancellationToken.None);

        clock.Advance(TimeSpan.FromHours(1));
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty(); // SIGUSR1 sent
        await TestBackend.WaitForAsync(() => Out(t, 61).Contains("usr1", StringComparison.Ordinal), "SIGUSR1 to arrive");
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty();
        Out(t, 61).ShouldNotContain("term"); // the grace (2 s on the injected clock) has not passed

        clock.Advance(TimeSpan.FromSeconds(2));
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldBeEmpty(); // SIGTERM sent; the job ignores it
        await TestBackend.WaitForAsync(() => Out(t, 61).Contains("term", StringComparison.Ordinal), "SIGTERM to arrive");

        clock.Advance(TimeSpan.FromSeconds(2));
        var end = (await t.PollUntilEndAsync(61)).Single();
        end.Kind.ShouldBe(BackendEventKind.WalltimeExceeded);
        end.Message!.ShouldContain("SIGUSR1, SIGTERM, SIGKILL");
        end.ExitCode.ShouldBe(137);
    }

    [Fact]
    public async Task CancelAsync_GraceOnTheInjectedClock()
    {
        var clock = new ManualTimeProvider();
        await using var t = new TestBackend(time: clock);
        var handle = await t.StartAsync(t.Job(62, "trap 'echo term' TERM; echo ready; while true; do sleep 0.05; done"));
        await TestBackend.WaitForAsync(() => Out(t, 62).Contains("ready", StringComparison.Ordinal), "the job to start");

        await t.Backend.CancelAsync(62, TimeSpan.FromMinutes(5), CancellationToken.None);
        await TestBackend.WaitForAsync(() => Out(t, 62).Contains("term", StringComparison.Ordinal), "SIGTERM to arrive");
        (await t.Backend.PollAsync(CancellationToken.None)).ShouldHaveSingleItem().Kind.ShouldBe(BackendEventKind.Started);

        // A second cancel with a shorter grace brings the kill forward.
        await t.Backend.CancelAsync(62, TimeSpan.FromSeconds(10), CancellationToken.None);
        clock.Advance(TimeSpan.FromSeconds(11));
        var end = (await t.PollUntilEndAsync(62)).Single();
        end.Kind.ShouldBe(BackendEventKind.Cancelled);
        await TestBackend.WaitForAsync(() => Posix.ProcessesOf(TestBackend.LeaderPid(handle)).Count == 0, "the job to be gone");
    }

    private static string Out(TestBackend t, long id)
    {
        var path = Path.Combine(t.LogDirectory, $"job-{id}.out");
        return File.Exists(path) ? File.ReadAllText(path) : "";
    }
}
