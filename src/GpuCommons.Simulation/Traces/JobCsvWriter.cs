using System.Globalization;
using GpuCommons.Core.Jobs;

namespace GpuCommons.Simulation.Traces;

/// <summary>Writes jobs in the GpuCommons job CSV (docs/job-csv.md), which <see cref="TraceReader"/> reads back unchanged.</summary>
public sealed class JobCsvWriter(TextWriter writer)
{
    public const string Header = "id,submit_s,duration_s,gpus,nodes,walltime_s,tenant,user,priority,partition,checkpointable,cpus,memory_mib,gpu_model";

    private bool _headerWritten;

    public void Write(TraceJob job)
    {
        if (!_headerWritten)
        {
            writer.Write(Header);
            writer.Write('\n');
            _headerWritten = true;
        }

        writer.Write(Cell(job.Label));
        writer.Write(',');
        writer.Write(Seconds(job.SubmitSeconds));
        writer.Write(',');
        writer.Write(Seconds(job.DurationSeconds));
        writer.Write(',');
        writer.Write(job.Gpus.ToString("0.###", CultureInfo.InvariantCulture));
        writer.Write(',');
        writer.Write(job.Nodes?.ToString(CultureInfo.InvariantCulture) ?? "");
        writer.Write(',');
        writer.Write(job.WalltimeSeconds is { } w ? Seconds(w) : "");
        writer.Write(',');
        writer.Write(Cell(job.Tenant));
        writer.Write(',');
        writer.Write(Cell(job.User));
        writer.Write(',');
        writer.Write(job.Priority switch { PriorityClass.Preemptible => "preemptible", PriorityClass.High => "high", _ => "normal" });
        writer.Write(',');
        writer.Write(Cell(job.Partition ?? ""));
        writer.Write(',');
        writer.Write(job.Checkpointable ? "true" : "false");
        writer.Write(',');
        writer.Write(job.Cpus?.ToString(CultureInfo.InvariantCulture) ?? "");
        writer.Write(',');
        writer.Write(job.MemoryMiB?.ToString(CultureInfo.InvariantCulture) ?? "");
        writer.Write(',');
        writer.Write(job.GpuModels is { } m ? Cell(string.Join('|', m)) : "");
        writer.Write('\n');
    }

    public void WriteAll(IEnumerable<TraceJob> jobs)
    {
        foreach (var j in jobs)
        {
            Write(j);
        }

        if (!_headerWritten)
        {
            writer.Write(Header);
            writer.Write('\n');
            _headerWritten = true;
        }
    }

    /// <summary>Seconds with up to three decimals, invariant culture.</summary>
    public static string Seconds(double s) => s.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Cell(string s) =>
        s.AsSpan().IndexOfAny(",\"\n") >= 0 ? "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : s;
}
