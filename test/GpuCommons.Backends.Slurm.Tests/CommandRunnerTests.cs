using GpuCommons.Backends.Slurm;
using Shouldly;
using Xunit;

namespace GpuCommons.Backends.Slurm.Tests;

/// <summary>The real process runner: the Slurm commands run at the niceness the options give, so a wave of them yields the CPU to the server.</summary>
public sealed class CommandRunnerTests
{
    /// <summary>The niceness of the command itself, read from <c>/proc</c> once it has run a while (field 19 of its stat).</summary>
    private static async Task<int> NicenessOfACommandAsync(ProcessSlurmCommandRunner runner)
    {
        var r = await runner.RunAsync("sh", ["-c", "sleep 0.3; cut -d' ' -f19 /proc/$$/stat"], null, TimeSpan.FromSeconds(10), CancellationToken.None);
        r.ExitCode.ShouldBe(0, r.Stderr);
        return int.Parse(r.Stdout.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Commands_RunAtTheGivenNiceness_AndAtTheServersOwnWithZero()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        var own = await NicenessOfACommandAsync(new ProcessSlurmCommandRunner());
        (await NicenessOfACommandAsync(new ProcessSlurmCommandRunner(niceness: 10))).ShouldBe(Math.Max(own, 10));
        (await NicenessOfACommandAsync(new ProcessSlurmCommandRunner(niceness: 0))).ShouldBe(own);
    }

    [Fact]
    public void TheDefault_IsNiceTen_AndOutOfRangeIsRefusedNamingTheOption()
    {
        new SlurmBackendOptions().CommandNiceness.ShouldBe(10);
        Should.Throw<ArgumentException>(() => new SlurmBackendOptions { CommandNiceness = 20 }.Validate()).ParamName.ShouldBe(nameof(SlurmBackendOptions.CommandNiceness));
        Should.Throw<ArgumentException>(() => new SlurmBackendOptions { CommandNiceness = -1 }.Validate()).ParamName.ShouldBe(nameof(SlurmBackendOptions.CommandNiceness));
        Should.Throw<ArgumentOutOfRangeException>(() => new ProcessSlurmCommandRunner(niceness: 20));
    }
}
