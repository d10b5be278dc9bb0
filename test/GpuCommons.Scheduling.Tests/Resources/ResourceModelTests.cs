using CsCheck;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Resources;

/// <summary>
/// Cores, memory, GPU models and features: the fleet spec and node list that carry them, the job request and its
/// checks, and the pure function that turns a request and a partition's defaults into what a job takes on a node.
/// </summary>
public sealed class ResourceModelTests
{
    private const string B200Fleet = """
        {
          "name": "r",
          "partitions": [
            { "name": "b200", "gpuModel": "B200",
              "nodes": [
                { "name": "b1", "gpus": 8, "cpus": 112, "memoryMiB": 2097152, "features": ["ib", "nvme"] },
                { "name": "b2", "gpus": 8, "cpus": 96, "memoryMiB": 1048576, "features": ["ib"] },
                { "name": "b3", "gpus": 4, "cpus": 64, "memoryMiB": 524288, "gpuModel": "B200-HBM3e" }
              ] },
            { "name": "h200", "gpuModel": "H200", "defCpusPerGpu": 8, "defMemoryMiBPerGpu": 65536,
              "nodeGroups": [ { "prefix": "h", "count": 4, "gpus": 8, "blockSize": 2, "cpus": 96, "memoryMiB": 1048576, "features": ["ib"] } ] },
            { "name": "old", "gpuModel": "V100", "nodes": [ { "name": "v1", "gpus": 4 } ] }
          ]
        }
        """;

    private static readonly Fleet Fleet = FleetSpecLoader.FromJson(B200Fleet);

    private static JobSpec Job(double gpus, string? partition = null) => new()
    {
        Id = 1, Project = "p", Gpus = gpus, Partition = partition, Walltime = TimeSpan.FromHours(1), SubmitTime = DateTimeOffset.UnixEpoch,
    };

    [Fact]
    public void FleetSpec_CarriesCoresMemoryFeaturesAndModels()
    {
        var b1 = Fleet.FindNode("b1")!;
        (b1.Cpus, b1.MemoryMiB, b1.GpuModel).ShouldBe((112, 2097152L, "B200"));
        b1.Features.ShouldBe(["ib", "nvme"]);
        Fleet.FindNode("b3")!.GpuModel.ShouldBe("B200-HBM3e");
        Fleet.FindNode("h0003")!.Cpus.ShouldBe(96);
        Fleet.FindNode("h0003")!.Features.ShouldBe(["ib"]);

        // A node that says nothing tracks nothing: every request fits, as before cores and memory were modelled.
        var v1 = Fleet.FindNode("v1")!;
        (v1.Cpus, v1.MemoryMiB, v1.CpuCapacity, v1.MemoryCapacityMiB).ShouldBe((0, 0L, int.MaxValue, long.MaxValue));
    }

    [Fact]
    public void PartitionDefaults_AreGivenOrTheLeastPerGpuShareOfItsNodes()
    {
        var b200 = Fleet.FindPartition("b200")!;
        b200.DefCpusPerGpu.ShouldBe(12); // b2: 96 / 8 = 12 < b1's 14 and b3's 16
        b200.DefMemoryMiBPerGpu.ShouldBe(131072); // b2: 1 TiB / 8 = 128 GiB
        var h200 = Fleet.FindPartition("h200")!;
        (h200.DefCpusPerGpu, h200.DefMemoryMiBPerGpu).ShouldBe((8, 65536L));
        var old = Fleet.FindPartition("old")!;
        (old.DefCpusPerGpu, old.DefMemoryMiBPerGpu).ShouldBe((0, 0L));
    }

    [Fact]
    public void Demand_GpuOnlyGetsProportionalShare_FractionGetsFraction_RequestsWin()
    {
        var b200 = Fleet.FindPartition("b200")!;
        ResourceDemand.For(Job(2), b200).ShouldBe(new ResourceDemand(2000, 24, 262144));
        ResourceDemand.For(Job(0.5), b200).ShouldBe(new ResourceDemand(500, 6, 65536));
        ResourceDemand.For(Job(0.25) with { CpusPerGpu = 10 }, b200).ShouldBe(new ResourceDemand(250, 3, 32768)); // ⌈2.5⌉
        ResourceDemand.For(Job(4) with { CpusPerNode = 7, MemoryMiBPerGpu = 1000 }, b200).ShouldBe(new ResourceDemand(4000, 7, 4000));
        ResourceDemand.For(Job(16) with { Nodes = 2 }, b200).ShouldBe(new ResourceDemand(8000, 96, 1048576));
        ResourceDemand.For(Job(1), Fleet.FindPartition("old")!).ShouldBe(new ResourceDemand(1000, 0, 0));
    }

