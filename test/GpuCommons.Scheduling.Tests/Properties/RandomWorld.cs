using CsCheck;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Tests.Support;

namespace GpuCommons.Scheduling.Tests.Properties;

internal enum OpKind
{
    Submit,
    ScheduleFull,
    ScheduleIncremental,
    Advance,
    Complete,
    Cancel,
    NodeState,
    Reserve,
    Unreserve,
    StartFailed,
    SetQuota,
}

/// <summary>One random event; its numbers are resolved against the state when it runs (the k-th running job, …).</summary>
internal sealed record Op(OpKind Kind, int A, int B, int C, int D)
{
    public override string ToString() => $"{Kind}({A},{B},{C},{D})";
}

internal sealed record PartitionShape(int Depth, int Fanout, int[] NodeSizes, int[] Where, int Rate)
{
    public override string ToString() => $"depth {Depth} fanout {Fanout} nodes [{string.Join(",", NodeSizes)}]";
}

internal sealed record QuotaShape(int Partition, int NominalPct, int BorrowPct, int LendPct)
{
    public override string ToString() => $"q(p{Partition} n{NominalPct}% b{BorrowPct}% l{LendPct}%)";
}

internal sealed record TenantShape(OrganisationType Type, QuotaShape[] Quotas, int Allocation, int Hours)
{
    public override string ToString() => $"{Type} [{string.Join(" ", Quotas.AsEnumerable())}] alloc {Allocation}/{Hours}h";
}

internal sealed record OptionShape(BackfillMode Backfill, OrderingPolicy Ordering, bool Preemption, int Depth, int GraceMinutes)
{
    public override string ToString() => $"{Backfill} {Ordering} preempt={Preemption} depth={Depth} grace={GraceMinutes}m";
}

/// <summary>
/// Cores, memory, features and GPU models of a generated fleet's nodes (per GPU, varied from node to node), and whether
/// jobs ask for cores, memory, models and features (else they ask for GPUs only and get the partition's defaults).
/// </summary>
internal sealed record ResourceShape(int CoresPerGpu, int MemGiBPerGpu, int Spread, bool TwoModels, int FeatureEvery, bool Requests)
{
    public override string ToString() => $"cores/GPU {CoresPerGpu} mem/GPU {MemGiBPerGpu} GiB spread {Spread} models {(TwoModels ? 2 : 1)} ib every {FeatureEvery} requests={Requests}";
}

/// <summary>A random world: fleet, tenants with quotas and grants, options, and a stream of events.</summary>
internal sealed record WorldShape(PartitionShape[] Partitions, TenantShape[] Orgs, TenantShape[] Projects, OptionShape Options, Op[] Ops)
{
    /// <summary>A given fleet instead of a generated one.</summary>
    public Fleet? Fleet { get; init; }

    /// <summary>Node cores, memory, features and models, and job requests; null: GPUs only (nothing tracked).</summary>
    public ResourceShape? Resources { get; init; }

    public override string ToString() =>
        $"resources: {Resources?.ToString() ?? "none"}\npartitions: {string.Join(" | ", Partitions.AsEnumerable())}\norgs: {string.Join(" | ", Orgs.AsEnumerable())}\nprojects: {string.Join(" | ", Projects.AsEnumerable())}\noptions: {Options}\nops ({Ops.Length}): {string.Join(" ", Ops.AsEnumerable())}";
}

/// <summary>CsCheck generators of random worlds, and the interpreter that plays one against a <see cref="CheckedEngine"/>.</summary>
internal static class RandomWorld
{
    private static readonly double[] GpuChoices = [0.25, 0.5, 1, 1, 1, 2, 2, 4, 8, 3, 16, 6, 0.25, 1, 12, 1.5];

    public static readonly Gen<int> NodeSize = Gen.OneOfConst(1, 2, 4, 8, 8);

    public static readonly Gen<PartitionShape> Partition =
        from depth in Gen.Int[0, 2]
        from fanout in Gen.Int[1, 3]
        from homogeneous in Gen.Int[0, 3]
        from size in NodeSize
        from sizes in NodeSize.Array[1, 10]
        from place in Gen.Int[0, 99].Array[10]
        from rate in Gen.Int[0, 5000]
        select new PartitionShape(depth, fanout, homogeneous > 0 ? [.. sizes.Select(_ => size)] : sizes, place, rate);

