using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using GpuCommons.Cli;
using GpuCommons.Cli.Commands;

namespace GpuCommons.Server.Tests;

/// <summary>The CLI's sbatch habits and squeue-like output, in parts (parsing, formats) and as the real <c>gpuc</c>.</summary>
public sealed class CliFormatTests
{
    private static BatchScript Script(string text) => BatchScript.Parse("job.sh", text);

    [Fact]
    public void Directives_SbatchThenGpucThenFlags_EachOverridesTheOneBefore()
    {
        var s = Script("""
            #!/bin/bash
            #SBATCH --gpus=1
            #SBATCH -J from-sbatch
            #SBATCH -t 1-02:03:04
            #SBATCH -p local
            #SBATCH -A demo
            #GPUC --gpus 2
            #GPUC --name from-gpuc
            echo hi
            #SBATCH --gpus=7
            """);
        var o = new JobOptions();
        o.OverrideWith(s.Sbatch);
        o.Gpus.ShouldBe(1);
        o.Name.ShouldBe("from-sbatch");
        o.Time.ShouldBe("93784"); // seconds
        o.Partition.ShouldBe("local");
        o.Project.ShouldBe("demo");
        o.OverrideWith(s.Gpuc);
        o.Gpus.ShouldBe(2);
        o.Name.ShouldBe("from-gpuc");
        o.OverrideWith(new JobOptions { Gpus = 4 });
        o.Gpus.ShouldBe(4);
        o.Name.ShouldBe("from-gpuc");
        s.Interpreter.ShouldBe(["/bin/bash"]);
    }

    [Fact]
    public void Sbatch_GresPerNode_NodesOutputArrayDependency_AndUnknownOptionsAreNoted()
    {
        var s = Script("""
            #!/bin/sh
            #SBATCH --gres=gpu:a100:4 -N 2
            #SBATCH -o out-%j.txt --error=err.txt
            #SBATCH --array=0-999%50
            #SBATCH --dependency=afterok:12:13,singleton
            #SBATCH --mem=4G --exclusive
            """);
        s.Sbatch.GpusPerNode.ShouldBe(4);
        s.Sbatch.Nodes.ShouldBe(2);
        s.Sbatch.Output.ShouldBe("out-%j.txt");
        s.Sbatch.Error.ShouldBe("err.txt");
        s.Sbatch.Array!.ToJsonString().ShouldBe("""{"indices":"0-999","maxRunning":50}""");
        s.Sbatch.Dependency!.ToJsonString().ShouldBe("""[{"type":"afterok","jobs":[12,13]},{"type":"singleton"}]""");
        s.Ignored.Count.ShouldBe(2); // gpuc has no use for them: said, not silently dropped
        s.Ignored[0].ShouldContain("--mem=4G");
        s.Ignored[1].ShouldContain("--exclusive");
    }

    [Theory]
    [InlineData("30", 1800)]
    [InlineData("5:30", 330)]
    [InlineData("2:00:00", 7200)]
    [InlineData("1-12", 129600)]
    [InlineData("1-00:30", 88200)]
    [InlineData("2-03:04:05", 183845)]
    public void SlurmTimeLimits_AreReadAsSlurmReadsThem(string text, long seconds) =>
        BatchScript.SlurmTimeSeconds(text, "t").ShouldBe(seconds);

    [Theory]
    [InlineData("#SBATCH -t UNLIMITED", "time limit")]
    [InlineData("#SBATCH -t 1:2:3:4", "not a Slurm time")]
    [InlineData("#SBATCH --array=5-2", "is not N, A-B")]
    [InlineData("#SBATCH --array=0-9%0", "after %")]
    [InlineData("#SBATCH --dependency=after:3", "'after' is not afterok")]
    [InlineData("#SBATCH --dependency=afterok:1?afterany:2", "'?'")]
    [InlineData("#SBATCH --gres=gpu:a100:x4", "gpu[:TYPE][:COUNT]")]
    [InlineData("#GPUC --mem 4G", "not a gpuc submit option")]
    [InlineData("#SBATCH -J 'unclosed", "unclosed")]
    public void BadDirectives_SayTheLineAndWhatIsWrong(string line, string expected)
    {
        var e = Should.Throw<CliException>(() => Script("#!/bin/sh\n" + line + "\n"));
        e.Message.ShouldStartWith("job.sh:2");
        e.Message.ShouldContain(expected);
        e.ExitCode.ShouldBe(CliRunner.Usage);
    }