    [Fact]
    public void Eligible_ChecksModelAndFeatures()
    {
        ResourceDemand.Eligible(Job(1) with { Features = ["nvme"] }, Fleet.FindNode("b1")!).ShouldBeTrue();
        ResourceDemand.Eligible(Job(1) with { Features = ["nvme"] }, Fleet.FindNode("b2")!).ShouldBeFalse();
        ResourceDemand.Eligible(Job(1) with { Features = ["IB"] }, Fleet.FindNode("b2")!).ShouldBeTrue();
        ResourceDemand.Eligible(Job(1) with { GpuModels = ["h200", "b200"] }, Fleet.FindNode("b1")!).ShouldBeTrue();
        ResourceDemand.Eligible(Job(1) with { GpuModels = ["h200"] }, Fleet.FindNode("b1")!).ShouldBeFalse();
        ResourceDemand.Eligible(Job(1) with { GpuModels = ["b200"] }, Fleet.FindNode("b3")!).ShouldBeFalse();
    }

    [Theory]
    [InlineData("model nowhere", "gpuModels", null, null, "A100", null)]
    [InlineData("feature nowhere", "features", null, null, null, "gdr")]
    [InlineData("cores per GPU", "cpusPerGpu", 60, null, null, null)]
    [InlineData("memory per GPU", "memoryMiBPerGpu", null, 600000L, null, null)]
    public void CheckFleet_NamesWhatNoNodeCanGive(string name, string field, int? cpusPerGpu, long? memPerGpu, string? model, string? feature)
    {
        var job = Job(4, "b200") with
        {
            CpusPerGpu = cpusPerGpu, MemoryMiBPerGpu = memPerGpu,
            GpuModels = model is null ? null : [model], Features = feature is null ? null : [feature],
        };
        var e = ResourceDemand.CheckFleet(job, Fleet).ShouldNotBeNull(name);
        e.Field.ShouldBe(field, name);
        ResourceDemand.CheckFleet(Job(4, "b200") with { CpusPerGpu = 16 }, Fleet).ShouldBeNull(); // b1: 64 ≤ 112
        ResourceDemand.CheckFleet(Job(2) with { Features = ["nvme"], GpuModels = ["B200"] }, Fleet).ShouldBeNull();
    }

    [Theory]
    [InlineData("both cores", "cpusPerGpu", 2, 4, null, null)]
    [InlineData("both memory", "memoryMiBPerGpu", null, null, 10L, 20L)]
    [InlineData("zero cores", "cpusPerGpu", 0, null, null, null)]
    [InlineData("huge cores", "cpusPerNode", null, 1_000_000, null, null)]
    [InlineData("negative memory", "memoryMiBPerNode", null, null, null, -1L)]
    public void JobCheck_RefusesBadResourceRequests(string name, string field, int? cpg, int? cpn, long? mpg, long? mpn)
    {
        var e = (Job(1) with { CpusPerGpu = cpg, CpusPerNode = cpn, MemoryMiBPerGpu = mpg, MemoryMiBPerNode = mpn }).Check();
        e.ShouldNotBeNull(name).Field.ShouldBe(field, name);
        (Job(1) with { Features = ["a b"] }).Check()!.Field.ShouldBe("features");
        (Job(1) with { GpuModels = [] }).Check()!.Field.ShouldBe("gpuModels");
        (Job(0.5) with { CpusPerGpu = 4, MemoryMiBPerNode = 1024, GpuModels = ["H200"], Features = ["ib"] }).Check().ShouldBeNull();
    }

    [Theory]
    [InlineData("16G", 16384L)]
    [InlineData("500", 500L)]
    [InlineData("500M", 500L)]
    [InlineData("2T", 2097152L)]
    [InlineData("1536K", 2L)]
    [InlineData("4gb", 4096L)]
    [InlineData("4GiB", 4096L)]
    public void ParseMemory_ReadsSlurmSizes(string text, long mib) => ResourceRequest.ParseMemoryMiB(text, "mem").ShouldBe(mib);

