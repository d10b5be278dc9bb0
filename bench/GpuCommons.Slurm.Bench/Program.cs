using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using GpuCommons.Backends;
using GpuCommons.Backends.Slurm;
using GpuCommons.Backends.Slurm.Parsing;

// Benchmarks of the Slurm backend; prints one JSON object.
//   dotnet run -c Release --project bench/GpuCommons.Slurm.Bench -- submit [N=2000]      (needs the local Slurm, root)
//   dotnet run -c Release --project bench/GpuCommons.Slurm.Bench -- reconcile [N=10000]  (no Slurm needed: generated output)
var mode = args.Length > 0 ? args[0] : "reconcile";
var n = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : mode == "submit" ? 2000 : 10_000;
var result = mode switch
{
    "submit" => await SubmitBench.RunAsync(n),
    "reconcile" => await ReconcileBench.RunAsync(n),
    _ => throw new ArgumentException("mode: submit | reconcile"),
};
Console.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));

internal static class SubmitBench
{
    private static readonly string[] Nodes = ["n1", "n2", "n3", "n4"];

    public static async Task<Dictionary<string, object>> RunAsync(int n)
    {
        const int rounds = 8;
        var per = n / rounds;
        var r = new Dictionary<string, object> { ["benchmark"] = "submit", ["jobs_per_method"] = per * rounds, ["held"] = true, ["rounds"] = rounds };
        var options = new SlurmBackendOptions();
        options.ExtraSbatchArguments.Add("--hold");
        await using var backend = new SlurmBackend(options);
        var baseId = (TimeProvider.System.GetUtcNow().ToUnixTimeSeconds() % 1_000_000) * 100_000;
        var logs = Path.Combine(Path.GetTempPath(), "gpuc-slurm-bench");
        var ours = new List<string>();
        var plainIds = new List<string>();
        var bashTotal = TimeSpan.Zero;
        var netTotal = TimeSpan.Zero;
        var backendTotal = TimeSpan.Zero;
        var failures = 0;

        // The three methods interleave in rounds (order rotating), so that slurmctld's growing job table and the
        // machine's other load weigh on all three alike. Jobs are held so that running jobs do not steal the 2 cores.
        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < 3; k++)
            {
                switch ((round + k) % 3)
                {
                    case 0:
                        // Plain sbatch from a shell loop, as an operator would time it.
                        var sw0 = Stopwatch.StartNew();
                        var (_, output) = Run("bash", "-c",
                            $"for ((i=0;i<{per};i++)); do sbatch --parsable --hold --gpus-per-node=1 --nodelist=n$((i%4+1)) --time=1 -J plain-$i -o /dev/null --wrap=true || echo FAIL; done");
                        bashTotal += sw0.Elapsed;
                        failures += output.Split('\n').Count(l => l == "FAIL");
                        plainIds.AddRange(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
                        break;
                    case 1:
                        // Plain sbatch spawned straight from .NET (no shell): the process cost the backend also pays.
                        netTotal += DirectSbatch(per, "plain-net", plainIds);
                        break;
                    default:
                        // Through SlurmBackend.StartAsync: name index (read once), pinned, script on stdin, --export=NONE.
                        var sw = Stopwatch.StartNew();
                        for (var i = 0; i < per; i++)
                        {
                            var id = baseId + ours.Count;
                            var job = new BackendJob(id, "bench", "proj", "root", ["/bin/true"], null, new Dictionary<string, string>(),
                                [new AssignedNode(Nodes[ours.Count % 4], [0], [])], TimeSpan.FromMinutes(1), logs, false);
                            ours.Add((await backend.StartAsync(job, default)).ExternalId);
                        }

                        backendTotal += sw.Elapsed;
                        break;
                }
            }

            Cancel(plainIds);
            plainIds.Clear();
        }

        r["plain_sbatch_bash_loop_s"] = Math.Round(bashTotal.TotalSeconds, 2);
        r["plain_sbatch_dotnet_s"] = Math.Round(netTotal.TotalSeconds, 2);
        r["slurm_backend_s"] = Math.Round(backendTotal.TotalSeconds, 2);
        r["plain_sbatch_failures"] = failures;
        r["ratio_backend_to_plain_sbatch_bash"] = Math.Round(backendTotal / bashTotal, 3);
        r["ratio_backend_to_plain_sbatch_dotnet"] = Math.Round(backendTotal / netTotal, 3);
        r["target_ratio"] = 1.5;
        r["backend_jobs_per_s"] = Math.Round(ours.Count / backendTotal.TotalSeconds, 1);

        // Real reconciliation passes over the backend's jobs (all held, in the queue), against the live slurmctld.
        var reconciler = new SlurmReconciler(backend);
        var now = TimeProvider.System.GetUtcNow();
        var expected = Enumerable.Range(0, ours.Count).Select(i => new ExpectedJob(baseId + i, 0, ExpectedJobState.Submitted,
            long.Parse(ours[i], CultureInfo.InvariantCulture), now, [Nodes[i % 4]])).ToList();
        var passes = new List<double>();
        ReconciliationReport? report = null;
        for (var p = 0; p < 5; p++)
        {
            report = await reconciler.ReconcileAsync(expected, default);
            passes.Add(report.Elapsed.TotalMilliseconds);
        }

