using System.ComponentModel.DataAnnotations;

namespace GpuCommons.Backends.Slurm;

/// <summary>How the Slurm backend talks to Slurm. Every default is the one used by CI against the local Slurm.</summary>
public sealed class SlurmBackendOptions
{
    /// <summary>Prefix of Slurm job names; the GpuCommons job id follows. <value>Default <c>gpuc-</c>.</value></summary>
    public string JobNamePrefix { get; set; } = "gpuc-";

    /// <summary>Directory of the Slurm tools (null: PATH). <value>Default null.</value></summary>
    public string? BinDirectory { get; set; }

    /// <summary>Partition for jobs whose nodes are in several (null: the partition of the first node). <value>Default null.</value></summary>
    public string? Partition { get; set; }

    /// <summary>Slurm account to charge (<c>--account</c>); null: the submitting user's default. <value>Default null.</value></summary>
    public string? Account { get; set; }

    /// <summary>Limit for one command; a controller slower than this is treated as unreachable for the pass. <value>Default 30 s.</value></summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A command slower than this is reported as a slow controller. <value>Default 5 s.</value></summary>
    public TimeSpan SlowCommandThreshold { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>First wait after Slurm failed to answer; doubled per failure up to <see cref="MaxBackoff"/>. <value>Default 1 s.</value></summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait between tries while Slurm does not answer. <value>Default 30 s.</value></summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How far back <c>sacct</c> looks for our jobs when rebuilding the name index after a restart. <value>Default 7 days.</value></summary>
    public TimeSpan AccountingLookback { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Whether slurmdbd accounting (<c>sacct</c>) is available; without it exit codes come from <c>scontrol show job</c>. <value>Default true.</value></summary>
    public bool UseAccounting { get; set; } = true;

    /// <summary>Signal sent to checkpointable jobs before the kill (Slurm signal name). <value>Default <c>TERM</c>.</value></summary>
    public string CheckpointSignal { get; set; } = "TERM";

    /// <summary>A job missing from <c>squeue</c> and <c>sacct</c> this many successful passes in a row is reported lost. <value>Default 2.</value></summary>
    [Range(1, 100)]
    public int LostAfterMissedPolls { get; set; } = 2;

    /// <summary>Shell for the batch script. <value>Default <c>/bin/bash</c>.</value></summary>
    public string Shell { get; set; } = "/bin/bash";

    /// <summary>PATH for the job when its environment has none (<c>--export=NONE</c> keeps the server's environment out). <value>Default the Debian system PATH.</value></summary>
    public string DefaultPath { get; set; } = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Extra <c>sbatch</c> arguments for every job (e.g. <c>--qos=…</c>, or <c>--hold</c> in benchmarks). <value>Default none.</value></summary>
    public IList<string> ExtraSbatchArguments { get; } = [];

    /// <summary>Also read the nodes of partitions hidden from the submitting user. <value>Default false.</value></summary>
    public bool IncludeHiddenPartitions { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> for an option out of range.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(JobNamePrefix) || JobNamePrefix.Any(c => char.IsWhiteSpace(c) || c is '|' or ','))
        {
            throw new ArgumentException("must be non-empty without spaces, '|' or ','", nameof(JobNamePrefix));
        }

        if (CommandTimeout <= TimeSpan.Zero || InitialBackoff <= TimeSpan.Zero || MaxBackoff < InitialBackoff)
        {
            throw new ArgumentException("timeouts and backoff must be positive, MaxBackoff >= InitialBackoff");
        }

        if (LostAfterMissedPolls < 1)
        {
            throw new ArgumentException("must be at least 1", nameof(LostAfterMissedPolls));
        }
    }
}
