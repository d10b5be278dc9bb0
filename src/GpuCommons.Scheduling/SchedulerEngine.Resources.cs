using GpuCommons.Core.Jobs;
using GpuCommons.Scheduling.Internal;

namespace GpuCommons.Scheduling;

// Cores, memory, GPU models and features at submit (docs/scheduling.md, "Resources"): a job no partition can ever hold
// is refused, its partitions narrowed to those that can, and its shape observed for fragmentation-aware placement. The
// fit checks at placement are the Placer's (Internal/Placer.cs); the per-node state is in ResourceLedger.
public sealed partial class SchedulerEngine
{
    /// <summary>
    /// The partitions a job may use are those with a node that is eligible for it and big enough for its demand when
    /// empty; a job that no partition can ever hold is refused at submit (naming the field, from <see cref="ResourceDemand.CheckFleet"/>).
    /// </summary>
    private SubmitResult? CheckResources(JobSpec spec)
    {
        var constrained = spec.GpuModels is not null || spec.Features is not null;
        if (!Ledger.Tracked && !constrained)
        {
            return null;
        }

        // Fast answer first (most jobs fit the first node looked at); the full check only to name what is wrong.
        foreach (var part in Fleet.Partitions)
        {
            if (spec.Partition is { } name && !string.Equals(name, part.Name, StringComparison.Ordinal))
            {
                continue;
            }

            var demand = ResourceDemand.For(spec, part);
            var needed = spec.IsFractional ? 1 : Math.Max(1, (int)Math.Ceiling(spec.GpuMilli / (double)Math.Max(1, demand.GpuMilli)));
            foreach (var n in part.Nodes)
            {
                var node = Fleet.Nodes[n];
                if (demand.GpuMilli <= node.Gpus * JobSpec.MilliPerGpu && demand.FitsOnEmpty(node) && (!constrained || ResourceDemand.Eligible(spec, node)) && --needed == 0)
                {
                    return null;
                }
            }
        }

        return ResourceDemand.CheckFleet(spec, Fleet) is { } error ? new SubmitResult(false, error) : null;
    }

    /// <summary>Clears the partitions where no node could ever hold the job (wrong model, features, or too few cores or memory).</summary>
    private void RestrictShapesToEligible(JobRecord job)
    {
        var spec = job.Request;
        var constrained = spec.GpuModels is not null || spec.Features is not null;
        for (var p = 0; p < Fleet.Partitions.Count; p++)
        {
            if ((job.ShapeMask & (1UL << p)) == 0 || (!constrained && !Ledger.TrackedPartition[p]))
            {
                continue;
            }

            var part = Fleet.Partitions[p];
            var demand = ResourceLedger.DemandOf(spec, part, job.Shapes[p]);
            var any = false;
            foreach (var n in part.Nodes)
            {
                var node = Fleet.Nodes[n];
                if (node.Gpus * JobSpec.MilliPerGpu >= demand.GpuMilli && demand.FitsOnEmpty(node) && (!constrained || ResourceDemand.Eligible(spec, node)))
                {
                    any = true;
                    break;
                }
            }

            if (!any)
            {
                job.ShapeMask &= ~(1UL << p);
            }
        }
    }

    /// <summary>Adds a new job's shape to the popularity window of fragmentation-aware placement.</summary>
    private void ObserveArrival(JobRecord job)
    {
        if (!Ledger.Tracked || !Options.FragmentationAware)
        {
            return;
        }

        foreach (var p in _partitionOrder)
        {
            if ((job.ShapeMask & (1UL << p)) != 0)
            {
                var shape = job.Shapes[p];
                if (shape.Kind != ShapeKind.Gang)
                {
                    _placer.Fragmentation.Observe(ResourceLedger.DemandOf(job.Request, Fleet.Partitions[p], shape));
                }

                return;
            }
        }
    }


}