        r["real_reconcile_pass_ms"] = passes.Select(x => Math.Round(x, 1)).ToArray();
        r["real_reconcile_expected_jobs"] = expected.Count;
        r["real_reconcile_slurm_rows"] = report!.SlurmJobs;
        r["real_reconcile_discrepancies"] = report.Discrepancies.Count;
        Cancel(ours);
        return r;
    }

    private static TimeSpan DirectSbatch(int n, string prefix, List<string> ids)
    {
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < n; i++)
        {
            var (_, o) = Run("sbatch", "--parsable", "--hold", "--gpus-per-node=1", $"--nodelist=n{(i % 4) + 1}", "--time=1",
                $"-J{prefix}-{i}", "-o", "/dev/null", "--wrap=true");
            ids.Add(o.Trim());
        }

        return sw.Elapsed;
    }

    private static void Cancel(List<string> ids)
    {
        foreach (var chunk in ids.Where(i => long.TryParse(i, out _)).Chunk(500))
        {
            Run("scancel", [.. chunk]);
        }
    }

    private static (int, string) Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, o.Result);
    }
}

internal static class ReconcileBench
{
    public static async Task<Dictionary<string, object>> RunAsync(int n)
    {
        var t0 = new DateTimeOffset(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);
        var now = t0.AddHours(1);
        // Slurm's state for n jobs in the exact squeue format the backend asks for (see Fixtures/squeue-all.txt):
        // 60% running, 30% pending, 10% completed; 0.5% of expected jobs missing (lost), 0.5% unknown extras.
        var squeue = new StringBuilder(n * 80);
        var expected = new List<ExpectedJob>(n);
        var lost = n / 200;
        for (var i = 0; i < n; i++)
        {
            var node = $"n{(i % 3400) + 1:D4}";
            var sid = 100_000 + i;
            var state = (i % 10) switch { < 6 => "RUNNING", < 9 => "PENDING", _ => "COMPLETED" };
            var start = state == "PENDING" ? "N/A" : t0.AddSeconds(i % 600).ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);
            var end = state == "COMPLETED" ? now.AddSeconds(-10).ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture) : "N/A";
            if (i >= lost)
            {
                squeue.Append(sid).Append('|').Append(state).Append('|').Append(state == "PENDING" ? "Priority" : "None").Append('|')
                    .Append(state == "PENDING" ? "" : node).Append("|2026-11-27T11:59:00|").Append(start).Append('|').Append(end)
                    .Append("|gpuc-").Append(i).Append('\n');
            }

            expected.Add(new ExpectedJob(i, 0, state == "PENDING" ? ExpectedJobState.Submitted : ExpectedJobState.Running, sid, now.AddMinutes(-1), [node]));
        }

        for (var i = 0; i < lost; i++)
        {
            squeue.Append(900_000 + i).Append("|RUNNING|None|n0001|2026-11-27T11:59:00|2026-11-27T12:00:00|N/A|gpuc-").Append(5_000_000 + i).Append('\n');
        }

        var text = squeue.ToString();
        var options = new SlurmReconcilerOptions();

        // Parse + diff only (the pure part), 20 passes after 3 warm-up passes.
        var pure = new List<double>();
        var found = 0;
        for (var p = 0; p < 23; p++)
        {
            var sw = Stopwatch.StartNew();
            var parsed = SlurmOutputParser.ParseSqueue(text);
            var snapshot = new SlurmSnapshot(now, parsed.Rows, [], [], parsed.Errors);
            found = SlurmReconciler.Diff("gpuc-", expected, snapshot, options, now).Count;
            sw.Stop();
            if (p >= 3)
            {
                pure.Add(sw.Elapsed.TotalMilliseconds);
            }
        }

        // The whole ReconcileAsync path (runner → parse → sacct for the missing → diff → record), with the tools answered from memory.
        var sacct = new StringBuilder();
        for (var i = 0; i < lost; i++)
        {
            sacct.Append(100_000 + i).Append("|RUNNING|0:0|2026-11-27T11:59:00|2026-11-27T12:00:00|Unknown|3600|n0001|gres/gpu=1|gpuc-").Append(i).Append('\n');
        }

        var runner = new MemoryRunner(text, sacct.ToString());
        var clock = new FixedTime(now);
        await using var backend = new SlurmBackend(new SlurmBackendOptions(), runner, clock);
        var reconciler = new SlurmReconciler(backend, null, clock);
        var full = new List<double>();
        ReconciliationReport? report = null;
        for (var p = 0; p < 13; p++)
        {
            report = await reconciler.ReconcileAsync(expected, default);
            if (p >= 3)
            {
                full.Add(report.Elapsed.TotalMilliseconds);
            }
        }

        return new Dictionary<string, object>
        {
            ["benchmark"] = "reconcile",
            ["jobs"] = n,
            ["squeue_bytes"] = text.Length,
            ["input"] = "generated squeue/sacct text in the captured format (no Slurm process)",
            ["parse_diff_ms_p50"] = Math.Round(Median(pure), 2),
            ["parse_diff_ms_max"] = Math.Round(pure.Max(), 2),
            ["reconcile_async_ms_p50"] = Math.Round(Median(full), 2),
            ["reconcile_async_ms_max"] = Math.Round(full.Max(), 2),
            ["discrepancies"] = found,
            ["discrepancies_full_path"] = report!.Discrepancies.Count,
            ["target_ms"] = 2000,
        };
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s[s.Length / 2];
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private sealed class MemoryRunner(string squeue, string sacct) : ISlurmCommandRunner
    {
        public Task<SlurmCommandResult> RunAsync(string tool, IReadOnlyList<string> args, string? stdin, TimeSpan timeout, CancellationToken cancellationToken) =>
            Task.FromResult(new SlurmCommandResult(0, tool switch { "squeue" => squeue, "sacct" => sacct, _ => "" }, "", TimeSpan.FromMilliseconds(1)));
    }
}
