using System.Globalization;
using System.Text;
using CsCheck;
using GpuCommons.Core;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling.Tests.Support;

namespace GpuCommons.Scheduling.Tests.Loading;

/// <summary>
/// Thousands of mutated and random fleet specs: the loaders either build a fleet (that an engine can then schedule on)
/// or throw a <see cref="SpecException"/>; never any other exception. Inputs are bounded in size, so every case ends.
/// </summary>
public sealed class FleetLoaderFuzzTests
{
    private static readonly string[] JsonSeeds =
    [
        BuiltInFleets.GetJson("small"),
        """{ "name": "f", "partitions": [ { "name": "p", "ratePerGpuHour": 2.5, "domains": [ { "name": "leaf", "parent": "spine" }, { "name": "spine" } ], "nodes": [ { "name": "n1", "gpus": 8, "domain": "leaf", "state": "draining" }, { "name": "n2", "gpus": 4 } ] } ] }""",
        """{ "name": "g", "partitions": [ { "name": "b200", "gpuModel": "B200", "nodeGroups": [ { "prefix": "b-", "count": 40, "gpus": 8, "blockSize": 16, "digits": 3 } ] }, { "name": "gh", "nodeGroups": [ { "prefix": "g-", "count": 5, "gpus": 4, "blockSize": 0, "domain": null } ] } ] }""",
    ];

    private static readonly string[] CsvSeeds =
    [
        "node,gpus,model,partition,block\nn1,8,H100,p,b1\nn2,8,H100,p,b1\nn3,4,L40S,q,\n",
        "node,gpus,model\na,8,H100\nb,4,H100\nc,1,H100\n",
        "NODE, Gpus ,model,block\r\nx1,2,A100,r1\r\nx2,2,A100,r2\r\n",
    ];

    private static readonly string[] Tokens =
    [
        "{", "}", "[", "]", ",", ":", "\"", "null", "true", "false", "0", "-1", "65", "64", "1e400", "1e300", "2147483648", "99999999999", "0.5", "-0",
        "\"name\"", "\"partitions\"", "\"nodes\"", "\"domains\"", "\"nodeGroups\"", "\"gpus\"", "\"parent\"", "\"domain\"", "\"count\"", "\"blockSize\"",
        "\"digits\"", "\"prefix\"", "\"state\"", "\"down\"", "\"ratePerGpuHour\"", "//", "/*", "\\u0000", "\\uD800", "\uD800", "\u00e9", "\n", " ", "\t", ",,",
    ];

    private static readonly string[] CsvTokens = [",", "\n", "\r", "node", "gpus", "model", "partition", "block", "8", "0", "65", "-3", "x", " ", "\"", "2147483648", "n1", "p", "b1", ""];

    /// <summary>A mutation: at a relative position, delete some characters and/or insert a token.</summary>
    private sealed record Mutation(int Kind, double Position, int Length, int Token)
    {
        public string Apply(string s, string[] tokens)
        {
            var at = Math.Clamp((int)(Position * s.Length), 0, s.Length);
            var len = Math.Min(Length, s.Length - at);
            return Kind switch
            {
                0 => s.Remove(at, len),
                1 => s.Insert(at, tokens[Token % tokens.Length]),
                2 => s.Remove(at, len).Insert(at, tokens[Token % tokens.Length]),
                3 => s.Insert(at, s.Substring(at, len)),
                4 => s[..at],
                _ => ReplaceNumber(s, at, tokens[Token % tokens.Length]),
            };
        }

        private static string ReplaceNumber(string s, int at, string token)
        {
            // Replace the next number after the position (counts, GPUs, rates) with a token.
            var i = at;
            while (i < s.Length && !char.IsAsciiDigit(s[i]))
            {
                i++;
            }

            var j = i;
            while (j < s.Length && (char.IsAsciiDigit(s[j]) || s[j] == '.'))
            {
                j++;
            }

            return i >= s.Length ? s + token : s[..i] + token + s[j..];
        }
    }

    private static readonly Gen<Mutation> MutationGen =
        from kind in Gen.Int[0, 5]
        from position in Gen.Double[0, 1]
        from length in Gen.Int[1, 12]
        from token in Gen.Int[0, 1000]
        select new Mutation(kind, position, length, token);

