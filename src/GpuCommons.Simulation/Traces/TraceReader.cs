using System.Globalization;
using System.IO.Compression;
using GpuCommons.Core;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Simulation.Traces;

/// <summary>
/// Reads a whole trace into memory and sorts it by submit time (ties keep file order), because the Philly table and
/// other traces are not sorted. Files ending in <c>.gz</c> are decompressed on the fly. Every malformed row is a
/// <see cref="SpecException"/> naming the file, the line and the column; nothing is guessed silently.
/// </summary>
public static class TraceReader
{
    public const string PhillyHeader = "timestamp,duration,num_gpus,gpu_time,cluster";
    public const string SiaHeader = "name,time,application,num_replicas,batch_size";
    public const string AlibabaDlrmHeader = "instance_sn,role,app_name,cpu_request,cpu_limit,gpu_request,gpu_limit,rdma_request,rdma_limit,memory_request,memory_limit,disk_request,disk_limit,max_instance_per_node,creation_time,scheduled_time,deletion_time";

    /// <summary>Columns of the GpuCommons job CSV; the first four are required.</summary>
    public static readonly string[] GpucColumns = ["id", "submit_s", "duration_s", "gpus", "nodes", "walltime_s", "tenant", "user", "priority", "partition", "checkpointable", "cpus", "memory_mib", "gpu_model"];

    public static List<TraceJob> Read(string path, TraceFormat format = TraceFormat.Auto)
    {
        if (!File.Exists(path))
        {
            throw new SpecException("trace", $"no such file: {path}");
        }

        using var stream = File.OpenRead(path);
        using Stream data = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(stream, CompressionMode.Decompress) : stream;
        using var reader = new StreamReader(data);
        return Read(reader, Path.GetFileName(path), format);
    }

    public static List<TraceJob> Read(TextReader reader, string file, TraceFormat format = TraceFormat.Auto)
    {
        var headerLine = reader.ReadLine();
        if (string.IsNullOrWhiteSpace(headerLine))
        {
            throw new SpecException($"{file}, line 1", "empty file; expected a CSV header");
        }

        var header = CsvRow.SplitHeader(headerLine);
        if (format == TraceFormat.Auto)
        {
            format = Detect(header, file);
        }

        var jobs = format switch
        {
            TraceFormat.Philly => ReadPhilly(reader, file, header),
            TraceFormat.Sia => ReadSia(reader, file, header),
            TraceFormat.AlibabaDlrm => ReadAlibabaDlrm(reader, file, header),
            _ => ReadGpuc(reader, file, header),
        };

        // Stable sort by submit time: List.Sort is not stable, so break ties by the id (row order).
        jobs.Sort(static (a, b) =>
        {
            var c = a.SubmitSeconds.CompareTo(b.SubmitSeconds);
            return c != 0 ? c : a.Id.CompareTo(b.Id);
        });
        return jobs;
    }

    public static TraceFormat ParseFormat(string name) => name.ToLowerInvariant() switch
    {
        "auto" => TraceFormat.Auto,
        "philly" => TraceFormat.Philly,
        "gpuc-csv" or "gpuc" or "csv" => TraceFormat.GpucCsv,
        "sia" or "pollux" or "sia-pollux" => TraceFormat.Sia,
        "alibaba-dlrm" or "alibaba-gpu-2025-dlrm" => TraceFormat.AlibabaDlrm,
        _ => throw new SpecException("trace-format", $"unknown trace format '{name}' (known: philly, gpuc-csv, sia, alibaba-dlrm, auto)"),
    };

    private static TraceFormat Detect(List<string> header, string file)
    {
        var joined = string.Join(",", header);
        if (joined == PhillyHeader)
        {
            return TraceFormat.Philly;
        }

        if (joined == SiaHeader)
        {
            return TraceFormat.Sia;
        }

        if (joined == AlibabaDlrmHeader)
        {
            return TraceFormat.AlibabaDlrm;
        }

        if (header.Contains("id") && header.Contains("submit_s"))
        {
            return TraceFormat.GpucCsv;
        }

        throw new SpecException($"{file}, line 1", $"unknown trace header '{joined}' (expected the Philly table '{PhillyHeader}', a Sia/Pollux mix '{SiaHeader}', or the GpuCommons job CSV 'id,submit_s,duration_s,gpus,...')");
    }

    private static void RequireHeader(List<string> header, string expected, string file)
    {
        var joined = string.Join(",", header);
        if (joined != expected)
        {
            throw new SpecException($"{file}, line 1", $"expected the header '{expected}', got '{joined}'");
        }
    }

