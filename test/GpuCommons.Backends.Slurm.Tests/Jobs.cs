namespace GpuCommons.Backends.Slurm.Tests;

internal static class Jobs
{
    public static BackendJob Make(long id, string[] nodes, int gpusPerNode, TimeSpan? walltime = null, IReadOnlyList<string>? command = null,
        IReadOnlyDictionary<string, string>? env = null, string logDir = "/tmp/gpuc-test-logs", int attempt = 0, bool checkpointable = false) =>
        new(id, $"job{id}", "proj", "alice", command ?? ["/bin/true"], null, env ?? new Dictionary<string, string>(),
            nodes.Select(n => new AssignedNode(n, Enumerable.Range(0, gpusPerNode).ToArray(), [])).ToArray(),
            walltime ?? TimeSpan.FromMinutes(5), logDir, checkpointable, attempt);

    public static PosixIdentity Alice { get; } = new("alice", 1500, "gpuc-proj", 2500, "/home/alice");

}
