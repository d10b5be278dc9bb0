using GpuCommons.Backends.Local.Gpus;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>The real nvidia-smi runner, against small scripts standing in for nvidia-smi.</summary>
[Collection(ProcessCollection.Name)]
public sealed class NvidiaSmiCommandTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "gpuc-smi-tests", Guid.NewGuid().ToString("N"));

    public NvidiaSmiCommandTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Script(string body)
    {
        var path = Path.Combine(_dir, "nvidia-smi");
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    [Fact]
    public async Task RunAsync_Script_ArgumentsAndOutput()
    {
        var smi = new NvidiaSmiCommand(Script("printf '%s|' \"$@\"; echo; echo oops >&2; exit 3"));
        var result = (await smi.RunAsync(["--query-gpu=index", "--format=csv"], CancellationToken.None)).ShouldNotBeNull();
        result.ExitCode.ShouldBe(3);
        result.Stdout.ShouldBe("--query-gpu=index|--format=csv|\n");
        result.Summary.ShouldBe("oops");
    }

    [Fact]
    public async Task RunAsync_Missing_Null()
    {
        var smi = new NvidiaSmiCommand(Path.Combine(_dir, "not-there"));
        (await smi.RunAsync(["-L"], CancellationToken.None)).ShouldBeNull();
    }

    [Fact]
    public async Task RunAsync_Hangs_KilledAfterTheTimeout()
    {
        var smi = new NvidiaSmiCommand(Script("exec sleep 300"), TimeSpan.FromSeconds(1));
        var result = (await smi.RunAsync(["-L"], CancellationToken.None)).ShouldNotBeNull();
        result.ExitCode.ShouldBe(-1);
        result.Summary.ShouldContain("did not answer");
    }

    [Fact]
    public async Task LocalBackend_ScriptPrintingTheH100Capture_DiscoversIt()
    {
        var csv = Path.Combine(AppContext.BaseDirectory, "Fixtures", "query-gpu-idle.csv");
        var options = new LocalBackendOptions { StateDirectory = Path.Combine(_dir, "state"), NodeName = "n", NvidiaSmiPath = Script($"cat '{csv}'") };
        await using var backend = new LocalBackend(options);
        var fleet = await backend.DiscoverAsync(CancellationToken.None);
        fleet.VirtualGpus.ShouldBeFalse();
        fleet.Nodes[0].Gpus.ShouldHaveSingleItem().Uuid.ShouldBe(Fixture.H100Uuid);
    }
}
