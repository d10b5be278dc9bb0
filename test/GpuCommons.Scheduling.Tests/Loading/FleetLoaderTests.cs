using GpuCommons.Core;
using GpuCommons.Core.Fleet;

namespace GpuCommons.Scheduling.Tests.Loading;

/// <summary>The shipped fleets, and fleet specs (JSON and CSV) that are wrong in one way each.</summary>
public sealed class FleetLoaderTests
{
    [Fact]
    public void National_HasTheCentersShape()
    {
        var fleet = BuiltInFleets.Get("national");

        fleet.Nodes.Count.ShouldBe(3431);
        fleet.TotalGpus.ShouldBe(18952);
        fleet.Partitions.Count.ShouldBe(6);
        fleet.Partitions.Select(p => p.Name).ShouldBe(["b200-a", "b200-b", "b200-c", "h200-a", "h200-b", "gh200"]);
        fleet.Partitions.Sum(p => p.TotalGpus).ShouldBe(18952);
        fleet.FindPartition("gh200")!.TypicalGpusPerNode.ShouldBe(4);
        fleet.FindPartition("b200-a")!.TotalGpus.ShouldBe(510 * 8);

        foreach (var p in fleet.Partitions)
        {
            // Root plus blocks of 32 nodes (the last one may be smaller), every node in a block.
            var blocks = p.Domains.Where(d => d.Depth == 1).ToList();
            p.Domains.Count.ShouldBe(blocks.Count + 1);
            blocks.Count.ShouldBe((p.Nodes.Count + 31) / 32);
            blocks.SkipLast(1).ShouldAllBe(b => b.DirectNodes.Count == 32);
            blocks[^1].DirectNodes.Count.ShouldBeInRange(1, 32);
            p.Root.DirectNodes.ShouldBeEmpty();
        }
    }

    [Fact]
    public void Small_HasMixedNodeSizes()
    {
        var fleet = BuiltInFleets.Get("small");
        fleet.Nodes.Count.ShouldBe(12);
        fleet.TotalGpus.ShouldBe(75);
        fleet.FindPartition("l40s")!.MaxGpusPerNode.ShouldBe(4);
        fleet.FindNode("h100-05")!.DomainIndex.ShouldBe(fleet.Domains.Single(d => d.Name == "leaf-2").Index);
    }

    [Fact]
    public void BuiltInFleets_UnknownName_IsASpecException()
    {
        Should.Throw<SpecException>(() => BuiltInFleets.Get("mars")).Field.ShouldBe("fleet");
    }

    private const string Ok = """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8 } ] } ] }""";

