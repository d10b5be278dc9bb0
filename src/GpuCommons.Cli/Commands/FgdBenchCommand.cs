using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using GpuCommons.Simulation.Benchmarks;
using Spectre.Console;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// <c>gpuc bench fgd</c>: the FGD method (arrivals, no departures, until 130 % of the GPU capacity has been asked
/// for) on a GPU-sharing workload with cores and memory (docs/scheduling.md, "Measuring fragmentation").
/// </summary>
internal static class FgdBenchCommand
{
    public static Command Create()
    {
        var seed = new Option<int>("--seed") { Description = "Workload seed", DefaultValueFactory = _ => 42 };
        var stopAt = new Option<double>("--stop-at") { Description = "Stop arrivals once this share of GPU capacity was asked for", DefaultValueFactory = _ => 1.3 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var byPartition = new Option<bool>("--by-partition") { Description = "Also print the measures of each partition (GPU model), with the share of its cores and memory given out" };
        var placement = new Option<string>("--placement") { Description = "Engine placement: fgd (fragmentation-aware, the default) or best-fit", DefaultValueFactory = _ => "fgd" };
        placement.AcceptOnlyFromAmong("fgd", "best-fit");
        var cmd = new Command("fgd", "Allocated GPU share, GPUs in use and fragmentation when GPU-sharing tasks arrive and never leave (FGD, ATC'23)") { seed, stopAt, placement, byPartition, json };
        cmd.SetAction(parse =>
        {
            var stop = parse.GetValue(stopAt);
            if (!double.IsFinite(stop) || stop <= 0 || stop > 10)
            {
                throw new CliException($"--stop-at must be more than 0 and at most 10, got {stop.ToString(CultureInfo.InvariantCulture)}", CliRunner.Usage);
            }

            var fleet = SharingWorkload.Fleet();
            var r = FgdBenchmark.Run(fleet, SharingWorkload.Draw(parse.GetValue(seed)), new FgdOptions { StopAtRequestedShare = stop, FragmentationAware = parse.GetValue(placement) == "fgd" });
            var result = new Dictionary<string, object>
            {
                ["workload"] = "openb-like (estimated from Alibaba cluster-trace-gpu-v2023)",
                ["placement"] = parse.GetValue(placement)!,
                ["nodes"] = r.Nodes,
                ["gpus"] = r.TotalGpus,
                ["requestedShare"] = Math.Round(r.RequestedShare, 4),
                ["allocatedGpuShare"] = Math.Round(r.AllocatedGpuShare, 4),
                ["gpusInUseShare"] = Math.Round(r.GpusInUseShare, 4),
                ["unallocatedGpus"] = Math.Round(r.UnallocatedGpus, 1),
                ["fragmentationGpus"] = Math.Round(r.FragmentationGpus, 1),
                ["fragmentationShareOfFree"] = Math.Round(r.FragmentationShareOfFree, 4),
                ["placed"] = r.Placed,
                ["dropped"] = r.Dropped,
                ["nodesOverCpus"] = r.NodesOverCpus,
                ["nodesOverMemory"] = r.NodesOverMemory,
                ["placementsPerSecond"] = Math.Round(r.PlacementsPerSecond),
            };
            if (parse.GetValue(byPartition))
            {
                result["partitions"] = r.Partitions.Select(x => new Dictionary<string, object>
                {
                    ["partition"] = x.Partition,
                    ["gpus"] = x.Gpus,
                    ["allocatedGpuShare"] = Math.Round(x.AllocatedGpuShare, 4),
                    ["gpusInUseShare"] = Math.Round(x.GpusInUseShare, 4),
                    ["cpusUsedShare"] = Math.Round(x.CpusUsedShare, 4),
                    ["memoryUsedShare"] = Math.Round(x.MemoryUsedShare, 4),
                }).ToList();
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result));
            }
            else
            {
                var table = new Table().AddColumn("measure").AddColumn("value");
                foreach (var (k, v) in result)
                {
                    if (k == "partitions")
                    {
                        continue;
                    }

                    table.AddRow(Markup.Escape(k), Markup.Escape(Convert.ToString(v, CultureInfo.InvariantCulture) ?? ""));
                }

                AnsiConsole.Write(table);
                if (parse.GetValue(byPartition))
                {
                    var parts = new Table().AddColumn("partition").AddColumn("GPUs").AddColumn("allocated").AddColumn("GPUs in use").AddColumn("cores used").AddColumn("memory used");
                    foreach (var x in r.Partitions)
                    {
                        parts.AddRow(Markup.Escape(x.Partition), x.Gpus.ToString(CultureInfo.InvariantCulture), Pct(x.AllocatedGpuShare), Pct(x.GpusInUseShare), Pct(x.CpusUsedShare), Pct(x.MemoryUsedShare));
                    }

                    AnsiConsole.Write(parts);
                }
            }

            return 0;
        });
        return cmd;
    }

    private static string Pct(double share) => (share * 100).ToString("0.0", CultureInfo.InvariantCulture) + " %";
}
