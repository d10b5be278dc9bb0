using System.Text.Json;
using System.Text.Json.Nodes;

namespace GpuCommons.Backends.Slurm;

/// <summary>
/// The per-job OCI bundle for Slurm's own <c>sbatch --container</c>. The image is a site bundle (a directory with
/// <c>config.json</c> and its root file system) on the cluster's shared file system; each job gets its own
/// <c>config.json</c> beside its output, made from the site's, that:
/// <list type="bullet">
/// <item>maps the container's root to the job's own uid and gid and nothing else (a rootless runtime then runs the
/// container as the user: no other account and no capability on the host);</item>
/// <item>points at the image's root file system, read-only, with a private <c>/tmp</c> (Slurm mounts the job's output
/// under <c>/tmp/slurm</c>);</item>
/// <item>binds the job's mounts (read-only where asked) and starts in its working directory.</item>
/// </list>
/// Slurm replaces the process's arguments with the batch script and passes the job's environment.
/// </summary>
public static class SlurmOciBundle
{
    /// <summary>The name of the bundle's directory inside the job's spool directory.</summary>
    public const string DirectoryName = "bundle";

    /// <summary>
    /// The image's root file system, absolute. Slurm (22.05) points the runtime at <c>BUNDLE/rootfs</c> whatever
    /// <c>config.json</c> says, and runc refuses a link there, so the job's <c>rootfs</c> is an empty directory of the
    /// user's, and the image's top-level entries are bound into it read-only (<see cref="ImageEntries"/>).
    /// </summary>
    public static string RootFileSystem(string image, string? siteConfig)
    {
        ArgumentNullException.ThrowIfNull(image);
        string? rootPath = null;
        if (siteConfig is not null)
        {
            try
            {
                rootPath = (JsonNode.Parse(siteConfig)?["root"] as JsonObject)?["path"]?.GetValue<string>();
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new ArgumentException($"{image}/config.json is not valid JSON: {e.Message}", nameof(siteConfig), e);
            }
        }

        rootPath ??= "rootfs";
        return Path.GetFullPath(Path.IsPathRooted(rootPath) ? rootPath : Path.Combine(image, rootPath));
    }

    // What `runc spec --rootless` writes, less its fixed uid mapping and rlimits: used when the site bundle has no config.json.
    private const string RootlessDefault = """
        {
          "ociVersion": "1.0.2",
          "process": { "terminal": false, "user": { "uid": 0, "gid": 0 }, "args": [ "/bin/sh" ],
            "env": [ "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" ], "cwd": "/",
            "capabilities": { "bounding": [], "effective": [], "permitted": [], "ambient": [] }, "noNewPrivileges": true },
          "root": { "path": "rootfs", "readonly": true },
          "hostname": "gpuc",
          "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620" ] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": [ "nosuid", "noexec", "nodev" ] },
            { "destination": "/sys", "type": "none", "source": "/sys", "options": [ "rbind", "nosuid", "noexec", "nodev", "ro" ] }
          ],
          "linux": {
            "namespaces": [ { "type": "pid" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }, { "type": "user" } ],
            "maskedPaths": [ "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi" ],
            "readonlyPaths": [ "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger" ]
          }
        }
        """;

    /// <summary>What the image's root file system holds at its top level, to bind (directories, files) or link (links).</summary>
    public sealed record ImageEntry(string Name, string Source, string? LinkTarget, bool IsDirectory);

    // Made fresh in every container by the runtime or by the config itself, never bound from the image.
    private static readonly HashSet<string> Special = new(StringComparer.Ordinal) { "proc", "sys", "dev", "tmp" };

    /// <summary>The top-level entries of <paramref name="rootfs"/> the job's root file system takes from the image.</summary>
    public static IReadOnlyList<ImageEntry> ImageEntries(string rootfs)
    {
        ArgumentNullException.ThrowIfNull(rootfs);
        var entries = new List<ImageEntry>();
        foreach (var info in new DirectoryInfo(rootfs).EnumerateFileSystemInfos().OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            if (Special.Contains(info.Name))
            {
                continue;
            }

            entries.Add(new ImageEntry(info.Name, info.FullName, info.LinkTarget, info is DirectoryInfo));
        }

        return entries;
    }

