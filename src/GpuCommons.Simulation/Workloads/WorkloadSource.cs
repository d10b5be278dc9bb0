using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Simulation.Traces;

namespace GpuCommons.Simulation.Workloads;

/// <summary>Where a simulation's jobs come from: a trace file (read, mapped, optionally compressed) or the national synthesis.</summary>
public sealed record WorkloadSource
{
    public string? TracePath { get; init; }
    public TraceFormat Format { get; init; } = TraceFormat.Auto;
    /// <summary>Number of synthetic national jobs (used when there is no trace).</summary>
    public long? SyntheticJobs { get; init; }
    public int Seed { get; init; } = 42;
    /// <summary>Offered load to compress (or stretch) the trace to; for synthesis, the load it is generated at (default 0.9).</summary>
    public double? TargetLoad { get; init; }
    public double MonthlyGrowth { get; init; }
    public TenantMappingKind Mapping { get; init; } = TenantMappingKind.None;
    /// <summary>Synthetic mix: <c>national</c> (default) or <c>fractional</c> (shares of one GPU, for packing).</summary>
    public string Mix { get; init; } = "national";
    /// <summary>Stop synthesis at this time (seconds).</summary>
    public double? UntilSeconds { get; init; }

    public Workload Build(Fleet fleet)
    {
        if (TracePath is not null)
        {
            var jobs = TraceReader.Read(TracePath, Format);
            if (TargetLoad is { } load)
            {
                jobs = LoadShaper.ToOfferedLoad(jobs, fleet.TotalGpus, load);
            }

            return TenantMapping.Build(Path.GetFileName(TracePath), jobs, Mapping);
        }

        if (SyntheticJobs is null && UntilSeconds is null)
        {
            throw new SpecException("trace", "give a trace (--trace PATH) or a synthetic workload (--synthetic JOBS)");
        }

        if (Mix == "fractional")
        {
            return FractionalPacking.Create(fleet, SyntheticJobs ?? 100_000, Seed, TargetLoad ?? 0.95);
        }

        if (Mix != "national")
        {
            throw new SpecException("mix", $"unknown synthetic mix '{Mix}' (known: national, fractional)");
        }

        var synth = new NationalSynthesizer(fleet, Seed, TargetLoad ?? 0.9, MonthlyGrowth);
        return synth.Workload(SyntheticJobs ?? long.MaxValue, UntilSeconds ?? double.PositiveInfinity);
    }
}
