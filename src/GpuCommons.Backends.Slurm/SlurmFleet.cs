using GpuCommons.Core.Fleet;

namespace GpuCommons.Backends.Slurm;

/// <summary>Turns a fleet read from Slurm into the engine's <see cref="Fleet"/>: one partition per Slurm partition, GPU-less nodes left out.</summary>
public static class SlurmFleet
{
    public static Fleet ToFleet(DiscoveredFleet discovered, string name = "slurm", decimal ratePerGpuHour = 1m)
    {
        ArgumentNullException.ThrowIfNull(discovered);
        var builder = new FleetBuilder(name);
        foreach (var partition in discovered.Nodes.Where(n => n.Gpus.Count > 0).GroupBy(n => n.Partition, StringComparer.Ordinal))
        {
            builder.AddPartition(partition.Key, partition.First().GpuModel, ratePerGpuHour);
            foreach (var n in partition)
            {
                var state = n.State switch
                {
                    "up" => NodeState.Up,
                    "draining" => NodeState.Draining,
                    _ => NodeState.Down,
                };
                builder.AddNode(partition.Key, n.Name, n.Gpus.Count, null, state, NodeResources.FromDiscovery(n.Cpus, n.MemoryMiB, n.Features), n.GpuModel);
            }
        }

        return builder.Build();
    }
}
