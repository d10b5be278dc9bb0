using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using GpuCommons.Backends;
using GpuCommons.Backends.Local;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc local gpus</c> and <c>gpuc local run</c>: the local backend on its own, without a server — what it finds on
/// this machine, and one job run through it (the GPU truth check runs these before it starts a server).
/// </summary>
internal static class LocalCommands
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = false,
        Converters = { new JsonStringEnumConverter() },
    };

    public static Command Create()
    {
        var local = new Command("local", "The local backend on its own: GPU discovery and one job, without a server");
        var state = new Option<string?>("--state") { Description = "State folder (default: a new temporary folder)" };
        var virtualGpus = new Option<int?>("--virtual-gpus") { Description = "Use this many virtual GPUs instead of nvidia-smi" };

        var gpus = new Command("gpus", "Discover this machine's GPUs (nvidia-smi, or virtual) and print the fleet as JSON") { state, virtualGpus };
        gpus.SetAction(async (parse, ct) =>
        {
            await using var backend = Create(parse.GetValue(state), parse.GetValue(virtualGpus));
            var fleet = await backend.DiscoverAsync(ct);
            Console.WriteLine(JsonSerializer.Serialize(fleet, Json));
            return 0;
        });

        var count = new Option<int>("--gpus") { Description = "GPUs for the job (the lowest indices)", DefaultValueFactory = _ => 1 };
        var time = new Option<string>("--time") { Description = "Walltime: 90s, 10m, 2h or hh:mm:ss", DefaultValueFactory = _ => "10m" };
        var logs = new Option<string?>("--logs") { Description = "Log folder (default: STATE/logs)" };
        var sample = new Option<string>("--sample-every") { Description = "Print the job's GPU usage this often while it runs", DefaultValueFactory = _ => "5s" };
        var runAs = new Option<string?>("--as")
        {
            Description = "Run the job as this POSIX account, LOGIN or LOGIN:GROUP (root only), with the isolation a tenant's job gets",
        };
        var command = new Argument<string[]>("command") { Description = "The job's command (after --)", Arity = ArgumentArity.OneOrMore };
        var run = new Command("run", "Run one job through the local backend; print its events and GPU usage as JSON lines; exit with its exit code")
        {
            state, virtualGpus, count, time, logs, sample, runAs, command,
        };
        run.SetAction(async (parse, ct) => await RunAsync(
            parse.GetValue(state), parse.GetValue(virtualGpus), parse.GetValue(count), Duration(parse.GetValue(time)!, "--time"),
            parse.GetValue(logs), Duration(parse.GetValue(sample)!, "--sample-every"), Identity(parse.GetValue(runAs)), parse.GetValue(command)!, ct));

        local.Subcommands.Add(gpus);
        local.Subcommands.Add(run);
        return local;
    }

    private static LocalBackend Create(string? state, int? virtualGpus)
    {
        var options = new LocalBackendOptions
        {
            StateDirectory = state ?? Path.Combine(Path.GetTempPath(), "gpuc-local-" + Guid.NewGuid().ToString("N")[..8]),
            GpuMode = virtualGpus is null ? LocalGpuMode.Auto : LocalGpuMode.Virtual,
            VirtualGpuCount = virtualGpus ?? 8,
            WalltimeGrace = TimeSpan.FromSeconds(10),
        };
        try
        {
            return new LocalBackend(options);
        }
        catch (ArgumentException e)
        {
            throw new CliException(e.Message, CliRunner.Usage);
        }
        catch (PlatformNotSupportedException e)
        {
            throw new CliException(e.Message, CliRunner.Unavailable);
        }
        catch (InvalidOperationException e)
        {
            throw new CliException(e.Message, CliRunner.Unavailable); // the state folder is in use
        }
    }

    /// <summary>LOGIN or LOGIN:GROUP as the host's name service knows them; null for none.</summary>
    private static PosixIdentity? Identity(string? value)
    {
        if (value is null)
        {
            return null;
        }

        var parts = value.Split(':', 2);
        var directory = new GpuCommons.Server.Security.NssPosixDirectory();
        var user = directory.FindUser(parts[0]) ?? throw new CliException($"--as {value}: no account '{parts[0]}' on this host", CliRunner.Usage);
        var (group, gid) = parts.Length == 2
            ? (parts[1], directory.FindGroup(parts[1]) ?? throw new CliException($"--as {value}: no group '{parts[1]}' on this host", CliRunner.Usage))
            : (parts[0], user.Gid);
        return new PosixIdentity(user.Login, user.Uid, group, gid, user.Home);
    }

    private static async Task<int> RunAsync(string? state, int? virtualGpus, int gpus, TimeSpan walltime, string? logs, TimeSpan sampleEvery, PosixIdentity? runAs, string[] command, CancellationToken ct)
    {
        await using var backend = Create(state, virtualGpus);
        var fleet = await backend.DiscoverAsync(ct);
        Print("fleet", fleet);
        var node = fleet.Nodes[0];
        if (gpus < 0 || gpus > node.Gpus.Count)
        {
            throw new CliException($"--gpus {gpus}: {node.Name} has {node.Gpus.Count} GPUs", CliRunner.Usage);
        }

        var chosen = node.Gpus.Take(gpus).ToList();
        var jobId = 1L;
        var job = new BackendJob(jobId, "local-run", "local", runAs?.User ?? Environment.UserName, command, runAs is null ? Environment.CurrentDirectory : null,
            new Dictionary<string, string>(), gpus == 0 ? [] : [new AssignedNode(node.Name, [.. chosen.Select(g => g.Index)], [.. chosen.Select(g => g.Uuid)])],
            walltime, logs ?? Path.Combine(backend.Options.StateDirectory, "logs"), Checkpointable: false)
        {
            RunAs = runAs,
        };
        BackendHandle handle;
        try
        {
            handle = await backend.StartAsync(job, ct);
        }
        catch (JobStartRejectedException e)
        {
            throw new CliException("the job cannot start: " + e.Message, CliRunner.Usage);
        }

        Print("handle", handle);

        BackendEvent? end = null;
        var nextSample = TimeProvider.System.GetTimestamp();
        while (end is null)
        {
            try
            {
                foreach (var e in await backend.PollAsync(ct))
                {
                    Print("event", e);
                    if (e.JobId == jobId && e.Kind is not (BackendEventKind.Started or BackendEventKind.NodeUp or BackendEventKind.NodeDown or BackendEventKind.NodeDraining))
                    {
                        end = e;
                    }
                }

                if (end is null && TimeProvider.System.GetTimestamp() >= nextSample)
                {
                    Print("gpuUsage", await backend.GetGpuUsageAsync(jobId, ct));
                    nextSample = TimeProvider.System.GetTimestamp() + (long)(sampleEvery.TotalSeconds * TimeProvider.System.TimestampFrequency);
                }

                if (end is null)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // Ctrl-C: cancel the job, then report how it ended.
                await backend.CancelAsync(jobId, TimeSpan.FromSeconds(5), CancellationToken.None);
                end = await WaitForEndAsync(backend, jobId);
            }
        }

        Print("lastGpuUsage", await backend.GetGpuUsageAsync(jobId, CancellationToken.None));
        Print("stdout", Tail(handle.StdoutPath));
        Print("stderr", Tail(handle.StderrPath));
        return end.Kind == BackendEventKind.Finished ? 0 : end.ExitCode is > 0 and < 256 ? end.ExitCode.Value : CliRunner.Failure;
    }

    private static async Task<BackendEvent> WaitForEndAsync(LocalBackend backend, long jobId)
    {
        while (true)
        {
            foreach (var e in await backend.PollAsync(CancellationToken.None))
            {
                Print("event", e);
                if (e.JobId == jobId && e.Kind is not (BackendEventKind.Started or BackendEventKind.NodeUp or BackendEventKind.NodeDown or BackendEventKind.NodeDraining))
                {
                    return e;
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250));
        }
    }

    private static string Tail(string? path)
    {
        if (path is null || !File.Exists(path))
        {
            return "";
        }

        var text = File.ReadAllText(path);
        return text.Length <= 4000 ? text : text[^4000..];
    }

    private static void Print(string kind, object? value) =>
        Console.WriteLine("{\"" + kind + "\":" + JsonSerializer.Serialize(value, Json) + "}");

    /// <summary>90s, 10m, 2h, 1d, or [d-]hh:mm:ss.</summary>
    internal static TimeSpan Duration(string text, string option)
    {
        var t = text.Trim();
        if (t.Length > 1 && char.IsAsciiLetter(t[^1]) && double.TryParse(t[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= 0)
        {
            switch (char.ToLowerInvariant(t[^1]))
            {
                case 's': return TimeSpan.FromSeconds(n);
                case 'm': return TimeSpan.FromMinutes(n);
                case 'h': return TimeSpan.FromHours(n);
                case 'd': return TimeSpan.FromDays(n);
            }
        }

        if (TimeSpan.TryParse(t.Replace('-', '.'), CultureInfo.InvariantCulture, out var span) && span >= TimeSpan.Zero)
        {
            return span;
        }

        throw new CliException($"{option} '{text}': expected a duration such as 90s, 10m, 2h or hh:mm:ss", CliRunner.Usage);
    }
}