    [Theory]
    [InlineData("")]
    [InlineData("G")]
    [InlineData("-4G")]
    [InlineData("4X")]
    [InlineData("0")]
    [InlineData("99999999999999999999")]
    [InlineData("100T")]
    public void ParseMemory_RefusesWithTheField(string text) =>
        Should.Throw<SpecException>(() => ResourceRequest.ParseMemoryMiB(text, "memPerGpu")).Field.ShouldBe("memPerGpu");

    [Fact]
    public void ParseConstraint_AndOnly()
    {
        ResourceRequest.ParseConstraint("ib&nvme", "c").ShouldBe(["ib", "nvme"]);
        ResourceRequest.ParseConstraint(" ib , ib ", "c").ShouldBe(["ib"]);
        Should.Throw<SpecException>(() => ResourceRequest.ParseConstraint("ib|nvme", "constraint")).Message.ShouldContain("'|'");
        Should.Throw<SpecException>(() => ResourceRequest.ParseConstraint("ib&&", "constraint")).Field.ShouldBe("constraint");
        ResourceRequest.ParseGpuModels("h200,b200", "m").ShouldBe(["h200", "b200"]);
    }

    [Theory]
    [InlineData("cpus out of range", """{"name":"f","partitions":[{"name":"p","nodes":[{"name":"a","gpus":8,"cpus":-1}]}]}""", "partitions[0].nodes[0].cpus")]
    [InlineData("memory not a number", """{"name":"f","partitions":[{"name":"p","nodes":[{"name":"a","gpus":8,"memoryMiB":"lots"}]}]}""", "partitions[0].nodes[0].memoryMiB")]
    [InlineData("bad feature", """{"name":"f","partitions":[{"name":"p","nodes":[{"name":"a","gpus":8,"features":["a b"]}]}]}""", "partitions[0].nodes[0].features")]
    [InlineData("feature not a string", """{"name":"f","partitions":[{"name":"p","nodes":[{"name":"a","gpus":8,"features":[1]}]}]}""", "partitions[0].nodes[0].features[0]")]
    [InlineData("bad default", """{"name":"f","partitions":[{"name":"p","defCpusPerGpu":-2,"nodes":[{"name":"a","gpus":8}]}]}""", "partitions[0].defCpusPerGpu")]
    [InlineData("group memory", """{"name":"f","partitions":[{"name":"p","nodeGroups":[{"prefix":"a","count":2,"gpus":8,"memoryMiB":99999999999}]}]}""", "partitions[0].nodeGroups[0].memoryMiB")]
    public void FleetJson_BadResources_NameTheField(string name, string json, string field) =>
        Should.Throw<SpecException>(() => FleetSpecLoader.FromJson(json), name).Field.ShouldBe(field, name);

    [Fact]
    public void NodeListCsv_TakesOptionalCpusMemoryFeatures()
    {
        var f = FleetSpecLoader.FromCsv("node,gpus,model,cpus,memory_mib,features\na1,8,H200,96,1048576,ib;nvme\na2,8,H200,,,\n", "f");
        var a1 = f.FindNode("a1")!;
        (a1.Cpus, a1.MemoryMiB, a1.GpuModel).ShouldBe((96, 1048576L, "H200"));
        a1.Features.ShouldBe(["ib", "nvme"]);
        f.FindNode("a2")!.Cpus.ShouldBe(0);
        f.Partitions[0].DefCpusPerGpu.ShouldBe(12);

        Should.Throw<SpecException>(() => FleetSpecLoader.FromCsv("node,gpus,model,cpus\na,8,H,many\n", "f", "n.csv")).Field.ShouldBe("n.csv:2 column cpus");
        Should.Throw<SpecException>(() => FleetSpecLoader.FromCsv("node,gpus,model,memory_mib\na,8,H,-5\n", "f", "n.csv")).Field.ShouldBe("n.csv:2 column memory_mib");
        Should.Throw<SpecException>(() => FleetSpecLoader.FromCsv("node,gpus,model,features\na,8,H,a b\n", "f", "n.csv")).Field.ShouldBe("n.csv:2 column features");
        Should.Throw<SpecException>(() => FleetSpecLoader.FromCsv("node,gpus,model,cpus,cpus\na,8,H,1,1\n", "f", "n.csv")).Message.ShouldContain("duplicate column 'cpus'");
    }