    /// <summary>
    /// The job's <c>config.json</c>. <paramref name="siteConfig"/> is the image's own <c>config.json</c>, or
    /// <see langword="null"/> for a bare root file system (<paramref name="image"/>/<c>rootfs</c>). Throws
    /// <see cref="ArgumentException"/> with the reason for a config or a mount that cannot be used.
    /// </summary>
    public static string BuildConfig(BackendJob job, string image, string? siteConfig, IReadOnlyList<ImageEntry>? entries = null)
    {
        ArgumentNullException.ThrowIfNull(job);
        ArgumentNullException.ThrowIfNull(image);
        var container = job.Container ?? throw new ArgumentException($"job {job.JobId} has no container", nameof(job));
        JsonObject config;
        try
        {
            config = JsonNode.Parse(siteConfig ?? RootlessDefault) as JsonObject
                ?? throw new ArgumentException($"{image}/config.json is not a JSON object", nameof(siteConfig));
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{image}/config.json is not valid JSON: {e.Message}", nameof(siteConfig), e);
        }

        // The image's root file system through the bundle's rootfs link (see RootFileSystem), never written by a job.
        config["root"] = new JsonObject { ["path"] = "rootfs", ["readonly"] = true };

        var process = config["process"] as JsonObject ?? [];
        config["process"] = process;
        process["terminal"] = false;
        process["user"] = new JsonObject { ["uid"] = 0, ["gid"] = 0 };
        process["noNewPrivileges"] = true;
        process.Remove("rlimits"); // the job keeps the limits Slurm gave it
        if (job.WorkingDirectory is { } wd)
        {
            if (!Path.IsPathFullyQualified(wd))
            {
                throw new ArgumentException($"job {job.JobId}: a container's working directory must be absolute, not '{wd}'", nameof(job));
            }

            process["cwd"] = wd;
        }

        var mounts = config["mounts"] as JsonArray ?? [];
        config["mounts"] = mounts;
        // The image's own directories and files, read-only, into the job's empty rootfs (links are made in it beside).
        var at = 0;
        foreach (var e in entries ?? [])
        {
            if (e.LinkTarget is null)
            {
                mounts.Insert(at++, new JsonObject
                {
                    ["destination"] = "/" + e.Name,
                    ["type"] = "none",
                    ["source"] = e.Source,
                    ["options"] = new JsonArray("rbind", "ro", "nosuid", "nodev"),
                });
            }
        }

        mounts.Add(new JsonObject
        {
            ["destination"] = "/tmp",
            ["type"] = "tmpfs",
            ["source"] = "tmpfs",
            ["options"] = new JsonArray("nosuid", "nodev", "mode=1777"),
        });
        foreach (var m in container.Mounts)
        {
            if (!Path.IsPathFullyQualified(m.Source) || !Path.IsPathFullyQualified(m.Target) || (m.Source + m.Target).Any(char.IsControl))
            {
                throw new ArgumentException($"job {job.JobId}: container mounts need absolute paths ('{m.Source}' → '{m.Target}')", nameof(job));
            }

            var options = new JsonArray("rbind", "nosuid", "nodev");
            if (m.ReadOnly)
            {
                options.Add("ro");
            }

            mounts.Add(new JsonObject { ["destination"] = m.Target, ["type"] = "none", ["source"] = m.Source, ["options"] = options });
        }

        var linux = config["linux"] as JsonObject ?? [];
        config["linux"] = linux;
        if (job.RunAs is { } who)
        {
            // The container's root is the job's user and group; no other id exists inside.
            linux["uidMappings"] = new JsonArray(new JsonObject { ["containerID"] = 0, ["hostID"] = who.Uid, ["size"] = 1 });
            linux["gidMappings"] = new JsonArray(new JsonObject { ["containerID"] = 0, ["hostID"] = who.Gid, ["size"] = 1 });
            var namespaces = linux["namespaces"] as JsonArray ?? [];
            linux["namespaces"] = namespaces;
            if (!namespaces.Any(n => n?["type"]?.GetValue<string>() == "user"))
            {
                namespaces.Add(new JsonObject { ["type"] = "user" });
            }
        }

        return config.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
