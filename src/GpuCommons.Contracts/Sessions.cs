using System.Text.Json.Serialization;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Contracts;

/// <summary>Starts a notebook session: a job that runs Jupyter. Project, gpus and walltime as for a job.</summary>
public sealed class StartSessionRequest
{
    /// <summary><c>jupyter</c> (the default and, for now, the only kind).</summary>
    public string? Kind { get; set; }

    /// <summary>The project the session's job is charged to.</summary>
    public string? Project { get; set; }

    /// <summary>The partition to run in; absent: any that fits.</summary>
    public string? Partition { get; set; }

    /// <summary>GPUs for the session.</summary>
    public double? Gpus { get; set; }

    /// <summary>Walltime, as for a job (<c>4h</c>).</summary>
    public string? Walltime { get; set; }

    /// <summary>A container image with python3 and Jupyter in it; none runs the node's Jupyter.</summary>
    public string? Image { get; set; }

    /// <summary>Bind mounts into the container, as for a job.</summary>
    public List<string>? Mounts { get; set; }

    /// <summary>Where Jupyter starts.</summary>
    public string? WorkingDirectory { get; set; }
}

/// <summary>What a session job reports once Jupyter listens.</summary>
public sealed class SessionReadyRequest
{
    /// <summary>The host Jupyter listens on.</summary>
    public string? Host { get; set; }

    /// <summary>The port Jupyter listens on.</summary>
    public int? Port { get; set; }
}

/// <summary>A session as the API shows it. <see cref="Url"/> is the portal's proxy, for its owner only.</summary>
/// <param name="Id">The session's id (its job's id).</param>
/// <param name="Kind"><c>jupyter</c>.</param>
/// <param name="Project">The project it is charged to.</param>
/// <param name="User">Whose it is.</param>
/// <param name="State">Its job's state, as its wire name.</param>
/// <param name="Ready">Whether it runs and has reported where it listens.</param>
/// <param name="Url">The portal's path to it.</param>
/// <param name="Created">When it was started.</param>
/// <param name="ReadyAt">When it reported ready.</param>
/// <param name="LastActivity">The last kernel activity seen.</param>
/// <param name="IdleStoppedAt">When it was stopped for being idle.</param>
/// <param name="Gpus">GPUs it holds.</param>
/// <param name="WalltimeSeconds">Its time limit.</param>
/// <param name="Outcome">How its job ended.</param>
public sealed record SessionDto(long Id, string Kind, string Project, string User, [property: JsonConverter(typeof(JobStateJsonConverter))] JobState State,
    bool Ready, string Url, DateTimeOffset Created, DateTimeOffset? ReadyAt, DateTimeOffset? LastActivity, DateTimeOffset? IdleStoppedAt, double Gpus,
    long WalltimeSeconds, string? Outcome);