    private static Gen<QuotaShape> Quota(int partitions) =>
        from p in Gen.Int[0, partitions - 1]
        from nominal in Gen.Int[0, 100]
        from borrow in Gen.Int[-1, 100]
        from lend in Gen.Int[-1, 100]
        select new QuotaShape(p, nominal, borrow, lend);

    private static Gen<TenantShape> Tenant(int partitions) =>
        from type in Gen.Enum<OrganisationType>()
        from hasQuota in Gen.Int[0, 2]
        from quotas in Quota(partitions).Array[0, partitions]
        from allocation in Gen.Int[0, 5]
        from hours in Gen.Int[1, 400]
        select new TenantShape(type, hasQuota == 0 ? [] : [.. quotas.DistinctBy(q => q.Partition)], allocation, hours);

    public static readonly Gen<OptionShape> OptionsGen =
        from backfill in Gen.OneOfConst(BackfillMode.Easy, BackfillMode.Easy, BackfillMode.Conservative, BackfillMode.None)
        from ordering in Gen.OneOfConst(OrderingPolicy.Multifactor, OrderingPolicy.Multifactor, OrderingPolicy.Fifo, OrderingPolicy.LeastAttainedService)
        from preemption in Gen.Int[0, 3]
        from depth in Gen.Int[1, 4]
        from grace in Gen.Int[0, 10]
        select new OptionShape(backfill, ordering, preemption > 0, depth, grace);

    public static readonly Gen<Op> Operation =
        from kind in Gen.Frequency(
            (14, Gen.Const(OpKind.Submit)),
            (6, Gen.Const(OpKind.ScheduleFull)),
            (4, Gen.Const(OpKind.ScheduleIncremental)),
            (6, Gen.Const(OpKind.Advance)),
            (4, Gen.Const(OpKind.Complete)),
            (1, Gen.Const(OpKind.Cancel)),
            (2, Gen.Const(OpKind.NodeState)),
            (1, Gen.Const(OpKind.Reserve)),
            (1, Gen.Const(OpKind.Unreserve)),
            (1, Gen.Const(OpKind.StartFailed)),
            (1, Gen.Const(OpKind.SetQuota)))
        from a in Gen.Int[0, 9999]
        from b in Gen.Int[0, 9999]
        from c in Gen.Int[0, 9999]
        from d in Gen.Int[0, 9999]
        select new Op(kind, a, b, c, d);

    public static Gen<WorldShape> World(int minOps, int maxOps) =>
        from partitions in Partition.Array[1, 3]
        from orgs in Tenant(partitions.Length).Array[1, 3]
        from projects in Tenant(partitions.Length).Array[1, 5]
        from options in OptionsGen
        from ops in Operation.Array[minOps, maxOps]
        select new WorldShape(partitions, orgs, projects, options, ops);

    public static readonly Gen<ResourceShape> Resources =
        from cores in Gen.Int[2, 16]
        from mem in Gen.Int[4, 64]
        from spread in Gen.Int[0, 4]
        from models in Gen.Int[0, 2]
        from every in Gen.Int[1, 4]
        from requests in Gen.Int[0, 4]
        select new ResourceShape(cores, mem, spread, models == 0, every, requests > 0);

    /// <summary>A random world whose nodes have cores, memory, features and two GPU models, and whose jobs (mostly) ask for them.</summary>
    public static Gen<WorldShape> ResourceWorld(int minOps, int maxOps) =>
        from w in World(minOps, maxOps)
        from r in Resources
        select w with { Resources = r };

    /// <summary>A random world on a given fleet (its shape is ignored).</summary>
    public static Gen<WorldShape> WorldOn(Fleet fleet, int minOps, int maxOps) =>
        from orgs in Tenant(fleet.Partitions.Count).Array[1, 3]
        from projects in Tenant(fleet.Partitions.Count).Array[1, 5]
        from options in OptionsGen
        from ops in Operation.Array[minOps, maxOps]
        select new WorldShape([], orgs, projects, options, ops) { Fleet = fleet };

