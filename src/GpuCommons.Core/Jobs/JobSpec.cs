namespace GpuCommons.Core.Jobs;

/// <summary>
/// What a user asks for. <see cref="Gpus"/> is a whole number of GPUs, or a fraction of one GPU (0 &lt; g &lt; 1,
/// in steps of 0.001) for a job that shares a GPU. A multi-node job takes whole nodes.
/// </summary>
public sealed record JobSpec
{
    /// <summary>Thousandths in one GPU: the unit in which shares of a GPU are counted (<see cref="GpuMilli"/>).</summary>
    public const int MilliPerGpu = 1000;

    /// <summary>The job's id, unique among the jobs the engine knows.</summary>
    public required long Id { get; init; }
    /// <summary>The project the job is charged to: its allocation, quotas and fair share are the project's.</summary>
    public required string Project { get; init; }
    /// <summary>The user who submitted the job (the lowest level of fair share); empty when not known.</summary>
    public string User { get; init; } = "";
    /// <summary>The name the user gave the job, for people; empty when none.</summary>
    public string Name { get; init; } = "";
    /// <summary>Partition to run on; null lets the engine pick any partition that can hold the job.</summary>
    public string? Partition { get; init; }
    /// <summary>GPUs asked for: a whole number, or a share of one GPU (see the type's summary).</summary>
    public required double Gpus { get; init; }
    /// <summary>Number of nodes (optional; a multi-node job takes whole nodes).</summary>
    public int? Nodes { get; init; }
    /// <summary>GPUs used on each node of a multi-node job (optional; default: the partition's node size).</summary>
    public int? GpusPerNode { get; init; }
    /// <summary>
    /// The longest the job may run; the backend kills it there. Admission needs walltime × GPUs of GPU-hours left in the
    /// grant, and backfill plans with it as the job's end.
    /// </summary>
    public required TimeSpan Walltime { get; init; }
    /// <summary>The job's priority class (Slurm QOS); normal by default.</summary>
    public PriorityClass Priority { get; init; } = PriorityClass.Normal;
    /// <summary>
    /// The job saves its state when signalled: when preempted it gets a signal and a grace period before the kill, and
    /// counts as losing at most that grace period of work when victims are chosen.
    /// </summary>
    public bool Checkpointable { get; init; }
    /// <summary>When its node fails, the job goes back to the queue with its original submit time instead of failing (default).</summary>
    public bool Requeueable { get; init; } = true;
    /// <summary>When the job was submitted: it never starts before, its age counts from it, and it keeps it when requeued.</summary>
    public required DateTimeOffset SubmitTime { get; init; }
    /// <summary>Known run time, used only by clairvoyant reference policies in the simulator.</summary>
    public TimeSpan? DurationHint { get; init; }

    /// <summary>CPU cores per GPU (Slurm's <c>--cpus-per-gpu</c>); a share of a GPU gets that share, rounded up. Not with <see cref="CpusPerNode"/>.</summary>
    public int? CpusPerGpu { get; init; }
    /// <summary>CPU cores on each node of the job, whatever its GPUs there. Not with <see cref="CpusPerGpu"/>.</summary>
    public int? CpusPerNode { get; init; }
    /// <summary>Memory per GPU in MiB (Slurm's <c>--mem-per-gpu</c>); a share of a GPU gets that share, rounded up. Not with <see cref="MemoryMiBPerNode"/>.</summary>
    public long? MemoryMiBPerGpu { get; init; }
    /// <summary>Memory on each node of the job in MiB (Slurm's <c>--mem</c>). Not with <see cref="MemoryMiBPerGpu"/>.</summary>
    public long? MemoryMiBPerNode { get; init; }
    /// <summary>GPU models the job may run on (any of them; compared without case); null: any model.</summary>
    public IReadOnlyList<string>? GpuModels { get; init; }
    /// <summary>Node features every node of the job must have (Slurm's <c>--constraint</c> with AND); null: none.</summary>
    public IReadOnlyList<string>? Features { get; init; }

    /// <summary>The request in thousandths of a GPU.</summary>
    public int GpuMilli => (int)Math.Round(Gpus * MilliPerGpu);

    /// <summary>True for a share of one GPU (fewer than 1 GPU).</summary>
    public bool IsFractional => Gpus < 1;

