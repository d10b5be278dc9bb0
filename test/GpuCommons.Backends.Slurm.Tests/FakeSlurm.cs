namespace GpuCommons.Backends.Slurm.Tests;

/// <summary>A scripted stand-in for the Slurm tools: each call is recorded and answered by <see cref="Handler"/>.</summary>
internal sealed class FakeSlurm : ISlurmCommandRunner
{
    private readonly Lock _lock = new();

    public List<(string Tool, IReadOnlyList<string> Args, string? Stdin)> Calls { get; } = [];

    public Func<string, IReadOnlyList<string>, string?, SlurmCommandResult> Handler { get; set; } = (_, _, _) => Ok("");

    public string Squeue { get; set; } = "";
    public string Sacct { get; set; } = "";
    public string Sinfo { get; set; } = "n1|gpu*|idle|32|16000|gpu:8|(null)|none\nn2|gpu*|idle|32|16000|gpu:8|(null)|none\n";
    public long NextId { get; set; } = 1000;
    public bool Down { get; set; }

    public static SlurmCommandResult Ok(string stdout) => new(0, stdout, "", TimeSpan.FromMilliseconds(1));

    public static SlurmCommandResult Unreachable(string tool) =>
        new(1, "", $"{tool}: error: Unable to contact slurm controller (connect failure)", TimeSpan.FromMilliseconds(1));

    public int Count(string tool)
    {
        lock (_lock)
        {
            return Calls.Count(c => Unwrap(c.Tool, c.Args).Tool == tool);
        }
    }

    public Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, TimeSpan timeout, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            Calls.Add((tool, args.ToArray(), stdin));
        }

        return Task.FromResult(Answer(tool, args, stdin));
    }

    /// <summary>The default behaviour: a tiny Slurm whose queue, accounting and nodes are the text properties.</summary>
    /// <summary>Accounts known to <c>getent passwd</c>: login → uid.</summary>
    public Dictionary<string, int> Accounts { get; } = new(StringComparer.Ordinal) { ["alice"] = 1500, ["bob"] = 1501 };

    /// <summary>The tool and arguments a <c>runuser -u X --</c> / <c>sudo -n -u X --</c> prefix runs, and as whom (null: no prefix).</summary>
    public static (string Tool, IReadOnlyList<string> Args, string? As) Unwrap(string tool, IReadOnlyList<string> args)
    {
        if (tool is "runuser" or "sudo")
        {
            var sep = args.ToList().IndexOf("--");
            var u = args.ToList().IndexOf("-u");
            return (Path.GetFileName(args[sep + 1]), args.Skip(sep + 2).ToArray(), args[u + 1]);
        }

        return (tool, args, null);
    }

    public SlurmCommandResult Default(string tool, IReadOnlyList<string> args, string? stdin)
    {
        (tool, args, _) = Unwrap(tool, args);
        if (tool == "getent")
        {
            return Accounts.TryGetValue(args[1], out var uid) ? Ok($"{args[1]}:x:{uid}:{uid}::/home/{args[1]}:/bin/bash\n") : new SlurmCommandResult(2, "", "", TimeSpan.Zero);
        }

        if (Down)
        {
            return Unreachable(tool);
        }

        switch (tool)
        {
            case "squeue":
                var name = args.FirstOrDefault(a => a.StartsWith("--name=", StringComparison.Ordinal))?["--name=".Length..];
                return Ok(name is null ? Squeue : string.Join("\n", Squeue.Split('\n').Where(l => l.EndsWith("|" + name, StringComparison.Ordinal))));
            case "sacct":
                return Ok(Sacct);
            case "sinfo":
                return Ok(Sinfo);
            case "sbatch":
                var id = NextId++;
                var jobName = args.First(a => a.StartsWith("--job-name=", StringComparison.Ordinal))["--job-name=".Length..];
                Squeue += $"{id}|PENDING|None||2026-11-27T18:00:00|N/A|N/A|{jobName}\n";
                return Ok(id + "\n");
            default:
                return Ok("");
        }
    }

    private SlurmCommandResult Answer(string tool, IReadOnlyList<string> args, string? stdin) => Handler(tool, args, stdin);

    public FakeSlurm()
    {
        Handler = Default;
    }
}
