using System.Diagnostics;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling;

namespace GpuCommons.Simulation.Benchmarks;

/// <summary>
/// The FGD method (Weng et al., ATC'23): tasks arrive one at a time and none leaves; each is placed at once or dropped;
/// arrivals stop when the GPU demand that arrived reaches <see cref="FgdOptions.StopAtRequestedShare"/> (130 %) of the
/// cluster's GPU capacity. Reports the share of GPU capacity allocated, the share of GPUs in use and the cluster's
/// fragmentation as FGD measures it, and whether any node's cores or memory were over-committed.
/// </summary>
public static class FgdBenchmark
{
    public static FgdResult Run(Fleet fleet, IEnumerable<SharingWorkload.TaskShape> tasks, FgdOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        ArgumentNullException.ThrowIfNull(tasks);
        options ??= new FgdOptions();
        var time = new VirtualTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var engine = new SchedulerEngine(fleet, new TenancySpec
        {
            Organisations = [new OrganisationSpec("org", OrganisationType.University)],
            Projects = [new ProjectSpec("p", "org")],
            Allocations = [AllocationSpec.Unlimited("p")],
        }, new SchedulerOptions { FragmentationAware = options.FragmentationAware }, time);

        var capacity = (long)fleet.TotalGpus * JobSpec.MilliPerGpu;
        var stop = (long)Math.Ceiling(capacity * options.StopAtRequestedShare);
        var usedMilli = new int[fleet.GpuSlots];
        var usedCpus = new long[fleet.Nodes.Count];
        var usedMem = new long[fleet.Nodes.Count];
        long requested = 0, id = 0;
        int placed = 0, dropped = 0;
        var placing = new Stopwatch();
        using var stream = tasks.GetEnumerator();
        while (requested < stop && stream.MoveNext())
        {
            var t = stream.Current;
            requested += t.TotalMilli;
            time.Advance(TimeSpan.FromSeconds(1));
            var spec = new JobSpec
            {
                Id = ++id,
                Project = "p",
                Gpus = t.Gpus == 1 ? t.GpuMilli / 1000.0 : t.Gpus,
                Walltime = TimeSpan.FromDays(30), // arrivals are a second apart: nothing ends during the run
                SubmitTime = time.GetUtcNow(),
                CpusPerNode = t.Cpus,
                MemoryMiBPerNode = t.MemoryMiB,
            };
            placing.Start();
            var accepted = engine.Submit(spec);
            if (!accepted.Accepted)
            {
                throw new InvalidOperationException($"the engine refused task {spec.Id}: {accepted.Error?.Message}");
            }

            var started = engine.Schedule(full: false).Started;
            placing.Stop();
            var start = started.FirstOrDefault(s => s.JobId == spec.Id);
            if (start is null)
            {
                dropped++;
                engine.Cancel(spec.Id); // FGD drops a task it cannot place; it never waits.

                continue;
            }

            placed++;
            var partition = fleet.Partitions[start.Placement.Partition];
            foreach (var (node, gpus) in start.Placement.ByNode())
            {
                var milliOnNode = 0;
                foreach (var slot in start.Placement.Slots.Where(s => s.Node == node))
                {
                    usedMilli[fleet.Nodes[node].FirstGpu + slot.Gpu] += slot.Milli;
                    milliOnNode += slot.Milli;
                }

                var demand = ResourceDemand.PerNode(spec, partition, milliOnNode);
                usedCpus[node] += demand.Cpus;
                usedMem[node] += demand.MemoryMiB;
            }
        }

        return Measure(fleet, usedMilli, usedCpus, usedMem, requested, capacity, placed, dropped, placing.Elapsed);
    }

    /// <summary>
    /// FGD's fragmentation of a node for a task shape: the node's free GPU capacity that the task cannot use. All of it
    /// when the task does not fit the node at all (too few free cores, memory or GPUs); for a share of a GPU, the free
    /// capacity of GPUs with less free than the share; for whole GPUs, the free capacity of partly used GPUs.
    /// </summary>
    public static double NodeFragmentMilli(Node node, ReadOnlySpan<int> usedMilliPerGpu, long freeCpus, long freeMem, SharingWorkload.TaskShape task)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(task);
        long free = 0, partial = 0, smallerThanShare = 0;
        var fullFree = 0;
        for (var g = 0; g < node.Gpus; g++)
        {
            var f = Math.Max(0, JobSpec.MilliPerGpu - usedMilliPerGpu[g]);
            free += f;
            if (f == JobSpec.MilliPerGpu)
            {
                fullFree++;
            }
            else
            {
                partial += f;
            }

            if (f < task.GpuMilli)
            {
                smallerThanShare += f;
            }
        }

        var fits = task.Cpus <= freeCpus && task.MemoryMiB <= freeMem && (task.Gpus == 1 && task.GpuMilli < 1000 ? smallerThanShare < free : fullFree >= task.Gpus);
        if (!fits)
        {
            return free;
        }

