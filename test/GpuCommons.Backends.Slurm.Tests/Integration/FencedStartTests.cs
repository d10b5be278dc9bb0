using Shouldly;
using Xunit;
using static GpuCommons.Backends.Slurm.Tests.Integration.SlurmTestKit;

namespace GpuCommons.Backends.Slurm.Tests.Integration;

/// <summary>
/// Starts under a start fence (several servers on one Slurm): submitted held, released only while the fence says this
/// server leads; a held job of the same name found at a start is a lost leader's, cancelled before submitting our own.
/// </summary>
[Collection("slurm")]
public sealed class FencedStartTests
{
    public FencedStartTests() => LocalSlurm.Require();

    private static string StateOf(long slurmId) =>
        LocalSlurm.Run("sacct", "-n", "-X", "-P", "-j", slurmId.ToString(System.Globalization.CultureInfo.InvariantCulture), "--format=State").Output.Trim();

    [SlurmFact]
    public async Task AStartWhoseFenceSaysNo_IsWithdrawnWhileHeld_AndNeverRuns()
    {
        var options = Options();
        options.StartFence = _ => ValueTask.FromResult(false);
        await using var backend = Backend(options);
        var id = NextId();
        var e = await Should.ThrowAsync<SlurmStartFencedException>(() => backend.StartAsync(Job(id, ["n1"], 1, "echo ran"), default));
        e.Message.ShouldContain("no longer leads");
        var name = SlurmJobName.Format(options.JobNamePrefix, id, 0);
        // It reached Slurm held, and was cancelled there before it could run (a job that never became eligible is not in
        // sacct's time window; the controller still shows it).
        var (_, q) = LocalSlurm.Run("squeue", "-h", "-t", "all", "--name=" + name, "-o", "%i|%T|%M");
        var rows = q.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        rows.Length.ShouldBe(1, q);
        var row = rows[0].Split('|');
        row[1].ShouldBe("CANCELLED");
        row[2].ShouldBe("0:00", "it never ran");
    }

    [SlurmFact]
    public async Task AStartWhoseFenceSaysYes_IsReleasedAndRuns_AndAHeldJobOfTheSameName_IsCancelledNotAdopted()
    {
        var options = Options();
        options.StartFence = _ => ValueTask.FromResult(true);
        var id = NextId();
        var name = SlurmJobName.Format(options.JobNamePrefix, id, 0);
        // What a leader leaves when it stops between its sbatch --hold and its release.
        var (code, outp) = LocalSlurm.Run("sbatch", "--parsable", "-J", name, "-H", "--gpus=1", "-o", "/dev/null", "--wrap=true");
        code.ShouldBe(0, outp);
        var stale = long.Parse(outp.Trim().Split(';')[0], System.Globalization.CultureInfo.InvariantCulture);

        await using var backend = Backend(options);
        var handle = await backend.StartAsync(Job(id, ["n2"], 1, "echo ran-once"), default);
        handle.ExternalId.ShouldNotBe(stale.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var events = await PollUntilAsync(backend, [], e => e.Ended(id), TimeSpan.FromSeconds(90));
        events.Has(id, BackendEventKind.Finished).ShouldBeTrue(string.Join("; ", events.Select(Describe)));
        Output(handle).ShouldContain("ran-once");
        StateOf(stale).ShouldStartWith("CANCELLED");
    }
}
