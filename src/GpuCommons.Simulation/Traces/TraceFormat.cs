namespace GpuCommons.Simulation.Traces;

/// <summary>Trace formats GpuCommons reads (docs/simulation.md describes each).</summary>
public enum TraceFormat
{
    /// <summary>Detect from the header line.</summary>
    Auto,
    /// <summary>The Philly-derived job table: <c>timestamp,duration,num_gpus,gpu_time,cluster</c>.</summary>
    Philly,
    /// <summary>The GpuCommons job CSV (docs/job-csv.md).</summary>
    GpucCsv,
    /// <summary>The Sia/Pollux workload mixes: <c>name,time,application,num_replicas,batch_size</c>.</summary>
    Sia,
    /// <summary>The Alibaba 2025 GPU-disaggregated DLRM inference trace (GPU-node instances, with cores and memory).</summary>
    AlibabaDlrm,
}
