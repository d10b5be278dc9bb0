namespace GpuCommons.Simulation.Tests;

/// <summary>Paths inside the repository (tests read the shipped samples under data/, never anything outside the repo).</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "GpuCommons.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root (GpuCommons.slnx) above " + AppContext.BaseDirectory);
    }
}