    /// <summary>Checks what can be checked without a fleet; returns null when valid.</summary>
    public SpecException? Check()
    {
        if (string.IsNullOrWhiteSpace(Project))
        {
            return new SpecException("project", "is required");
        }

        if (!double.IsFinite(Gpus) || Gpus <= 0)
        {
            return new SpecException("gpus", $"must be more than 0, got {Gpus}");
        }

        if (Gpus > 1_000_000)
        {
            return new SpecException("gpus", $"{Gpus} is more GPUs than any fleet has");
        }

        if (Gpus < 1)
        {
            var milli = Gpus * MilliPerGpu;
            if (Math.Abs(milli - Math.Round(milli)) > 1e-6 || Math.Round(milli) < 1)
            {
                return new SpecException("gpus", $"a fraction of a GPU must be a multiple of 0.001, got {Gpus}");
            }

            if (Nodes is > 1 || GpusPerNode is not null)
            {
                return new SpecException("gpus", "a fraction of a GPU cannot be combined with nodes or gpusPerNode");
            }
        }
        else if (Gpus != Math.Floor(Gpus))
        {
            return new SpecException("gpus", $"a request of more than one GPU must be a whole number, got {Gpus}; fractions are for a share of one GPU");
        }

        if (Nodes is < 1)
        {
            return new SpecException("nodes", $"must be at least 1, got {Nodes}");
        }

        if (GpusPerNode is < 1)
        {
            return new SpecException("gpusPerNode", $"must be at least 1, got {GpusPerNode}");
        }

        if (Nodes is { } n && GpusPerNode is { } g && (long)n * g != (long)Gpus)
        {
            return new SpecException("gpus", $"must equal nodes × gpusPerNode ({n} × {g} = {(long)n * g}), got {Gpus}");
        }

        if (Walltime <= TimeSpan.Zero)
        {
            return new SpecException("walltime", $"must be more than zero, got {Walltime}");
        }

        if (DurationHint is { } d && d < TimeSpan.Zero)
        {
            return new SpecException("durationHint", "must not be negative");
        }

        return CheckResources();
    }

    /// <summary>Checks the cores, memory, GPU models and features of the request; returns null when valid.</summary>
    public SpecException? CheckResources()
    {
        if (CpusPerGpu is not null && CpusPerNode is not null)
        {
            return new SpecException("cpusPerGpu", "give cores per GPU or per node (cpusPerNode), not both");
        }

        if (MemoryMiBPerGpu is not null && MemoryMiBPerNode is not null)
        {
            return new SpecException("memoryMiBPerGpu", "give memory per GPU or per node (memoryMiBPerNode), not both");
        }

        foreach (var (field, v) in new[] { ("cpusPerGpu", CpusPerGpu), ("cpusPerNode", CpusPerNode) })
        {
            if (v is < 1 or > ResourceRequest.MaxCpus)
            {
                return new SpecException(field, $"must be between 1 and {ResourceRequest.MaxCpus}, got {v}");
            }
        }

        foreach (var (field, v) in new[] { ("memoryMiBPerGpu", MemoryMiBPerGpu), ("memoryMiBPerNode", MemoryMiBPerNode) })
        {
            if (v is < 1 or > ResourceRequest.MaxMemoryMiB)
            {
                return new SpecException(field, $"must be between 1 MiB and {ResourceRequest.MaxMemoryMiB} MiB (64 TiB), got {v}");
            }
        }

        if (CpusPerGpu is { } c && (long)c * Math.Max(1, (long)Math.Ceiling(Gpus)) > ResourceRequest.MaxCpus * 1024L)
        {
            return new SpecException("cpusPerGpu", $"{c} cores per GPU × {Gpus} GPUs is more cores than any fleet has");
        }

        foreach (var (field, list) in new[] { ("gpuModels", GpuModels), ("features", Features) })
        {
            if (list is null)
            {
                continue;
            }

            try
            {
                var normal = ResourceRequest.Names(list, field, field == "features" ? "feature" : "GPU model", ResourceRequest.IsFeatureName);
                if (normal.Count != list.Count || normal.Where((x, i) => !string.Equals(x, list[i], StringComparison.Ordinal)).Any())
                {
                    return new SpecException(field, $"names must be trimmed and distinct, got '{string.Join(",", list)}'");
                }
            }
            catch (SpecException e)
            {
                return e;
            }
        }

        return null;
    }
}
