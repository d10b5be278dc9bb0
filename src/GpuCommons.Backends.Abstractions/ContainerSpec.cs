namespace GpuCommons.Backends;

/// <summary>
/// A job that runs inside a container image instead of directly on the node. The container runs as the job's
/// <see cref="BackendJob.RunAs"/> account (never as root), with the job's GPUs only, the job's environment, and no host
/// path besides <see cref="Mounts"/>. <see cref="BackendJob.WorkingDirectory"/> is a path inside the container.
/// </summary>
/// <param name="Image">
/// What to run: a registry reference (<c>registry.example.org/team/image:tag</c>, already checked against the center's
/// allow-list by the server), a local image (<c>localhost/NAME:TAG</c>), or a local OCI archive or layout
/// (<c>oci-archive:/path/image.tar</c>, <c>oci:/path/dir</c>), which the job's user must be able to read.
/// </param>
/// <param name="Mounts">Host paths the job's user can read, bound into the container.</param>
public sealed record ContainerSpec(string Image, IReadOnlyList<ContainerMount> Mounts);

/// <summary>A host directory or file bound into a container at <paramref name="Target"/>.</summary>
/// <param name="Source">Absolute host path; the job's user must be able to read it (and write it unless read-only).</param>
/// <param name="Target">Absolute path inside the container.</param>
/// <param name="ReadOnly">Mounted read-only.</param>
public sealed record ContainerMount(string Source, string Target, bool ReadOnly);
