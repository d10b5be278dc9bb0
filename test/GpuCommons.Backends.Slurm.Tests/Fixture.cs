namespace GpuCommons.Backends.Slurm.Tests;

internal static class Fixture
{
    /// <summary>Output captured from the local Slurm 22.05.8 (ci/slurm), as the backend asks for it.</summary>
    public static string Read(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", name));
}
