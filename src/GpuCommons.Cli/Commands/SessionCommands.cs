using System.CommandLine;
using System.Globalization;
using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Cli.Commands;

// gpuc session (notebook sessions) and the container options of gpuc submit.
internal static partial class ClientCommands
{
    /// <summary>The container options of <c>gpuc submit</c>: <c>--image</c>, <c>--mount</c>, <c>--workdir</c>, <c>--env</c>.</summary>
    private sealed record ContainerOptions(Option<string?> Image, Option<string[]> Mounts, Option<string?> Workdir, Option<string[]> Env)
    {
        public static ContainerOptions AddTo(Command c)
        {
            var o = new ContainerOptions(
                new Option<string?>("--image") { Description = "Run in this container image: registry/name:tag (a registry the center allows), localhost/name:tag, oci-archive:/path.tar" },
                new Option<string[]>("--mount") { Description = "Bind SOURCE:TARGET[:ro] into the container (repeatable; sources you can read)", AllowMultipleArgumentsPerToken = false },
                new Option<string?>("--workdir") { Description = "Working directory (inside the container with --image; default: the current directory, or the image's)" },
                new Option<string[]>("--env") { Description = "KEY=VALUE for the job's environment (repeatable)" });
            c.Options.Add(o.Image);
            c.Options.Add(o.Mounts);
            c.Options.Add(o.Workdir);
            c.Options.Add(o.Env);
            return o;
        }

        /// <summary>Sets image, mounts, workingDirectory and environment in a job body; true when a working directory was decided.</summary>
        public bool Apply(ParseResult parse, SubmitJobRequest body)
        {
            if (parse.GetValue(Image) is { } image)
            {
                body.Image = image;
            }

            if (parse.GetValue(Mounts) is { Length: > 0 } mounts)
            {
                body.Mounts = [.. mounts];
            }

            if (parse.GetValue(Env) is { Length: > 0 } env)
            {
                var map = body.Environment ?? new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var kv in env)
                {
                    var eq = kv.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0)
                    {
                        throw new CliException($"--env: '{kv}' is not KEY=VALUE", CliRunner.Usage);
                    }

                    map[kv[..eq]] = kv[(eq + 1)..];
                }

                body.Environment = map;
            }

            if (parse.GetValue(Workdir) is { } wd)
            {
                body.WorkingDirectory = wd;
                return true;
            }

            // A container starts in its image's working directory unless told otherwise: the caller's directory is a host path.
            return body.Image is not null;
        }
    }

    /// <summary><c>gpuc session jupyter|list|stop</c>.</summary>
    public static Command Session()
    {
        var session = new Command("session", "Interactive sessions: gpuc session jupyter --project P --gpus 1 --time 4h, then open the URL it prints");

        var project = new Option<string?>("--project", "-p") { Description = "Project to charge", Required = true };
        var gpus = new Option<double?>("--gpus", "-g") { Description = "GPUs", DefaultValueFactory = _ => 1 };
        var time = new Option<string?>("--time", "-t") { Description = "Walltime: 90m, 4h, 1d", DefaultValueFactory = _ => "4h" };
        var partition = new Option<string?>("--partition") { Description = "Partition (default: any that fits)" };
        var image = new Option<string?>("--image") { Description = "A container image with python3 and Jupyter (default: the node's Jupyter)" };
        var mounts = new Option<string[]>("--mount") { Description = "Bind SOURCE:TARGET[:ro] into the container (repeatable)" };
        var wait = new Option<bool>("--wait") { Description = "Wait until the notebook is ready, then print its URL" };
        var jupyter = new Command("jupyter", "Start a Jupyter notebook as a job; the portal serves it at /sessions/ID/ to you alone") { project, gpus, time, partition, image, mounts, wait };
        var common = AddCommon(jupyter);
        jupyter.SetAction(async (parse, ct) =>
        {
            var body = new StartSessionRequest
            {
                Kind = "jupyter",
                Project = parse.GetValue(project),
                Gpus = parse.GetValue(gpus),
                Walltime = parse.GetValue(time),
                Partition = parse.GetValue(partition),
                Image = parse.GetValue(image),
                Mounts = parse.GetValue(mounts) is { Length: > 0 } m ? [.. m] : null,
            };

            var server = parse.GetValue(common.Server) ?? Environment.GetEnvironmentVariable("GPUC_URL") ?? "";
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var s = await api.SendAsync(HttpMethod.Post, "/api/sessions", Body(body, ContractsJson.Default.StartSessionRequest), ct);
            var session = Read(s, ContractsJson.Default.SessionDto);
            var id = session.Id.ToString(CultureInfo.InvariantCulture);
            while (parse.GetValue(wait) && !session.Ready && session.State is JobState.Pending or JobState.Running)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
                s = await api.SendAsync(HttpMethod.Get, "/api/sessions/" + id, null, ct);
                session = Read(s, ContractsJson.Default.SessionDto);
            }

            if (parse.GetValue(common.Json))
            {
                Print(s);
            }
            else
            {
                Console.WriteLine($"Session {id} ({session.State.ToWire()}{(session.Ready ? ", ready" : "")}): {server.TrimEnd('/')}{Display.Safe(session.Url)}");
                Console.WriteLine("Open it in the portal (signed in as yourself); gpuc session list shows when it is ready, gpuc session stop " + id + " ends it.");
            }

            return 0;
        });

        var list = new Command("list", "Your sessions, newest first");
        var listCommon = AddCommon(list);
        list.SetAction(async (parse, ct) =>
        {
            var server = (parse.GetValue(listCommon.Server) ?? Environment.GetEnvironmentVariable("GPUC_URL") ?? "").TrimEnd('/');
            using var api = Api.From(parse.GetValue(listCommon.Server), parse.GetValue(listCommon.Token));
            var rows = await api.SendAsync(HttpMethod.Get, "/api/sessions", null, ct);
            if (parse.GetValue(listCommon.Json))
            {
                Print(rows);
                return 0;
            }

            foreach (var r in Read(rows, ContractsJson.Default.ListSessionDto))
            {
                var state = r.Ready ? "ready" : r.State.ToWire();
                Console.WriteLine($"{r.Id.ToString(CultureInfo.InvariantCulture)}\t{Display.Safe(r.Kind)}\t{Display.Safe(r.Project)}\t{state}\t{server}{Display.Safe(r.Url)}");
            }

            return 0;
        });

        var id = new Argument<long>("id") { Description = "Session (job) id" };
        var stop = new Command("stop", "Stop one of your sessions (its GPUs go back to the queue)") { id };
        var stopCommon = AddCommon(stop);
        stop.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(stopCommon.Server), parse.GetValue(stopCommon.Token));
            var s = await api.SendAsync(HttpMethod.Delete, "/api/sessions/" + parse.GetValue(id).ToString(System.Globalization.CultureInfo.InvariantCulture), null, ct);
            if (parse.GetValue(stopCommon.Json))
            {
                Print(s);
            }
            else
            {
                Console.WriteLine($"Stopping session {Read(s, ContractsJson.Default.SessionDto).Id.ToString(CultureInfo.InvariantCulture)}");
            }

            return 0;
        });

        session.Subcommands.Add(jupyter);
        session.Subcommands.Add(list);
        session.Subcommands.Add(stop);
        return session;
    }
}
