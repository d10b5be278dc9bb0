namespace GpuCommons.Backends.Local.Tests;

/// <summary>Reads the captured nvidia-smi output in Fixtures/ (copied next to the test assembly; see Fixtures/README.md).</summary>
internal static class Fixture
{
    public static string Read(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", name));

    public const string H100Uuid = "GPU-bd7b2a4c-a19e-9136-eac1-1b2f97e9e6b0";
    public const string H100Name = "NVIDIA H100 80GB HBM3";
}