    [Fact]
    public void ScriptCommand_CarriesTheText_ShellsGetTheNameAsDollarZero_PythonItsArguments()
    {
        Script("#!/bin/bash\necho $0 $1\n").Command(["a"]).ShouldBe(["/bin/bash", "-c", "#!/bin/bash\necho $0 $1\n", "job.sh", "a"]);
        var py = BatchScript.Parse("t.py", "#!/usr/bin/env python3\nimport sys\n").Command(["x"]);
        py.ShouldBe(["/usr/bin/env", "python3", "-c", "#!/usr/bin/env python3\nimport sys\n", "x"]);
        var perl = Script("#!/usr/bin/perl\nprint 1;\n").Command([]);
        perl[0].ShouldBe("/bin/sh");
        perl.ShouldContain("#!/usr/bin/perl\nprint 1;\n");
    }

    [Fact]
    public async Task OutputFiles_GetTheJobsOutput_WithSlurmPatternsExpanded()
    {
        var dir = Directory.CreateTempSubdirectory("gpuc-out-").FullName;
        try
        {
            var cmd = BatchScript.WithOutputFiles(["/bin/sh", "-c", "echo to-out; echo to-err >&2"], Path.Combine(dir, "o-%j-%x-%%.txt"), null);
            var psi = new ProcessStartInfo(cmd[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in cmd.Skip(1))
            {
                psi.ArgumentList.Add(a);
            }

            psi.Environment["GPUC_JOB_ID"] = "42";
            psi.Environment["GPUC_JOB_NAME"] = "train";
            using var p = Process.Start(psi)!;
            var stdout = await p.StandardOutput.ReadToEndAsync();
            var stderr = await p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            p.ExitCode.ShouldBe(0);
            stdout.ShouldContain("to-out"); // the server's copy still gets it
            stderr.ShouldContain("to-err");
            var file = Path.Combine(dir, "o-42-train-%.txt");
            await ServerHarness.EventuallyAsync(() => Task.FromResult(File.Exists(file) && File.ReadAllText(file).Contains("to-err", StringComparison.Ordinal)), "the -o file", 10_000);
            File.ReadAllText(file).ShouldContain("to-out");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("local-1:0;local-1:1;local-1:2;local-1:3;local-1:4;local-1:5;local-1:6;local-1:7", "local-1:0-7")]
    [InlineData("local-1:0;local-1:2;local-1:3", "local-1:0,2-3")]
    [InlineData("local-1:3:0.5", "local-1:3(0.5)")]
    [InlineData("n1:0;n2:0;n3:0;n4:0", "n[1-4]")]
    [InlineData("gpu001:0;gpu002:0;gpu004:0;b200-12:0", "gpu[001-002,004],b200-12")]
    [InlineData("", "")]
    public void Where_IsShortAsSlurmHostLists(string placement, string expected) =>
        Output.Where(placement).ShouldBe(expected);

    [Theory]
    [InlineData(0, "0:00")]
    [InlineData(59, "0:59")]
    [InlineData(3599, "59:59")]
    [InlineData(3600, "1:00:00")]
    [InlineData(86399, "23:59:59")]
    [InlineData(400L * 86400, "400-00:00:00")]
    [InlineData(86400 + 3723, "1-01:02:03")]
    public void Durations_AreSlurms(long seconds, string expected) => Output.SlurmTime(seconds).ShouldBe(expected);

    [Fact]
    public void Errors_AreSaidOnce() =>
        Output.Once("gpus: gpus: 16 GPUs need 2 nodes").ShouldBe("gpus: 16 GPUs need 2 nodes");

    [Fact]
    public void Json_WritesPlusAndKoreanAsThemselves_ButNotControlCharacters()
    {
        var json = Output.Json(new JsonObject { ["name"] = "a+b <c> '김연구'", ["evil"] = "x\u001b[31my\u202ez" });
        json.ShouldContain("\"a+b <c> '김연구'\"");
        json.ShouldNotContain("\\u002B");
        json.ShouldNotContain("\u001b");
        json.ShouldNotContain("\u202e");
        JsonNode.Parse(json)!["evil"]!.GetValue<string>().ShouldBe("x\u001b[31my\u202ez");
        json.ShouldContain("\n  \"name\""); // indented
    }

    [Fact]
    public void Tables_ArePlainWhenPiped_SizedToColumns_AndEscapeEveryField()
    {
        Output.Detect(redirected: true, columns: null).Mode.ShouldBe(Output.Mode.Plain);
        Output.Detect(redirected: true, columns: "132").ShouldBe((Output.Mode.Table, 132));
        Output.Detect(redirected: false, columns: null).ShouldBe((Output.Mode.Table, (int?)null));

        var sheet = new Output.Sheet("ID", "NAME", "REASON");
        sheet.Add("7", "tab\there", "[red]esc\u001b[0m");
        var plain = new StringWriter();
        sheet.Write(plain, Output.Mode.Plain, null);
        plain.ToString().ShouldBe("7\ttab\\there\t[red]esc\\e[0m" + Environment.NewLine);

        var table = new StringWriter();
        sheet.Write(table, Output.Mode.Table, 100);
        var lines = table.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        lines[0].ShouldStartWith("ID");
        lines[1].ShouldContain("[red]esc\\e[0m"); // markup shown, not applied
        lines.ShouldAllBe(l => l.Length <= 100);
    }

    [Fact]
    public void Show_LabelsFields_WithUnitsAndSlurmTimes()
    {
        var job = JsonNode.Parse("""
            {"id": 5, "name": "t", "project": "demo", "user": "bob", "gpus": 0.5, "walltimeSeconds": 34560000, "priority": "normal",
             "state": "pending", "submitTime": "2026-01-02T03:04:05Z", "reason": "resources", "reasonText": "waiting for GPUs",
             "attempt": 0, "command": ["sh", "-c", "echo it's"], "somethingNew": 3}
            """)!.AsObject();
        var f = ClientCommands.JobFields(job, DateTimeOffset.Parse("2026-01-02T04:00:00Z", System.Globalization.CultureInfo.InvariantCulture)).ToDictionary(x => x.Label, x => x.Value);
        f["GPUs"].ShouldBe("0.5 GPU");
        f["Time limit"].ShouldBe("400-00:00:00");
        f["Reason"].ShouldBe("resources: waiting for GPUs");
        f["Submitted"].ShouldBe("2026-01-02 03:04:05Z");
        f["Command"].ShouldBe("sh -c 'echo it'\\''s'");
        f["Something new"].ShouldBe("3");
        f.Keys.ShouldNotContain("walltimeSeconds");
    }
}

/// <summary>The real <c>gpuc</c> against a real <c>gpuc serve</c>: a batch script, the queue piped, logs, errors.</summary>
[Collection("processes")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CliProcessTests
{
    [Theory]
    [InlineData("--max-concurrent-starts", "0", "--max-concurrent-starts must be 1 to 1024, got 0")]
    [InlineData("--slurm-niceness", "20", "--slurm-niceness must be 0 to 19, got 20")]
    [InlineData("--slurm-niceness", "-1", "--slurm-niceness must be 0 to 19, got -1")]
    public async Task ServeWithAnOutOfRangeStartOption_IsAUsageError_NamingIt(string option, string value, string message)
    {
        var dir = Directory.CreateTempSubdirectory("gpuc-serve-args-").FullName;
        try
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
            foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "gpuc.dll"), "serve", "--backend", "slurm", "--data-dir", Path.Combine(dir, "data"), option, value })
            {
                psi.ArgumentList.Add(a);
            }

            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            await p.WaitForExitAsync(cts.Token);
            var err = await stderr;
            p.ExitCode.ShouldBe(CliRunner.Usage, err + await stdout);
            err.ShouldContain(message);
            err.ShouldNotContain("   at ");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static async Task<(int Code, string Out, string Err)> GpucAsync(ServeProcess s, string cwd, string token, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = cwd };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "gpuc.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["GPUC_URL"] = s.Url;
        psi.Environment["GPUC_TOKEN"] = token;
        psi.Environment.Remove("COLUMNS");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task BatchScript_FromAPrivateDirectory_HonoursSbatchGpus_QueueAndLogsShowWhy()
    {
        var dataDir = Path.Combine(Path.GetTempPath(), "gpuc-cli-" + Guid.NewGuid().ToString("N"));
        // A directory only this account may enter (as /root is): a job run as another account cannot start there.
        var home = Directory.CreateTempSubdirectory("gpuc-cli-home-").FullName;
        File.SetUnixFileMode(home, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var s = await ServeProcess.StartAsync(dataDir);
        try
        {
            var token = File.ReadAllText(Path.Combine(dataDir, "admin-token")).Trim();
            File.WriteAllText(Path.Combine(home, "job.sh"), """
                #!/bin/sh
                #SBATCH --gpus=3
                #SBATCH -J from-sbatch
                #SBATCH -t 5:00
                #SBATCH --mem=1G
                echo "gpus=$CUDA_VISIBLE_DEVICES args=$*"
                echo "complaint on stderr" >&2
                exit 2
                """);
            File.SetUnixFileMode(Path.Combine(home, "job.sh"), UnixFileMode.UserRead | UnixFileMode.UserWrite);

            var (code, stdout, stderr) = await GpucAsync(s, home, token, "submit", "--project", "demo", "job.sh", "one", "two");
            code.ShouldBe(0, stderr);
            stderr.ShouldContain("--mem=1G ignored");
            var id = long.Parse(stdout.Trim().Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture);

            using var admin = s.Client("admin");
            JsonElement job = default;
            await ServerHarness.EventuallyAsync(async () =>
            {
                job = await admin.GetFromJsonAsync<JsonElement>($"/api/jobs/{id}");
                return job.GetProperty("state").GetString() is "finished" or "failed" or "cancelled";
            }, $"job {id} to end", 30_000);
            job.GetProperty("gpus").GetDouble().ShouldBe(3);
            job.GetProperty("name").GetString().ShouldBe("from-sbatch");
            job.GetProperty("walltimeSeconds").GetInt64().ShouldBe(300);
            job.GetProperty("state").GetString().ShouldBe("failed", s.Output); // the script's exit 2, not a failed start
            job.GetProperty("exitCode").GetInt32().ShouldBe(2, job.ToString());

            // Piped: tab-separated, no header; the failed job is still listed, with why.
            var (qc, queue, qerr) = await GpucAsync(s, home, token, "queue");
            qc.ShouldBe(0, qerr);
            var row = queue.Split('\n').Single(l => l.StartsWith(id + "\t", StringComparison.Ordinal)).Split('\t');
            row.Length.ShouldBe(10);
            row[1].ShouldBe("from-sbatch");
            row[4].ShouldBe("failed");
            row[6].ShouldBe("5:00");
            row[7].ShouldBe("3");
            row[8].ShouldMatch(@"^local-1:\d(-\d|,\d)*");
            row[9].ShouldContain("exit code 2");
            queue.ShouldNotContain("JOBID");

            var (lc, logs, lerr) = await GpucAsync(s, home, token, "logs", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            lc.ShouldBe(0, lerr);
            logs.ShouldMatch(@"gpus=\d,\d,\d args=one two");
            lerr.ShouldContain("complaint on stderr");

            // One error, said once; the exit code says it was bad input.
            var (ec, _, eerr) = await GpucAsync(s, home, token, "submit", "-p", "demo", "-g", "16", "-t", "1h", "--", "true");
            ec.ShouldBe(CliRunner.Usage);
            eerr.Split('\n').Where(l => l.StartsWith("error:", StringComparison.Ordinal)).ShouldHaveSingleItem().ShouldStartWith("error: gpus: 16 GPUs");
            eerr.ShouldNotContain("gpus: gpus:");
            eerr.ShouldNotContain("400");

            // Arrays: one record (its tasks fail at once, as job.sh does, so the last task is far off); the queue shows its tasks as ID_T and its remainder as ID_[…%2]; one task or all cancelled.
            var (ac, aout, aerr) = await GpucAsync(s, home, token, "submit", "-p", "demo", "--array", "0-999%2", "--json", "job.sh");
            ac.ShouldBe(0, aerr);
            var arrayId = JsonNode.Parse(aout)!["id"]!.GetValue<long>();
            JsonNode.Parse(aout)!["array"]!["maxRunning"]!.GetValue<int>().ShouldBe(2);
            var (qc2, queue2, qerr2) = await GpucAsync(s, home, token, "queue");
            qc2.ShouldBe(0, qerr2);
            queue2.Split('\n').Select(l => l.Split('\t')[0]).ShouldContain(x => x.StartsWith($"{arrayId}_[", StringComparison.Ordinal) && x.EndsWith("%2]", StringComparison.Ordinal), queue2);
            var (sc, sout, serr) = await GpucAsync(s, home, token, "show", $"{arrayId}_999", "--json");
            sc.ShouldBe(0, serr);
            JsonNode.Parse(sout)!["arrayTaskId"]!.GetValue<long>().ShouldBe(999);
            (await GpucAsync(s, home, token, "cancel", $"{arrayId}_999")).Code.ShouldBe(0);
            (await GpucAsync(s, home, token, "cancel", arrayId.ToString(System.Globalization.CultureInfo.InvariantCulture))).Code.ShouldBe(0);
            (await GpucAsync(s, home, token, "show", "12_x")).Code.ShouldBe(CliRunner.Usage);

            // After --, a file is a command to run, not a script to read.
            var (dc, dout, derr) = await GpucAsync(s, home, token, "submit", "-p", "demo", "-g", "1", "-t", "1m", "--json", "--", "job.sh", "x");
            dc.ShouldBe(0, derr);
            JsonNode.Parse(dout)!["command"]!.AsArray().Select(x => x!.GetValue<string>()).ShouldBe(["job.sh", "x"]);

            // JSON for scripts: no needless escapes.
            var (jc, json, jerr) = await GpucAsync(s, home, token, "submit", "-p", "demo", "-g", "1", "-t", "1m", "-J", "a+b", "--json", "--", "true");
            jc.ShouldBe(0, jerr);
            json.ShouldContain("\"name\": \"a+b\"");
        }
        finally
        {
            await s.DisposeAsync();
            try
            {
                Directory.Delete(dataDir, true);
                Directory.Delete(home, true);
            }
            catch (IOException)
            {
            }
        }
    }
}

public sealed class CliArrayIdTests
{
    [Theory]
    [InlineData("12", 12L, null)]
    [InlineData("12_7", 12L, 7L)]
    public void JobIds_AreIdOrArrayUnderscoreTask(string text, long id, long? task) =>
        ClientCommands.JobRef(text).ShouldBe((id, task));

    [Theory]
    [InlineData("12_")]
    [InlineData("_7")]
    [InlineData("12_7_1")]
    [InlineData("-3")]
    [InlineData("x")]
    public void BadJobIds_AreUsageErrors(string text) =>
        Should.Throw<CliException>(() => ClientCommands.JobRef(text)).ExitCode.ShouldBe(CliRunner.Usage);

    [Theory]
    [InlineData(7, 8, 8, 10)]
    [InlineData(1000, 0, 8, 10)]
    [InlineData(1000, 8, 0, 10)]
    [InlineData(1000, 8, 8, -1)]
    [InlineData(1000, 8, 8, 20)]
    public async Task BadSlurmWaveArguments_AreUsageErrors_NamingTheOptions(int wave, int clients, int concurrentStarts, int niceness)
    {
        // Refused before anything is started or submitted.
        var e = await Should.ThrowAsync<CliException>(() => GpuCommons.Cli.Commands.BenchServerWave.RunAsync(wave, clients, concurrentStarts, niceness, CancellationToken.None));
        e.ExitCode.ShouldBe(CliRunner.Usage);
        e.Message.ShouldContain("--max-concurrent-starts");
        e.Message.ShouldContain("--slurm-wave");
        e.Message.ShouldContain("--slurm-niceness");
    }

    /// <summary>A job as the CLI reads the server's answer.</summary>
    private static GpuCommons.Contracts.JobDto Job(string json) => JsonSerializer.Deserialize(json, GpuCommons.Contracts.ContractsJson.Default.JobDto)!;

    [Fact]
    public void TheQueue_ShowsTasksAndTheRemainder_AsSqueueDoes()
    {
        ClientCommands.QueueId(Job("""{"id":20,"arrayJobId":12,"arrayTaskId":7,"state":"running"}""")).ShouldBe("12_7");
        ClientCommands.QueueId(Job("""{"id":12,"state":"pending","array":{"indices":"0-999","maxRunning":50,"pendingTasks":"8-999"}}""")).ShouldBe("12_[8-999%50]");
        ClientCommands.QueueId(Job("""{"id":12,"state":"pending","array":{"indices":"0-999","pendingTasks":""}}""")).ShouldBeNull();
        ClientCommands.QueueId(Job("""{"id":12,"state":"finished","array":{"indices":"0-9"}}""")).ShouldBe("12");
    }

    [Fact]
    public void ArrayAndDependencyFlags_BecomeTheApisFields()
    {
        var a = BatchScript.ParseArray("0-999:2,2000%50", "--array");
        a["indices"]!.GetValue<string>().ShouldBe("0-999:2,2000");
        a["maxRunning"]!.GetValue<int>().ShouldBe(50);
        var d = BatchScript.ParseDependency("afterok:12:13,afternotok:4,afterany:5,singleton", "--dependency");
        d.ToJsonString().ShouldBe("""[{"type":"afterok","jobs":[12,13]},{"type":"afternotok","jobs":[4]},{"type":"afterany","jobs":[5]},{"type":"singleton"}]""");
        Should.Throw<CliException>(() => BatchScript.ParseDependency("afterok:1?afterany:2", "--dependency"));
    }
}