    public static TheoryData<string, string, string> JsonCases => new()
    {
        // name, spec, field path
        { "duplicate node names", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8 }, { "name": "n1", "gpus": 8 } ] } ] }""", "partitions[0].nodes[1].name" },
        { "duplicate node names across partitions", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8 } ] }, { "name": "q", "nodes": [ { "name": "n1", "gpus": 8 } ] } ] }""", "partitions[1].nodes[0].name" },
        { "domain cycle", """{ "name": "f", "partitions": [ { "name": "p", "domains": [ { "name": "a", "parent": "b" }, { "name": "b", "parent": "a" } ], "nodes": [ { "name": "n1", "gpus": 8, "domain": "a" } ] } ] }""", "partitions[0].domains[0].parent" },
        { "domain is its own parent", """{ "name": "f", "partitions": [ { "name": "p", "domains": [ { "name": "a", "parent": "a" } ], "nodes": [ { "name": "n1", "gpus": 8 } ] } ] }""", "partitions[0].domains[0].parent" },
        { "unknown parent", """{ "name": "f", "partitions": [ { "name": "p", "domains": [ { "name": "a" }, { "name": "b", "parent": "zz" } ], "nodes": [ { "name": "n1", "gpus": 8 } ] } ] }""", "partitions[0].domains[1].parent" },
        { "unknown domain of a node", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8, "domain": "zz" } ] } ] }""", "partitions[0].nodes[0].domain" },
        { "gpus 0", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 0 } ] } ] }""", "partitions[0].nodes[0].gpus" },
        { "gpus 65", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8 }, { "name": "n2", "gpus": 65 } ] } ] }""", "partitions[0].nodes[1].gpus" },
        { "gpus a string", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": "8" } ] } ] }""", "partitions[0].nodes[0].gpus" },
        { "gpus a fraction", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 7.5 } ] } ] }""", "partitions[0].nodes[0].gpus" },
        { "gpus missing", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1" } ] } ] }""", "partitions[0].nodes[0].gpus" },
        { "unknown field on a node", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8, "colour": "red" } ] } ] }""", "partitions[0].nodes[0].colour" },
        { "unknown top-level field", """{ "name": "f", "partitoins": [] }""", "partitoins" },
        { "partitions not an array", """{ "name": "f", "partitions": { "name": "p" } }""", "partitions" },
        { "rate a string", """{ "name": "f", "partitions": [ { "name": "p", "ratePerGpuHour": "cheap", "nodes": [ { "name": "n1", "gpus": 8 } ] } ] }""", "partitions[0].ratePerGpuHour" },
        { "negative rate", """{ "name": "f", "partitions": [ { "name": "p", "ratePerGpuHour": -1, "nodes": [ { "name": "n1", "gpus": 8 } ] } ] }""", "partitions[0].ratePerGpuHour" },
        { "rate too large", """{ "name": "f", "partitions": [ { "name": "p", "ratePerGpuHour": 1e300, "nodes": [ { "name": "n1", "gpus": 8 } ] } ] }""", "partitions[0].ratePerGpuHour" },
        { "unknown node state", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8, "state": "sleepy" } ] } ] }""", "partitions[0].nodes[0].state" },
        { "duplicate partition", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "n1", "gpus": 8 } ] }, { "name": "P", "nodes": [ { "name": "n2", "gpus": 8 } ] } ] }""", "partitions[1].name" },
        { "partition without nodes", """{ "name": "f", "partitions": [ { "name": "p" } ] }""", "partitions[0].nodes" },
        { "no partitions", """{ "name": "f", "partitions": [] }""", "partitions" },
        { "no name", """{ "partitions": [] }""", "name" },
        { "empty name", """{ "name": " ", "partitions": [] }""", "name" },
        { "root not an object", """[1, 2]""", "" },
        { "node group count 0", """{ "name": "f", "partitions": [ { "name": "p", "nodeGroups": [ { "prefix": "g", "count": 0, "gpus": 8 } ] } ] }""", "partitions[0].nodeGroups[0].count" },
        { "node group of a billion nodes", """{ "name": "f", "partitions": [ { "name": "p", "nodeGroups": [ { "prefix": "g", "count": 1000000000, "gpus": 8 } ] } ] }""", "partitions[0].nodeGroups[0].count" },
        { "node group gpus 65", """{ "name": "f", "partitions": [ { "name": "p", "nodeGroups": [ { "prefix": "g", "count": 2, "gpus": 65 } ] } ] }""", "partitions[0].nodeGroups[0].gpus" },
        { "node group names collide with a node", """{ "name": "f", "partitions": [ { "name": "p", "nodes": [ { "name": "g0001", "gpus": 8 } ], "nodeGroups": [ { "prefix": "g", "count": 2, "gpus": 8, "blockSize": 0 } ] } ] }""", "partitions[0].nodeGroups[0].node[0].name" },
    };

    [Theory]
    [MemberData(nameof(JsonCases))]
    public void FromJson_BadSpec_ThrowsSpecExceptionNamingTheField(string name, string json, string field)
    {
        var e = Should.Throw<SpecException>(() => FleetSpecLoader.FromJson(json), name);
        e.Field.ShouldBe(field, name);
        e.Reason.ShouldNotBeNullOrWhiteSpace();
    }

    [Theory]
    [InlineData("""{ "name": "f", "partitions": [ """)]
    [InlineData("""{ "name": "f" "partitions": [] }""")]
    [InlineData("")]
    [InlineData("not json")]
    public void FromJson_BadJson_ThrowsSpecExceptionWithTheLine(string json)
    {
        var e = Should.Throw<SpecException>(() => FleetSpecLoader.FromJson(json, "fleet.json"));
        e.Field.ShouldStartWith("fleet.json (line ");
        e.Reason.ShouldStartWith("not valid JSON");
    }

    [Fact]
    public void FromJson_Comments_TrailingCommas_AndDomainsInAnyOrder_AreAccepted()
    {
        var fleet = FleetSpecLoader.FromJson("""
            // A fleet
            {
              "name": "f",
              "partitions": [
                { "name": "p", "ratePerGpuHour": 2.5,
                  "domains": [ { "name": "leaf", "parent": "spine" }, { "name": "spine" }, ],
                  "nodes": [ { "name": "n1", "gpus": 8, "domain": "leaf", "state": "draining" }, { "name": "n2", "gpus": 4 } ] },
              ],
            }
            """);
        fleet.Nodes.Count.ShouldBe(2);
        fleet.Nodes[0].InitialState.ShouldBe(NodeState.Draining);
        fleet.Partitions[0].RatePerGpuHour.ShouldBe(2.5m);
        fleet.Domains.Single(d => d.Name == "leaf").Depth.ShouldBe(2);
        FleetSpecLoader.FromJson(Ok).TotalGpus.ShouldBe(8);
    }

    [Fact]
    public void FromCsv_ValidList_BuildsPartitionsAndBlocks()
    {
        var fleet = FleetSpecLoader.FromCsv("node,gpus,model,partition,block\nn1,8,H100,p,b1\nn2,8,H100,p,b1\nn3,4,L40S,q,\n\n", "csv");
        fleet.Partitions.Count.ShouldBe(2);
        fleet.FindPartition("p")!.Domains.Count.ShouldBe(2);
        fleet.TotalGpus.ShouldBe(20);
    }

    public static TheoryData<string, string, string> CsvCases => new()
    {
        { "empty", "", "fleet.csv:1" },
        { "missing column", "node,gpus\nn1,8", "fleet.csv:1" },
        { "unknown column", "node,gpus,model,rack\nn1,8,H100,r1", "fleet.csv:1" },
        { "wrong column count", "node,gpus,model\nn1,8", "fleet.csv:2" },
        { "gpus not a number", "node,gpus,model\nn1,eight,H100", "fleet.csv:2 column gpus" },
        { "gpus 0", "node,gpus,model\nn1,8,H100\nn2,0,H100", "fleet.csv:3 column gpus" },
        { "gpus 65", "node,gpus,model\nn1,65,H100", "fleet.csv:2 column gpus" },
        { "duplicate node", "node,gpus,model\nn1,8,H100\nn1,8,H100", "fleet.csv:3 column node" },
        { "empty node name", "node,gpus,model\n,8,H100", "fleet.csv:2 column node" },
        { "empty partition", "node,gpus,model,partition\nn1,8,H100,", "fleet.csv:2 column partition" },
    };

    [Theory]
    [MemberData(nameof(CsvCases))]
    public void FromCsv_BadList_ThrowsSpecExceptionNamingTheLine(string name, string csv, string field)
    {
        var e = Should.Throw<SpecException>(() => FleetSpecLoader.FromCsv(csv, "f", "fleet.csv"), name);
        e.Field.ShouldBe(field, name);
    }
}
