using System.Globalization;
using System.Text;
using GpuCommons.Core.Fleet;
using GpuCommons.Core.Jobs;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.AspNetCore.Html;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Portal.Pages;

public sealed class FleetModel : PortalPage
{
    public sealed record PartitionView(Partition Partition, HtmlString Grid, int Up, int Draining, int Down, int BusyGpus, Dictionary<string, int> ByClass);

    public sealed record NodeLine(string Name, string Partition, string State, string? Reason);

    public List<PartitionView> Partitions { get; } = [];
    public List<NodeLine> Unavailable { get; } = [];
    public List<ReservationRow> Reservations { get; private set; } = [];
    /// <summary>Discrepancies between the server's records and the backend: jobs the backend lost (after a restart or a node failure).</summary>
    public IReadOnlyList<Reports.LostJob> Lost => Report.Lost;
    public Reports.Snapshot Report { get; private set; } = null!;
    /// <summary>Reconciliation with the cluster manager: the last pass, and what it found still open or resolved lately.</summary>
    public GpuCommons.Contracts.ReconciliationDto Reconcile { get; private set; } = null!;
    public int OpenCount { get; private set; }
    public List<DiscrepancyRow> Open { get; private set; } = [];
    public List<DiscrepancyRow> Resolved { get; private set; } = [];
    public IReadOnlyList<string> Classes { get; private set; } = [];
    public int TotalGpus { get; private set; }
    public int BusyGpus { get; private set; }

    /// <summary>Colour of a tenant class (organisation type); the same everywhere in the portal.</summary>
    public static string ClassColor(IReadOnlyList<string> classes, string c)
    {
        var i = -1;
        for (var k = 0; k < classes.Count; k++)
        {
            if (classes[k] == c)
            {
                i = k;
            }
        }

        return i < 0 ? "#333" : Svg.Palette[i % Svg.Palette.Length];
    }

    public const string FreeColor = "#d5d9de", DrainColor = "#e0a100", DownColor = "#6b0d17";