        return task.Gpus == 1 && task.GpuMilli < 1000 ? smallerThanShare : partial;
    }

    private static FgdResult Measure(Fleet fleet, int[] usedMilli, long[] usedCpus, long[] usedMem, long requested, long capacity, int placed, int dropped, TimeSpan placing)
    {
        var allocated = usedMilli.Sum(u => (long)u);
        var inUse = usedMilli.Count(u => u > 0);
        var weights = SharingWorkload.Tasks.Sum(t => t.Weight);
        double fragment = 0;
        int cpuOver = 0, memOver = 0;
        long freeTotal = 0;
        foreach (var node in fleet.Nodes)
        {
            var used = usedMilli.AsSpan(node.FirstGpu, node.Gpus);
            var freeCpus = node.CpuCapacity == int.MaxValue ? long.MaxValue : node.Cpus - usedCpus[node.Index];
            var freeMem = node.MemoryCapacityMiB - usedMem[node.Index];
            cpuOver += freeCpus < 0 ? 1 : 0;
            memOver += freeMem < 0 ? 1 : 0;
            foreach (var u in used)
            {
                freeTotal += Math.Max(0, JobSpec.MilliPerGpu - u);
            }

            foreach (var t in SharingWorkload.Tasks)
            {
                fragment += t.Weight * NodeFragmentMilli(node, used, freeCpus, freeMem, t) / weights;
            }
        }

        var partitions = new List<FgdPartitionResult>();
        foreach (var part in fleet.Partitions)
        {
            long gpus = 0, alloc = 0, cpus = 0, cpusUsed = 0, mem = 0, memUsed = 0;
            var partInUse = 0;
            foreach (var n in part.Nodes)
            {
                var node = fleet.Nodes[n];
                gpus += node.Gpus;
                cpus += node.Cpus;
                mem += node.MemoryCapacityMiB;
                cpusUsed += usedCpus[n];
                memUsed += usedMem[n];
                for (var g = 0; g < node.Gpus; g++)
                {
                    alloc += usedMilli[node.FirstGpu + g];
                    partInUse += usedMilli[node.FirstGpu + g] > 0 ? 1 : 0;
                }
            }

            partitions.Add(new FgdPartitionResult(part.Name, (int)gpus, alloc / (double)(gpus * JobSpec.MilliPerGpu), partInUse / (double)gpus,
                cpus > 0 ? cpusUsed / (double)cpus : 0, mem > 0 ? memUsed / (double)mem : 0));
        }

        return new FgdResult(
            RequestedShare: (double)requested / capacity,
            AllocatedGpuShare: (double)allocated / capacity,
            GpusInUseShare: (double)inUse / fleet.TotalGpus,
            FragmentationGpus: fragment / JobSpec.MilliPerGpu,
            FragmentationShareOfFree: freeTotal == 0 ? 0 : fragment / freeTotal,
            UnallocatedGpus: freeTotal / (double)JobSpec.MilliPerGpu,
            Placed: placed,
            Dropped: dropped,
            NodesOverCpus: cpuOver,
            NodesOverMemory: memOver,
            PlacementsPerSecond: placing.TotalSeconds > 0 ? (placed + dropped) / placing.TotalSeconds : 0,
            TotalGpus: fleet.TotalGpus,
            Nodes: fleet.Nodes.Count)
        {
            Partitions = partitions,
        };
    }
}

/// <summary>Settings of <see cref="FgdBenchmark"/>.</summary>
public sealed record FgdOptions
{
    /// <summary>Arrivals stop once this share of the GPU capacity has been asked for (FGD: 1.3).</summary>
    public double StopAtRequestedShare { get; init; } = 1.3;

    /// <summary>Fragmentation-aware placement in the engine (<see cref="SchedulerOptions.FragmentationAware"/>); false: best fit.</summary>
    public bool FragmentationAware { get; init; } = true;
}

/// <summary>
/// What <see cref="FgdBenchmark"/> measured. Shares are fractions (0.953 = 95.3 %). <see cref="NodesOverCpus"/> and
/// <see cref="NodesOverMemory"/> count nodes given more cores or memory than they have: an engine that checks every
/// resource keeps both at 0.
/// </summary>
public sealed record FgdResult(
    double RequestedShare,
    double AllocatedGpuShare,
    double GpusInUseShare,
    double FragmentationGpus,
    double FragmentationShareOfFree,
    double UnallocatedGpus,
    int Placed,
    int Dropped,
    int NodesOverCpus,
    int NodesOverMemory,
    double PlacementsPerSecond,
    int TotalGpus,
    int Nodes)
{
    /// <summary>The same measures per partition (one GPU model each), with the share of its cores and memory given out.</summary>
    public IReadOnlyList<FgdPartitionResult> Partitions { get; init; } = [];
}

/// <summary>One partition's share of GPU capacity allocated, of GPUs in use, and of cores and memory given out.</summary>
public sealed record FgdPartitionResult(string Partition, int Gpus, double AllocatedGpuShare, double GpusInUseShare, double CpusUsedShare, double MemoryUsedShare);