    private static List<TraceJob> ReadPhilly(TextReader reader, string file, List<string> header)
    {
        RequireHeader(header, PhillyHeader, file);
        var row = new CsvRow(file, header);
        var raw = new List<(DateTime Submit, double Duration, int Gpus, string Cluster, int Line)>(90_000);
        var line = 1;
        string? text;
        var clusters = new Dictionary<string, string>(StringComparer.Ordinal);
        while ((text = reader.ReadLine()) is not null)
        {
            line++;
            if (text.Length == 0)
            {
                continue;
            }

            row.Load(text, line);
            var ts = row.Text(0);
            if (!DateTime.TryParseExact(ts, "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var submit))
            {
                throw row.Error(0, $"'{ts}' is not a time of the form YYYY-MM-DD HH:MM:SS");
            }

            var duration = row.Number(1);
            if (duration <= 0)
            {
                throw row.Error(1, $"must be more than 0 seconds, got {row[1].Trim()}");
            }

            var gpus = row.WholeNumber(2);
            if (gpus < 1)
            {
                throw row.Error(2, $"must be at least 1, got {gpus}");
            }

            var gpuTime = row.Number(3);
            if (Math.Abs(gpuTime - (duration * gpus)) > 1e-6 * Math.Max(1, gpuTime))
            {
                throw row.Error(3, $"{row[3].Trim()} is not duration × num_gpus ({duration * gpus})");
            }

            var cluster = row.Text(4);
            if (!clusters.TryGetValue(cluster, out var interned))
            {
                clusters[cluster] = interned = cluster;
            }

            raw.Add((submit, duration, gpus, interned, line));
        }

        if (raw.Count == 0)
        {
            return [];
        }

        var first = raw.Min(r => r.Submit);
        var jobs = new List<TraceJob>(raw.Count);
        for (var i = 0; i < raw.Count; i++)
        {
            var r = raw[i];
            var id = i + 1;
            jobs.Add(new TraceJob
            {
                Id = id,
                Label = id.ToString(CultureInfo.InvariantCulture),
                SubmitSeconds = (r.Submit - first).TotalSeconds,
                DurationSeconds = r.Duration,
                Gpus = r.Gpus,
                Tenant = r.Cluster,
            });
        }

        return jobs;
    }

    /// <summary>
    /// Nominal GPU-hours of each Sia/Pollux application class (the mixes have no run time): inside the bucket the
    /// class was assigned from (FORMAT.md): cifar10 and ncf under 1 GPU-hour, bert and deepspeech2 1–10, yolov3
    /// 10–100, imagenet over 100. The value is the bucket's geometric middle (imagenet: 200).
    /// </summary>
    public static double SiaNominalGpuHours(string application) => application switch
    {
        "cifar10" or "ncf" => 0.5,
        "bert" or "deepspeech2" => 3.16,
        "yolov3" => 31.6,
        "imagenet" => 200,
        _ => -1,
    };

    private static List<TraceJob> ReadSia(TextReader reader, string file, List<string> header)
    {
        RequireHeader(header, SiaHeader, file);
        var row = new CsvRow(file, header);
        var jobs = new List<TraceJob>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var line = 1;
        string? text;
        while ((text = reader.ReadLine()) is not null)
        {
            line++;
            if (text.Length == 0)
            {
                continue;
            }

            row.Load(text, line);
            var name = row.Text(0);
            if (!names.Add(name))
            {
                throw row.Error(0, $"duplicate job name '{name}'");
            }

            var time = row.Number(1);
            if (time < 0)
            {
                throw row.Error(1, $"must not be negative, got {time}");
            }

            var app = row.Text(2).ToLowerInvariant();
            var gpuHours = SiaNominalGpuHours(app);
            if (gpuHours < 0)
            {
                throw row.Error(2, $"unknown application '{app}' (known: cifar10, ncf, bert, deepspeech2, yolov3, imagenet)");
            }

            var replicas = row.WholeNumber(3);
            if (replicas < 1)
            {
                throw row.Error(3, $"must be at least 1, got {replicas}");
            }

            row.WholeNumber(4);
            var id = jobs.Count + 1;
            jobs.Add(new TraceJob
            {
                Id = id,
                Label = name,
                SubmitSeconds = time,
                DurationSeconds = Math.Round(gpuHours * 3600 / replicas),
                Gpus = replicas,
                Tenant = "workload",
                User = app,
            });
        }

        return jobs;
    }

    /// <summary>
    /// The Alibaba 2025 GPU-disaggregated DLRM trace: GPU-node (HN) instances become jobs with their cores (vCPUs, rounded
    /// up), memory (GiB) and GPUs; CPU-node (CN) instances ask for no GPU and are left out. An empty creation time is
    /// an instance that ran before the trace (submit 0); an empty deletion time one that outlived it (it runs to the
    /// last time in the trace). Runtime: deletion − scheduled (creation when never scheduled).
    /// </summary>
    private static List<TraceJob> ReadAlibabaDlrm(TextReader reader, string file, List<string> header)
    {
        RequireHeader(header, AlibabaDlrmHeader, file);
        var row = new CsvRow(file, header);
        var raw = new List<(string Name, string App, double Cpu, double Gpu, double MemGiB, double? Created, double? Scheduled, double? Deleted)>();
        double last = 0;
        var line = 1;
        string? text;
        while ((text = reader.ReadLine()) is not null)
        {
            line++;
            if (text.Length == 0)
            {
                continue;
            }

            row.Load(text, line);
            var role = row.Text(1);
            if (role is not ("HN" or "CN"))
            {
                throw row.Error(1, $"'{role}' is not HN or CN");
            }

            double? created = row.OptionalNumber(14), scheduled = row.OptionalNumber(15), deleted = row.OptionalNumber(16);
            foreach (var t in new[] { created, scheduled, deleted })
            {
                last = Math.Max(last, t ?? 0);
            }

            if (role == "CN")
            {
                continue;
            }

            var gpu = row.Number(5);
            if (gpu <= 0 || gpu > 64 || (gpu < 1 && Math.Abs((gpu * 1000) - Math.Round(gpu * 1000)) > 1e-6) || (gpu > 1 && gpu != Math.Floor(gpu)))
            {
                throw row.Error(5, $"a GPU node instance needs a whole number of GPUs or a share of one in steps of 0.001, got {row[5].Trim()}");
            }

            var cpu = row.Number(3);
            var mem = row.Number(9);
            if (cpu < 0 || cpu > ResourceRequest.MaxCpus)
            {
                throw row.Error(3, $"must be between 0 and {ResourceRequest.MaxCpus} vCPUs, got {row[3].Trim()}");
            }

            if (mem < 0 || mem * 1024 > ResourceRequest.MaxMemoryMiB)
            {
                throw row.Error(9, $"must be between 0 and {ResourceRequest.MaxMemoryMiB / 1024} GiB, got {row[9].Trim()}");
            }

            raw.Add((row.Text(0), row.Text(2), cpu, gpu, mem, created, scheduled, deleted));
        }

        var jobs = new List<TraceJob>(raw.Count);
        foreach (var r in raw)
        {
            var submit = r.Created ?? 0;
            var start = r.Scheduled ?? submit;
            jobs.Add(new TraceJob
            {
                Id = jobs.Count + 1,
                Label = r.Name,
                SubmitSeconds = submit,
                DurationSeconds = Math.Max(1, (r.Deleted ?? last) - start),
                Gpus = r.Gpu,
                Tenant = r.App,
                Cpus = r.Cpu > 0 ? (int)Math.Ceiling(r.Cpu) : null,
                MemoryMiB = r.MemGiB > 0 ? (long)Math.Ceiling(r.MemGiB * 1024) : null,
            });
        }

        return jobs;
    }

    private static List<TraceJob> ReadGpuc(TextReader reader, string file, List<string> header)
    {
        for (var i = 0; i < header.Count; i++)
        {
            if (Array.IndexOf(GpucColumns, header[i]) < 0)
            {
                throw new SpecException($"{file}, line 1, column {i + 1}", $"unknown column '{header[i]}' (known: {string.Join(",", GpucColumns)})");
            }

            if (header.IndexOf(header[i]) != i)
            {
                throw new SpecException($"{file}, line 1, column {i + 1}", $"duplicate column '{header[i]}'");
            }
        }

        foreach (var required in GpucColumns.AsSpan(0, 4))
        {
            if (!header.Contains(required))
            {
                throw new SpecException($"{file}, line 1", $"missing column '{required}' (required: id,submit_s,duration_s,gpus)");
            }
        }

        int C(string name) => header.IndexOf(name);
        int cId = C("id"), cSubmit = C("submit_s"), cDuration = C("duration_s"), cGpus = C("gpus"), cNodes = C("nodes"), cWall = C("walltime_s"),
            cTenant = C("tenant"), cUser = C("user"), cPriority = C("priority"), cPartition = C("partition"), cCkpt = C("checkpointable"), cCpus = C("cpus"), cMem = C("memory_mib"), cModel = C("gpu_model");
        var row = new CsvRow(file, header);
        var jobs = new List<TraceJob>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var line = 1;
        string? text;
        while ((text = reader.ReadLine()) is not null)
        {
            line++;
            if (text.Length == 0 || text[0] == '#')
            {
                continue;
            }

            row.Load(text, line);
            var label = row.Text(cId);
            if (!ids.Add(label))
            {
                throw row.Error(cId, $"duplicate job id '{label}'");
            }

            var submit = row.Number(cSubmit);
            if (submit < 0)
            {
                throw row.Error(cSubmit, $"must not be negative, got {submit}");
            }

            var duration = row.Number(cDuration);
            if (duration < 0)
            {
                throw row.Error(cDuration, $"must not be negative, got {duration}");
            }

            var gpus = row.Number(cGpus);
            if (gpus <= 0 || gpus > 1_000_000)
            {
                throw row.Error(cGpus, $"must be more than 0, got {row[cGpus].Trim()}");
            }

            if (gpus < 1 && Math.Abs((gpus * 1000) - Math.Round(gpus * 1000)) > 1e-6)
            {
                throw row.Error(cGpus, $"a share of one GPU must be a multiple of 0.001, got {row[cGpus].Trim()}");
            }

            if (gpus > 1 && gpus != Math.Floor(gpus))
            {
                throw row.Error(cGpus, $"more than one GPU must be a whole number, got {row[cGpus].Trim()}");
            }

            var nodes = cNodes >= 0 ? row.OptionalWholeNumber(cNodes) : null;
            if (nodes is < 1)
            {
                throw row.Error(cNodes, $"must be at least 1, got {nodes}");
            }

            var wall = cWall >= 0 ? row.OptionalNumber(cWall) : null;
            if (wall is <= 0)
            {
                throw row.Error(cWall, $"must be more than 0, got {wall}");
            }

            var priority = PriorityClass.Normal;
            if (row.OptionalText(cPriority) is { } p)
            {
                priority = p.ToLowerInvariant() switch
                {
                    "preemptible" or "low" => PriorityClass.Preemptible,
                    "normal" => PriorityClass.Normal,
                    "high" => PriorityClass.High,
                    _ => throw row.Error(cPriority, $"'{p}' is not one of preemptible, normal, high"),
                };
            }

            var checkpointable = false;
            if (row.OptionalText(cCkpt) is { } ck)
            {
                checkpointable = ck.ToLowerInvariant() switch
                {
                    "true" or "1" or "yes" => true,
                    "false" or "0" or "no" => false,
                    _ => throw row.Error(cCkpt, $"'{ck}' is not true or false"),
                };
            }

            var cpus = cCpus >= 0 ? row.OptionalWholeNumber(cCpus) : null;
            if (cpus is < 1 or > ResourceRequest.MaxCpus)
            {
                throw row.Error(cCpus, $"must be between 1 and {ResourceRequest.MaxCpus} cores per node, got {cpus}");
            }

            var memory = cMem >= 0 ? row.OptionalNumber(cMem) : null;
            if (memory is not null && (memory < 1 || memory > ResourceRequest.MaxMemoryMiB || memory != Math.Floor(memory.Value)))
            {
                throw row.Error(cMem, $"must be a whole number of MiB between 1 and {ResourceRequest.MaxMemoryMiB}, got {row[cMem].Trim()}");
            }

            IReadOnlyList<string>? models = null;
            if (cModel >= 0 && row.OptionalText(cModel) is { } modelText)
            {
                try
                {
                    models = ResourceRequest.Names(modelText.Split('|'), "gpu_model", "GPU model", ResourceRequest.IsFeatureName);
                }
                catch (SpecException e)
                {
                    throw row.Error(cModel, e.Reason);
                }
            }

            jobs.Add(new TraceJob
            {
                Cpus = cpus,
                MemoryMiB = memory is { } mm ? (long)mm : null,
                GpuModels = models,
                Id = long.TryParse(label, NumberStyles.None, CultureInfo.InvariantCulture, out var numeric) && numeric > 0 ? numeric : jobs.Count + 1,
                Label = label,
                SubmitSeconds = submit,
                DurationSeconds = duration,
                Gpus = gpus,
                Nodes = nodes,
                WalltimeSeconds = wall,
                Tenant = row.OptionalText(cTenant) ?? "default",
                User = row.OptionalText(cUser) ?? "",
                Priority = priority,
                Partition = row.OptionalText(cPartition),
                Checkpointable = checkpointable,
            });
        }

        // Numeric labels are used as engine ids when they are all distinct numbers; otherwise every job gets its row number.
        var numericIds = new HashSet<long>();
        if (jobs.Exists(j => !long.TryParse(j.Label, NumberStyles.None, CultureInfo.InvariantCulture, out var v) || v <= 0 || !numericIds.Add(v)))
        {
            for (var i = 0; i < jobs.Count; i++)
            {
                jobs[i] = jobs[i] with { Id = i + 1 };
            }
        }

        return jobs;
    }
}