    public async Task<IActionResult> OnGetAsync()
    {
        if (!Caller.IsOperator)
        {
            return Forbidden();
        }

        Report = await HttpContext.RequestServices.GetRequiredService<Reports>().GetAsync();
        Classes = Report.Classes;
        var fleet = Co.Fleet;
        var states = Co.NodeStates;
        await using var db = Db.Create();
        var running = await db.Jobs.AsNoTracking().Where(j => j.State == JobState.Running && j.Slots != null).Select(j => new { j.Project, j.Slots }).ToListAsync();
        // owner[node][gpu] = class index + 1 (0: free)
        var owner = new byte[fleet.Nodes.Count][];
        var classIndex = Classes.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i, StringComparer.Ordinal);
        foreach (var j in running)
        {
            var cls = classIndex.GetValueOrDefault(Report.ProjectClass.GetValueOrDefault(j.Project, "unknown"), Classes.Count);
            foreach (var slot in j.Slots!.Split(';'))
            {
                var parts = slot.Split(':');
                if (parts.Length >= 2 && fleet.FindNode(parts[0]) is { } node && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var g) && g < node.Gpus)
                {
                    (owner[node.Index] ??= new byte[node.Gpus])[g] = (byte)(cls + 1);
                }
            }
        }

        foreach (var p in fleet.Partitions)
        {
            var paths = new StringBuilder[Classes.Count + 4];
            for (var i = 0; i < paths.Length; i++)
            {
                paths[i] = new StringBuilder();
            }

            int up = 0, draining = 0, down = 0, busy = 0;
            var byClass = new Dictionary<string, int>(StringComparer.Ordinal);
            const int perRow = 48, cell = 5, nodeW = 4 * cell + 3, nodeH = 2 * cell + 3;
            var k = 0;
            foreach (var ni in p.Nodes)
            {
                var node = fleet.Nodes[ni];
                var (st, reason) = states.TryGetValue(node.Name, out var s) ? s : (node.InitialState, null);
                switch (st)
                {
                    case NodeState.Up: up++; break;
                    case NodeState.Draining: draining++; break;
                    default: down++; break;
                }

                if (st != NodeState.Up)
                {
                    Unavailable.Add(new NodeLine(node.Name, p.Name, st.ToString().ToLowerInvariant(), reason));
                }

                var x0 = k % perRow * nodeW;
                var y0 = k / perRow * nodeH;
                var cols = (node.Gpus + 1) / 2;
                for (var g = 0; g < node.Gpus; g++)
                {
                    var o = owner[ni]?[g] ?? 0;
                    int bucket;
                    if (st == NodeState.Down)
                    {
                        bucket = Classes.Count + 3;
                    }
                    else if (o > 0)
                    {
                        bucket = o - 1;
                        busy++;
                        var c = o - 1 < Classes.Count ? Classes[o - 1] : "unknown";
                        byClass[c] = byClass.GetValueOrDefault(c) + 1;
                    }
                    else
                    {
                        bucket = st == NodeState.Draining ? Classes.Count + 2 : Classes.Count + 1;
                    }

                    var gx = x0 + g % cols * cell;
                    var gy = y0 + g / cols * cell;
                    paths[bucket].Append('M').Append(gx).Append(' ').Append(gy).Append("h4v4h-4z");
                }

                k++;
            }

            var rows = (k + perRow - 1) / perRow;
            var width = Math.Max(1, Math.Min(perRow, k)) * nodeW;
            var height = Math.Max(1, rows) * nodeH;
            // A small partition is drawn larger (a node of 8 GPUs is 23×13 units): at least ~480 px wide, at most ×16.
            var scale = Math.Clamp(480 / width, 1, 16);
            var sb = new StringBuilder();
            var title = L["FleetGridTitle", p.Name, Fmt.Int(p.Nodes.Count), Fmt.Int(p.TotalGpus)].Value;
            sb.Append(CultureInfo.InvariantCulture, $"<svg class=\"fleet\" role=\"img\" aria-label=\"{System.Net.WebUtility.HtmlEncode(title)}\" width=\"{width * scale}\" height=\"{height * scale}\" viewBox=\"0 0 {width} {height}\" shape-rendering=\"crispEdges\">");
            for (var i = 0; i < paths.Length; i++)
            {
                if (paths[i].Length == 0)
                {
                    continue;
                }

                var color = i < Classes.Count ? ClassColor(Classes, Classes[i]) : i == Classes.Count ? "#333" : i == Classes.Count + 1 ? FreeColor : i == Classes.Count + 2 ? DrainColor : DownColor;
                sb.Append("<path fill=\"").Append(color).Append("\" d=\"").Append(paths[i]).Append("\"/>");
            }

            sb.Append("</svg>");
            TotalGpus += p.TotalGpus;
            BusyGpus += busy;
            Partitions.Add(new PartitionView(p, new HtmlString(sb.ToString()), up, draining, down, busy, byClass));
        }

        Reservations = await db.Reservations.AsNoTracking().OrderBy(r => r.Start).Take(200).ToListAsync();
        Reconcile = HttpContext.RequestServices.GetRequiredService<ReconciliationService>().Status;
        OpenCount = await db.Discrepancies.CountAsync(d => d.Resolved == null);
        Open = await db.Discrepancies.AsNoTracking().Where(d => d.Resolved == null).OrderByDescending(d => d.LastSeen).ThenByDescending(d => d.Id).Take(200).ToListAsync();
        var since = Now.AddDays(-1);
        Resolved = await db.Discrepancies.AsNoTracking().Where(d => d.Resolved != null && d.Resolved > since).OrderByDescending(d => d.Resolved).ThenByDescending(d => d.Id).Take(50).ToListAsync();

        return Page();
    }

    public async Task<IActionResult> OnPostNodeAsync(string node, string action, string? reason)
    {
        if (action is not ("drain" or "undrain" or "down"))
        {
            return BadRequest();
        }

        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, $"/api/nodes/{Uri.EscapeDataString(node ?? "")}/{action}", string.IsNullOrWhiteSpace(reason) ? null : new { reason });
        return Back(r, L["NodeChanged", node ?? "", L["Action_" + action]], "/fleet");
    }

    public async Task<IActionResult> OnPostReserveAsync(string name, string nodes, DateTime start, DateTime end, string? project)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, "/api/reservations", new
        {
            name,
            nodes = (nodes ?? "").Split([',', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList(),
            start = new DateTimeOffset(DateTime.SpecifyKind(start, DateTimeKind.Utc)),
            end = new DateTimeOffset(DateTime.SpecifyKind(end, DateTimeKind.Utc)),
            project = string.IsNullOrWhiteSpace(project) ? null : project,
        });
        return Back(r, L["ReservationAdded", name ?? ""], "/fleet");
    }

    public async Task<IActionResult> OnPostUnreserveAsync(string name)
    {
        var r = await Api.SendAsync(HttpContext, HttpMethod.Delete, $"/api/reservations/{Uri.EscapeDataString(name)}");
        return Back(r, L["ReservationRemoved", name], "/fleet");
    }
}