    private static readonly Gen<(int Gpus, int Cpus, long Mem)> NodeGen =
        Gen.Select(Gen.OneOfConst(1, 2, 4, 8), Gen.Int[1, 256], Gen.Long[1, 4L << 20]).Where(t => t.Item2 >= t.Item1);

    [Fact]
    public void Property_WholeGpuOnlyJobsThatFitTheGpusFitTheCoresAndMemory()
    {
        // With the derived defaults, any packing of whole-GPU jobs that fits a node's GPUs fits its cores and memory:
        // GPU-only work is never stranded by the defaults.
        Gen.Select(NodeGen.List[1, 4], Gen.Int[1, 8].List[1, 12]).Sample((nodes, sizes) =>
        {
            var b = new FleetBuilder("p").AddPartition("p", "G", 0);
            for (var i = 0; i < nodes.Count; i++)
            {
                b.AddNode("p", "n" + i, nodes[i].Gpus, null, NodeState.Up, NodeResources.Create(nodes[i].Cpus, nodes[i].Mem, null, "n"), null);
            }

            var fleet = b.Build();
            var part = fleet.Partitions[0];
            foreach (var node in fleet.Nodes)
            {
                int gpus = 0, cpus = 0;
                long mem = 0;
                foreach (var g in sizes.Where(g => g <= node.Gpus))
                {
                    if (gpus + g > node.Gpus)
                    {
                        break;
                    }

                    var d = ResourceDemand.PerNode(Job(g), part, g * 1000);
                    (gpus, cpus, mem) = (gpus + g, cpus + d.Cpus, mem + d.MemoryMiB);
                }

                cpus.ShouldBeLessThanOrEqualTo(node.Cpus);
                mem.ShouldBeLessThanOrEqualTo(node.MemoryMiB);
            }
        }, iter: 2_000);
    }

    [Fact]
    public void Property_DemandIsMonotoneProportionalAndRoundedUp()
    {
        var gen = Gen.Select(Gen.Int[0, 64], Gen.Long[0, 1L << 20], Gen.Int[1, 64_000], Gen.Int[1, 64_000]);
        gen.Sample((cpg, mpg, a, b) =>
        {
            var part = new FleetBuilder("f").AddPartition("p", "G", 0).AddNode("p", "n", 64).SetPartitionDefaults("p", cpg, mpg).Build().Partitions[0];
            var job = Job(1);
            var da = ResourceDemand.PerNode(job, part, a);
            var db = ResourceDemand.PerNode(job, part, b);
            // More GPU never gets fewer cores or less memory.
            if (a <= b)
            {
                da.Cpus.ShouldBeLessThanOrEqualTo(db.Cpus);
                da.MemoryMiB.ShouldBeLessThanOrEqualTo(db.MemoryMiB);
            }

            // A share gets its share rounded up: never less, and less than one more.
            ((long)da.Cpus * 1000).ShouldBeGreaterThanOrEqualTo((long)cpg * a);
            ((long)da.Cpus * 1000).ShouldBeLessThan((long)cpg * a + 1000);
            (da.MemoryMiB * 1000).ShouldBeGreaterThanOrEqualTo(mpg * a);
            (da.MemoryMiB * 1000).ShouldBeLessThan(mpg * a + 1000);
            // Whole GPUs get exactly k × the per-GPU default.
            ResourceDemand.PerNode(job, part, a / 1000 * 1000).Cpus.ShouldBe(cpg * (a / 1000));
            // A per-node request does not depend on the GPUs.
            ResourceDemand.PerNode(job with { CpusPerNode = 5, MemoryMiBPerNode = 77 }, part, a).ShouldBe(new ResourceDemand(a, 5, 77));
        }, iter: 20_000);
    }

    [Fact]
    public void Property_MemorySizesRoundTrip() =>
        Gen.Long[1, ResourceRequest.MaxMemoryMiB].Sample(mib =>
            ResourceRequest.ParseMemoryMiB(ResourceRequest.FormatMemory(mib), "m").ShouldBe(mib), iter: 20_000);
}