    public static Fleet BuildFleet(PartitionShape[] partitions, ResourceShape? resources = null)
    {
        var b = new FleetBuilder("random");
        for (var pi = 0; pi < partitions.Length; pi++)
        {
            var shape = partitions[pi];
            var name = $"p{pi}";
            b.AddPartition(name, "GPU", shape.Rate);
            var leaves = new List<string?>();
            if (shape.Depth == 0)
            {
                leaves.Add(null);
            }
            else
            {
                for (var s = 0; s < shape.Fanout; s++)
                {
                    var top = $"{name}-d{s}";
                    b.AddDomain(name, top, null);
                    if (shape.Depth == 1)
                    {
                        leaves.Add(top);
                        continue;
                    }

                    for (var l = 0; l < 2; l++)
                    {
                        var leaf = $"{top}-l{l}";
                        b.AddDomain(name, leaf, top);
                        leaves.Add(leaf);
                    }
                }
            }

            for (var i = 0; i < shape.NodeSizes.Length; i++)
            {
                var leaf = leaves[shape.Where[i % shape.Where.Length] % leaves.Count];
                if (resources is not { } r)
                {
                    b.AddNode(name, $"{name}-n{i:D2}", shape.NodeSizes[i], leaf);
                    continue;
                }

                var g = shape.NodeSizes[i];
                var cores = g * (r.CoresPerGpu + (i * r.Spread % 5));
                var mem = g * (r.MemGiBPerGpu + (i * r.Spread % 3 * 8)) * 1024L;
                string[] features = i % r.FeatureEvery == 0 ? ["ib"] : [];
                b.AddNode(name, $"{name}-n{i:D2}", g, leaf, NodeState.Up, NodeResources.Create(cores, mem, features, "node"), r.TwoModels && i % 2 == 1 ? "B" : null);
            }
        }

        return b.Build();
    }

    private static QuotaSpec[] Quotas(TenantShape t, Fleet fleet) =>
        [.. t.Quotas.Select(q =>
        {
            var total = fleet.Partitions[q.Partition].TotalGpus;
            var nominal = Math.Floor(total * q.NominalPct / 100.0);
            double? borrow = q.BorrowPct < 0 ? null : Math.Floor(total * q.BorrowPct / 100.0);
            double? lend = q.LendPct < 0 ? null : Math.Floor(nominal * q.LendPct / 100.0);
            return new QuotaSpec(fleet.Partitions[q.Partition].Name, nominal, borrow, lend);
        })];

    public static TenancySpec BuildTenancy(WorldShape w, Fleet fleet)
    {
        var t = new TenancySpec();
        for (var o = 0; o < w.Orgs.Length; o++)
        {
            t.Organisations.Add(new OrganisationSpec($"org{o}", w.Orgs[o].Type) { Quotas = Quotas(w.Orgs[o], fleet), Shares = 1 + (o % 2) });
        }

        var epoch = TenancyBuilder.Epoch;
        for (var j = 0; j < w.Projects.Length; j++)
        {
            var s = w.Projects[j];
            var name = $"proj{j}";
            t.Projects.Add(new ProjectSpec(name, $"org{j % w.Orgs.Length}") { Quotas = Quotas(s, fleet) });
            switch (s.Allocation)
            {
                case 0:
                case 1:
                    t.Allocations.Add(AllocationSpec.Unlimited(name));
                    break;
                case 2:
                    t.Allocations.Add(new AllocationSpec($"{name}-any", name, null, s.Hours, epoch.AddDays(-1), epoch.AddDays(30)));
                    break;
                case 3:
                    t.Allocations.Add(new AllocationSpec($"{name}-p0", name, fleet.Partitions[0].Name, s.Hours, epoch.AddDays(-1), epoch.AddDays(30)) { SpentGpuHours = s.Hours / 4.0 });
                    break;
                case 4:
                    // Starts later in the run, and a small one that ends early.
                    t.Allocations.Add(new AllocationSpec($"{name}-later", name, null, s.Hours * 10, epoch.AddHours(s.Hours % 12), epoch.AddDays(30)));
                    t.Allocations.Add(new AllocationSpec($"{name}-early", name, null, s.Hours, epoch.AddDays(-1), epoch.AddHours(2)));
                    break;
                default:
                    break; // no allocation at all
            }
        }

        return t;
    }

    public static SchedulerOptions BuildOptions(OptionShape o) => new()
    {
        Backfill = o.Backfill,
        Ordering = o.Ordering,
        Preemption = o.Preemption,
        ConservativeDepth = o.Depth,
        PreemptionGrace = TimeSpan.FromMinutes(o.GraceMinutes),
        MaxPreemptorsPerCycle = 4,
    };

