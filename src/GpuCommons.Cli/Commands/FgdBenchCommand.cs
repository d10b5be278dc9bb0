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
        var placement = new Option<string>("--placement") { Description = "Engine placement: fgd (fragmentation-aware, the default) or best-fit", DefaultValueFactory = _ => "fgd" };
        placement.AcceptOnlyFromAmong("fgd", "best-fit");
        var cmd = new Command("fgd", "Allocated GPU share, GPUs in use and fragmentation when GPU-sharing tasks arrive and never leave (FGD, ATC'23)") { seed, stopAt, placement, json };
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
            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(result));
            }
            else
            {
                var table = new Table().AddColumn("measure").AddColumn("value");
                foreach (var (k, v) in result)
                {
                    table.AddRow(Markup.Escape(k), Markup.Escape(Convert.ToString(v, CultureInfo.InvariantCulture) ?? ""));
                }

                AnsiConsole.Write(table);
            }

            return 0;
        });
        return cmd;
    }
}
