using System.Globalization;
using System.Net;
using System.Text;
using GpuCommons.Simulation.Metrics;
using GpuCommons.Simulation.Planning;
using ScottPlot;

namespace GpuCommons.Simulation.Reports;

/// <summary>
/// A self-contained HTML report (one file, plots embedded as PNG data URIs rendered by ScottPlot): summary tables,
/// queue length and GPU allocation over time, and the wait-time CDF by tenant class.
/// </summary>
public static class HtmlReport
{
    private const int Width = 960;
    private const int Height = 380;

    public static string Render(IReadOnlyList<SimulationResult> results, string title)
    {
        var html = Begin(title);
        html.Append("<h2>Summary</h2><table><tr><th>policy</th><th>jobs</th><th>avg JCT</th><th>JCT / lower bound</th><th>mean wait</th><th>p95 wait</th><th>p99 wait</th><th>slowdown</th><th>FTF max</th><th>GPU allocation</th><th>offered load</th><th>preemptions</th><th>lost GPU-h</th></tr>");
        foreach (var r in results)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(r.Policy)}</td><td>{r.Jobs:N0}</td><td>{Dur(r.All.Jct.Mean)}</td><td>{r.AvgJctRatio:0.00}</td><td>{Dur(r.All.Wait.Mean)}</td><td>{Dur(r.All.Wait.Quantile(0.95))}</td><td>{Dur(r.All.Wait.Quantile(0.99))}</td><td>{r.All.Slowdown.Mean:0.00}</td><td>{(r.All.FinishTimeFairness.Count == 0 ? 0 : r.All.FinishTimeFairness.Max):0.0}</td><td>{r.GpuAllocation:P1}</td><td>{r.OfferedLoad:0.000}</td><td>{r.All.Preemptions:N0}</td><td>{r.All.LostGpuHours:N0}</td></tr>");
        }

        html.Append("</table>");
        if (results.Count > 0)
        {
            var r0 = results[0];
            html.Append(CultureInfo.InvariantCulture, $"<p>Fleet <b>{E(r0.Fleet)}</b>: {r0.Gpus:N0} GPUs on {r0.Nodes:N0} nodes. Workload <b>{E(r0.Workload)}</b>. Lower bounds for this workload: average JCT ≥ {Dur(r0.AvgJctLowerBound)}, makespan ≥ {Dur(r0.MakespanLowerBound)}, utilization ≤ {Math.Min(1, r0.OfferedLoad):P1}.</p>");
        }

        html.Append("<h2>Queue length</h2><p>Jobs waiting over time.</p>");
        html.Append(Img(Lines("Pending jobs", "days", "jobs", results.Select(r => (r.Policy, r.Series.Select(s => (s.Seconds / 86400, (double)s.Pending)).ToList())))));
        html.Append("<h2>GPU allocation</h2><p>GPUs held by running jobs over time, against the GPUs in service.</p>");
        var alloc = results.Select(r => (r.Policy, r.Series.Select(s => (s.Seconds / 86400, s.AllocatedGpus)).ToList())).ToList();
        if (results.Count > 0)
        {
            alloc.Add(("GPUs in service", results[0].Series.Select(s => (s.Seconds / 86400, (double)s.UpGpus)).ToList()));
        }

        html.Append(Img(Lines("Allocated GPUs", "days", "GPUs", alloc)));
        foreach (var r in results)
        {
            var classes = r.Classes.Select((c, i) => (c, i)).Where(x => r.ByClass[x.i].Wait.Count > 0).ToList();
            if (classes.Count > 1)
            {
                html.Append(CultureInfo.InvariantCulture, $"<h2>Allocation by tenant class ({E(r.Policy)})</h2>");
                html.Append(Img(Lines($"Allocated GPUs by tenant class, {r.Policy}", "days", "GPUs", classes.Select(x => (x.c, r.Series.Select(s => (s.Seconds / 86400, x.i < s.AllocatedByClass.Length ? s.AllocatedByClass[x.i] : 0)).ToList())))));
            }

            html.Append(CultureInfo.InvariantCulture, $"<h2>Wait-time CDF by tenant class ({E(r.Policy)})</h2><p>Fraction of jobs that waited at most the given time (log scale of hours).</p>");
            html.Append(Img(Cdf($"Wait-time CDF, {r.Policy}", classes.Select(x => (x.c, r.ByClass[x.i].Wait)).Append(("all", r.All.Wait)))));
            html.Append(CultureInfo.InvariantCulture, $"<h3>By tenant class and size ({E(r.Policy)})</h3>");
            html.Append(GroupTable(r.ByClass.Concat(r.BySize)));
        }

        return End(html);
    }

    public static string RenderPlan(IReadOnlyList<PlanResult> results, CapacityPlanner plan)
    {
        var html = Begin($"GpuCommons capacity plan: {plan.Fleet.Name}");
        html.Append(CultureInfo.InvariantCulture, $"<p>Fleet <b>{E(plan.Fleet.Name)}</b> ({plan.Fleet.TotalGpus:N0} GPUs). Demand: seeded national synthesis (seed {plan.Seed}) at offered load {plan.Load:0.00} of the whole fleet in month 1, growing {plan.MonthlyGrowth:P0} a month, for {plan.Months} months. Policy {E(plan.Policy)}.</p>");
        html.Append("<h2>Scenarios</h2><table><tr><th>scenario</th><th>timeline</th><th>jobs</th><th>mean wait</th><th>p95 wait</th><th>unserved GPU-hours</th><th>GPU allocation</th></tr>");
        foreach (var (s, r) in results)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(s.Name)}</td><td>{E(s.Description)}</td><td>{r.Jobs:N0}</td><td>{Dur(r.All.Wait.Mean)}</td><td>{Dur(r.All.Wait.Quantile(0.95))}</td><td>{r.Months.Take(plan.Months).Sum(m => m.UnservedGpuHours.Sum()):N0}</td><td>{r.GpuAllocation:P1}</td></tr>");
        }

        html.Append("</table><h2>Unserved GPU-hours per month</h2><p>GPU-hours of demand left waiting in the queue (GPUs asked by pending jobs × hours pending).</p>");
        html.Append(Img(Lines("Unserved GPU-hours per month", "month", "GPU-hours", results.Select(x => (x.Scenario.Name, x.Result.Months.Take(plan.Months).Select(m => ((double)m.Month + 1, m.UnservedGpuHours.Sum())).ToList())))));
        html.Append("<h2>Mean wait per month</h2><p>Mean wait of the jobs submitted in each month that started.</p>");
        html.Append(Img(Lines("Mean wait (hours)", "month", "hours", results.Select(x => (x.Scenario.Name, x.Result.Months.Take(plan.Months).Select(m => ((double)m.Month + 1, Mean(m.Wait) / 3600)).ToList())))));
        html.Append("<h2>GPUs in service and allocated</h2>");
        html.Append(Img(Lines("GPUs", "days", "GPUs", results.SelectMany(x => new[]
        {
            ($"{x.Scenario.Name} in service", x.Result.Series.Select(s => (s.Seconds / 86400, (double)s.UpGpus)).ToList()),
            ($"{x.Scenario.Name} allocated", x.Result.Series.Select(s => (s.Seconds / 86400, s.AllocatedGpus)).ToList()),
        }))));
        foreach (var (s, r) in results)
        {
            html.Append(CultureInfo.InvariantCulture, $"<h3>{E(s.Name)}: wait and unserved GPU-hours per month by tenant class</h3><table><tr><th>month</th>");
            var classes = r.Classes.Select((c, i) => (c, i)).Where(x => r.ByClass[x.i].Submitted > 0).ToList();
            foreach (var (c, _) in classes)
            {
                html.Append(CultureInfo.InvariantCulture, $"<th>{E(c)} wait</th>");
            }

            foreach (var (c, _) in classes)
            {
                html.Append(CultureInfo.InvariantCulture, $"<th>{E(c)} unserved GPU-h</th>");
            }

            html.Append("</tr>");
            foreach (var m in r.Months.Take(plan.Months))
            {
                html.Append(CultureInfo.InvariantCulture, $"<tr><td>{m.Month + 1}</td>");
                foreach (var (_, i) in classes)
                {
                    html.Append(CultureInfo.InvariantCulture, $"<td>{Dur(m.Wait[i].Mean)}</td>");
                }

                foreach (var (_, i) in classes)
                {
                    html.Append(CultureInfo.InvariantCulture, $"<td>{m.UnservedGpuHours[i]:N0}</td>");
                }

                html.Append("</tr>");
            }

            html.Append("</table>");
        }

        return End(html);
    }

    private static double Mean(QuantileSketch[] sketches)
    {
        double sum = 0;
        long count = 0;
        foreach (var s in sketches)
        {
            sum += s.Sum;
            count += s.Count;
        }

        return count == 0 ? 0 : sum / count;
    }

    private static string GroupTable(IEnumerable<MetricGroup> groups)
    {
        var sb = new StringBuilder("<table><tr><th>group</th><th>jobs</th><th>finished</th><th>failed</th><th>rejected</th><th>avg JCT</th><th>mean wait</th><th>p50 wait</th><th>p95 wait</th><th>p99 wait</th><th>slowdown</th><th>FTF max</th><th>preemptions</th><th>lost GPU-h</th><th>GPU-hours (grant burn)</th></tr>");
        foreach (var g in groups.Where(g => g.Submitted > 0))
        {
            sb.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(g.Name)}</td><td>{g.Submitted:N0}</td><td>{g.Finished:N0}</td><td>{g.Failed:N0}</td><td>{g.Rejected:N0}</td><td>{Dur(g.Jct.Mean)}</td><td>{Dur(g.Wait.Mean)}</td><td>{Dur(g.Wait.Quantile(0.5))}</td><td>{Dur(g.Wait.Quantile(0.95))}</td><td>{Dur(g.Wait.Quantile(0.99))}</td><td>{g.Slowdown.Mean:0.00}</td><td>{(g.FinishTimeFairness.Count == 0 ? 0 : g.FinishTimeFairness.Max):0.0}</td><td>{g.Preemptions:N0}</td><td>{g.LostGpuHours:N0}</td><td>{g.ChargedGpuHours:N0}</td></tr>");
        }

        return sb.Append("</table>").ToString();
    }

    private static byte[] Lines(string title, string x, string y, IEnumerable<(string Name, List<(double X, double Y)> Points)> series)
    {
        var plot = new Plot();
        var any = false;
        foreach (var (name, points) in series)
        {
            if (points.Count == 0)
            {
                continue;
            }

            var line = plot.Add.ScatterLine(points.Select(p => p.X).ToArray(), points.Select(p => p.Y).ToArray());
            line.LegendText = name;
            line.LineWidth = 1.5f;
            any = true;
        }

        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        if (any)
        {
            plot.ShowLegend(Alignment.UpperLeft);
        }

        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    private static byte[] Cdf(string title, IEnumerable<(string Name, QuantileSketch Sketch)> series)
    {
        var plot = new Plot();
        foreach (var (name, sketch) in series)
        {
            var cdf = sketch.Cdf();
            if (cdf.Count == 0)
            {
                continue;
            }

            // log10 of hours, with waits under 1 s drawn at 1 s.
            var xs = cdf.Select(p => Math.Log10(Math.Max(p.Value, 1) / 3600)).Prepend(Math.Log10(1 / 3600.0)).ToArray();
            var ys = cdf.Select(p => p.Fraction).Prepend(0).ToArray();
            var line = plot.Add.ScatterLine(xs, ys);
            line.LegendText = name;
            line.LineWidth = 1.5f;
            line.ConnectStyle = ConnectStyle.StepHorizontal;
        }

        var ticks = new ScottPlot.TickGenerators.NumericManual();
        foreach (var (v, label) in new[] { (1 / 3600.0, "1 s"), (1 / 60.0, "1 min"), (0.1, "6 min"), (1.0, "1 h"), (10.0, "10 h"), (24.0, "1 d"), (168.0, "1 w"), (720.0, "30 d") })
        {
            ticks.AddMajor(Math.Log10(v), label);
        }

        plot.Axes.Bottom.TickGenerator = ticks;
        plot.Title(title);
        plot.XLabel("wait (log scale)");
        plot.YLabel("fraction of jobs");
        plot.Axes.SetLimitsY(0, 1.02);
        plot.ShowLegend(Alignment.LowerRight);
        return plot.GetImageBytes(Width, Height, ImageFormat.Png);
    }

    private static string Img(byte[] png) => $"<p><img alt=\"plot\" src=\"data:image/png;base64,{Convert.ToBase64String(png)}\"></p>";

    private static StringBuilder Begin(string title) => new StringBuilder()
        .Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E(title)).Append("</title>")
        .Append("<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}table{border-collapse:collapse;font-size:.85em;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}</style>")
        .Append("</head><body><h1>").Append(E(title)).Append("</h1>");

    private static string End(StringBuilder html) =>
        html.Append("<p style=\"color:#888;font-size:.8em\">Produced by gpuc with the GpuCommons scheduling engine in virtual time. Plots rendered by ScottPlot.</p></body></html>\n").ToString();

    private static string E(string s) => WebUtility.HtmlEncode(s);

    private static string Dur(double seconds) => seconds switch
    {
        < 120 => seconds.ToString("0.#", CultureInfo.InvariantCulture) + " s",
        < 7200 => (seconds / 60).ToString("0.#", CultureInfo.InvariantCulture) + " min",
        < 172800 => (seconds / 3600).ToString("0.#", CultureInfo.InvariantCulture) + " h",
        _ => (seconds / 86400).ToString("0.#", CultureInfo.InvariantCulture) + " d",
    };
}