    /// <summary>Builds the world and plays every event; the <see cref="CheckedEngine"/> throws at the first broken rule.</summary>
    public static CheckedEngine Play(WorldShape w, Action<string>? log = null)
    {
        var fleet = w.Fleet ?? BuildFleet(w.Partitions, w.Resources);
        var tenancy = BuildTenancy(w, fleet);
        var e = new CheckedEngine(fleet, tenancy, BuildOptions(w.Options), TenancyBuilder.Epoch) { Log = log };
        long nextId = 1;
        foreach (var op in w.Ops)
        {
            Apply(e, op, w.Resources, ref nextId);
        }

        // Let everything run out: the queue must drain or stay blocked only for a stated reason, never break a rule.
        for (var i = 0; i < 4; i++)
        {
            e.Schedule(full: true);
            e.Advance(TimeSpan.FromHours(3));
        }

        return e;
    }

    /// <summary>Builds the world and plays its first <paramref name="count"/> events (no draining): the same state every time.</summary>
    public static CheckedEngine PlayPrefix(WorldShape w, int count, Action<string>? log = null, Action<SchedulerOptions>? tune = null, Action<CheckedEngine, Op>? afterOp = null)
    {
        var fleet = w.Fleet ?? BuildFleet(w.Partitions, w.Resources);
        var tenancy = BuildTenancy(w, fleet);
        var options = BuildOptions(w.Options);
        tune?.Invoke(options);
        var e = new CheckedEngine(fleet, tenancy, options, TenancyBuilder.Epoch) { Log = log };
        long nextId = 1;
        for (var i = 0; i < count && i < w.Ops.Length; i++)
        {
            Apply(e, w.Ops[i], w.Resources, ref nextId);
            afterOp?.Invoke(e, w.Ops[i]);
        }

        return e;
    }

    private static void Apply(CheckedEngine e, Op op, ResourceShape? resources, ref long nextId)
    {
        var fleet = e.Fleet;
        switch (op.Kind)
        {
            case OpKind.Submit:
                e.Submit(WithRequests(MakeJob(e, op, nextId++), op, resources));
                break;
            case OpKind.ScheduleFull:
                e.Schedule(full: true);
                break;
            case OpKind.ScheduleIncremental:
                e.Schedule(full: false);
                break;
            case OpKind.Advance:
                e.Advance(TimeSpan.FromMinutes(1 + (op.A % 240)));
                break;
            case OpKind.Complete:
            {
                var running = e.RunningIds.ToList();
                if (running.Count > 0)
                {
                    var outcome = (op.B % 6) switch
                    {
                        0 or 1 or 2 => JobOutcome.Finished,
                        3 => JobOutcome.Failed,
                        4 => JobOutcome.Cancelled,
                        _ => JobOutcome.Preempted,
                    };
                    e.Complete(running[op.A % running.Count], outcome);
                }

                break;
            }

            case OpKind.Cancel:
            {
                var known = e.Engine.JobIds.Order().ToList();
                if (known.Count > 0)
                {
                    e.Cancel(known[op.A % known.Count]);
                }

                break;
            }

            case OpKind.NodeState:
            {
                var node = fleet.Nodes[op.A % fleet.Nodes.Count];
                var state = (op.B % 5) switch
                {
                    0 or 1 => NodeState.Up,
                    2 or 3 => NodeState.Draining,
                    _ => NodeState.Down,
                };
                e.SetNodeState(node.Name, state);
                break;
            }

            case OpKind.Reserve:
            {
                var nodes = fleet.Nodes.Where((n, i) => ((op.D >> (i % 13)) & 1) == 1 || i == op.D % fleet.Nodes.Count)
                    .Where(n => !e.Engine.Reservations.Any(r => ReservedNodes(e, r).Contains(n.Name)))
                    .Select(n => n.Name).ToList();
                if (nodes.Count == 0)
                {
                    break;
                }

                var projects = e.Tenancy.Projects;
                var project = op.C % (projects.Count + 1) == projects.Count ? null : projects[op.C % (projects.Count + 1)].Name;
                var start = e.Now + TimeSpan.FromMinutes(op.A % 600);
                var r = new AdvanceReservation($"r{op.A}-{op.B}-{e.Now.Ticks}", nodes, start, start + TimeSpan.FromMinutes(30 + (op.B % 600)), project);
                e.AddReservation(r);
                break;
            }

            case OpKind.Unreserve:
            {
                var names = e.Engine.Reservations.Order(StringComparer.Ordinal).ToList();
                if (names.Count > 0)
                {
                    e.RemoveReservation(names[op.A % names.Count]);
                }

                break;
            }

            case OpKind.SetQuota:
            {
                // An operator changes one organisation's or project's quota on one partition, up or down.
                var part = fleet.Partitions[op.B % fleet.Partitions.Count];
                var nominal = Math.Floor(part.TotalGpus * (op.C % 101) / 100.0);
                double? borrow = op.D % 3 == 0 ? null : Math.Floor(part.TotalGpus * (op.D / 3 % 101) / 100.0);
                var quota = new QuotaSpec(part.Name, nominal, borrow);
                if (op.A % 2 == 0)
                {
                    var org = e.Tenancy.Organisations[op.A / 2 % e.Tenancy.Organisations.Count];
                    e.SetOrganisationQuotas(org.Name, [.. org.Quotas.Where(q => q.Partition != part.Name), quota]);
                }
                else
                {
                    var project = e.Tenancy.Projects[op.A / 2 % e.Tenancy.Projects.Count];
                    e.SetProjectQuotas(project.Name, [.. project.Quotas.Where(q => q.Partition != part.Name), quota]);
                }

                break;
            }

            case OpKind.StartFailed:
            {
                var running = e.RunningIds.ToList();
                if (running.Count > 0)
                {
                    e.StartFailed(running[op.A % running.Count]);
                }

                break;
            }
        }
    }