    /// <summary>The loader's contract: a fleet an engine can schedule on, or a SpecException that names a field.</summary>
    private static void LoadsOrSpecException(Func<Fleet> load)
    {
        Fleet fleet;
        try
        {
            fleet = load();
        }
        catch (SpecException e)
        {
            e.Reason.ShouldNotBeNullOrWhiteSpace();
            return;
        }

        fleet.TotalGpus.ShouldBeGreaterThan(0);
        fleet.Nodes.Count.ShouldBeLessThanOrEqualTo(FleetBuilder.MaxNodes);
        var tenancy = new TenancySpec();
        var e2 = new SchedulerEngine(fleet, tenancy, null, new VirtualTimeProvider(TenancyBuilder.Epoch));
        e2.Schedule();
        e2.VerifyInvariants().ShouldBeNull();
    }

    [Fact]
    public void FromJson_MutatedSpecs_OnlySpecException()
    {
        var gen = Gen.Select(Gen.Int[0, JsonSeeds.Length - 1], MutationGen.Array[1, 6]);
        Deterministic.Sample(gen, x =>
        {
            var json = x.Item2.Aggregate(JsonSeeds[x.Item1], (s, m) => m.Apply(s, Tokens));
            LoadsOrSpecException(() => FleetSpecLoader.FromJson(json, "fuzz.json"));
        }, iter: 4000, stream: 11, print: x => string.Join(" ", x.Item2.AsEnumerable()));
    }

    private static Gen<string> JsonValue(int depth)
    {
        var keys = Gen.OneOfConst("name", "partitions", "nodes", "domains", "nodeGroups", "gpus", "parent", "domain", "count", "blockSize", "digits", "prefix", "state", "ratePerGpuHour", "gpuModel", "description", "x");
        var scalar = Gen.OneOf(
            Gen.OneOfConst("null", "true", "false", "0", "1", "8", "64", "65", "-1", "1e300", "1.5", "2147483648", "\"p\"", "\"n1\"", "\"up\"", "\"down\"", "\"\"", "\"a\""),
            Gen.Int[-100, 100].Select(i => i.ToString(CultureInfo.InvariantCulture)));
        if (depth == 0)
        {
            return scalar;
        }

        var inner = JsonValue(depth - 1);
        var array = inner.Array[0, 4].Select(a => "[" + string.Join(",", a) + "]");
        var obj = Gen.Select(keys, inner).Array[0, 5].Select(a => "{" + string.Join(",", a.Select(kv => $"\"{kv.Item1}\":{kv.Item2}")) + "}");
        return Gen.Frequency((2, scalar), (2, array), (4, obj));
    }

    [Fact]
    public void FromJson_RandomDocuments_OnlySpecException()
    {
        // Documents shaped like fleet specs: a name and partitions with random members.
        var partition = JsonValue(3);
        var gen = Gen.Select(Gen.OneOfConst("\"f\"", "\"\"", "1", "null"), partition.Array[0, 4]);
        Deterministic.Sample(gen, x =>
        {
            var json = $$"""{ "name": {{x.Item1}}, "partitions": [{{string.Join(",", x.Item2)}}] }""";
            LoadsOrSpecException(() => FleetSpecLoader.FromJson(json, "fuzz.json"));
        }, iter: 3000, stream: 12, print: x => string.Join(",", x.Item2));
    }

    [Fact]
    public void FromCsv_MutatedAndRandomLists_OnlySpecException()
    {
        var random = Gen.OneOfConst(CsvTokens).Array[0, 40].Select(t => string.Concat(t));
        var mutated = Gen.Select(Gen.Int[0, CsvSeeds.Length - 1], MutationGen.Array[1, 6])
            .Select(x => x.Item2.Aggregate(CsvSeeds[x.Item1], (s, m) => m.Apply(s, CsvTokens)));
        var gen = Gen.Frequency((1, random), (2, mutated));
        Deterministic.Sample(gen, csv => LoadsOrSpecException(() => FleetSpecLoader.FromCsv(csv, "fuzz", "fuzz.csv")), iter: 4000, stream: 13, print: csv => csv.Replace("\n", "\\n", StringComparison.Ordinal));
    }

    [Fact]
    public void FromJson_ArbitraryText_OnlySpecException()
    {
        var gen = Gen.Char.Array[0, 60].Select(c => new string(c));
        Deterministic.Sample(gen, text => LoadsOrSpecException(() => FleetSpecLoader.FromJson(text, "fuzz.json")), iter: 2000, stream: 14, print: t => Convert.ToBase64String(Encoding.UTF8.GetBytes(t)));
    }
}