    private static IReadOnlyList<string> ReservedNodes(CheckedEngine e, string name) => e.ReservationNodes(name);

    private static JobSpec MakeJob(CheckedEngine e, Op op, long id)
    {
        var fleet = e.Fleet;
        var gpus = GpuChoices[op.A % GpuChoices.Length];
        int? nodes = null;
        int? perNode = null;
        switch (op.B % 7)
        {
            case 2 when gpus >= 1:
                perNode = NodeSizeChoice(op.B / 7);
                nodes = 2 + (op.B / 70 % 2);
                gpus = nodes.Value * perNode.Value;
                break;
            case 3 when gpus >= 2:
                nodes = 2;
                break;
            case 4 when gpus >= 1:
                nodes = 1;
                break;
            default:
                break;
        }

        var bits = op.D;
        var projects = e.Tenancy.Projects;
        return new JobSpec
        {
            Id = id,
            Project = projects[op.C % projects.Count].Name,
            User = $"u{op.C / 7 % 3}",
            Partition = bits % 4 == 0 ? fleet.Partitions[bits / 4 % fleet.Partitions.Count].Name : null,
            Gpus = gpus,
            Nodes = nodes,
            GpusPerNode = perNode,
            Walltime = TimeSpan.FromMinutes(5 + (op.C % 480)),
            Priority = (bits / 16 % 5) switch
            {
                0 => PriorityClass.Preemptible,
                1 => PriorityClass.High,
                _ => PriorityClass.Normal,
            },
            Checkpointable = bits / 80 % 2 == 0,
            Requeueable = bits / 160 % 3 != 0,
            // Mostly now; some with a submit time still to come (a replayed trace), some from the past (age).
            SubmitTime = (bits / 480 % 10) switch
            {
                0 => e.Now + TimeSpan.FromMinutes(1 + (op.A % 90)),
                1 => e.Now - TimeSpan.FromMinutes(op.A % 600),
                _ => e.Now,
            },
        };
    }

    /// <summary>Cores and memory per GPU or per node, a GPU model, a feature: drawn from the op's numbers.</summary>
    private static JobSpec WithRequests(JobSpec job, Op op, ResourceShape? resources)
    {
        if (resources is not { Requests: true })
        {
            return job;
        }

        var k = op.A / 16;
        job = (k % 6) switch
        {
            0 => job,
            1 => job with { CpusPerGpu = 1 + (op.B / 16 % 24) },
            2 => job with { CpusPerNode = 1 + (op.B / 16 % 64) },
            3 => job with { MemoryMiBPerGpu = 1024L * (1 + (op.B / 16 % 80)) },
            4 => job with { MemoryMiBPerNode = 1024L * (1 + (op.B / 16 % 300)) },
            _ => job with { CpusPerGpu = 1 + (op.B / 16 % 24), MemoryMiBPerGpu = 1024L * (1 + (op.C / 16 % 80)) },
        };
        if (k / 6 % 5 == 0)
        {
            job = job with { GpuModels = ["B"] };
        }

        if (k / 30 % 4 == 0)
        {
            job = job with { Features = ["ib"] };
        }

        return job;
    }

    private static int NodeSizeChoice(int k) => (k % 4) switch
    {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 8,
    };
}
