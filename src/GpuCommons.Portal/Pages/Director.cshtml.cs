using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;

namespace GpuCommons.Portal.Pages;

public sealed class DirectorModel : PortalPage
{
    public Reports.Snapshot Report { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync()
    {
        if (!Caller.SeesAllTenancy)
        {
            return Forbidden();
        }

        Report = await HttpContext.RequestServices.GetRequiredService<Reports>().GetAsync();
        return Page();
    }

    /// <summary>Utilization of a month: GPU-hours charged over the GPU-hours the fleet had in it.</summary>
    public double Utilization(DateTime month) =>
        Report.Months.Where(m => m.Month == month).Sum(m => m.GpuHours) / (Report.TotalGpus * 24.0 * DateTime.DaysInMonth(month.Year, month.Month));

    /// <summary>The same figures as CSV (invariant culture, ISO months), for spreadsheets and the funder.</summary>
    public async Task<IActionResult> OnGetCsvAsync()
    {
        if (!Caller.SeesAllTenancy)
        {
            return Forbidden();
        }

        var r = await HttpContext.RequestServices.GetRequiredService<Reports>().GetAsync();
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine("section,month,org_type,partition,gpu_hours,amount_krw,jobs,wait_p50_min,wait_p90_min,wait_p99_min,utilization");
        foreach (var m in r.Months)
        {
            sb.AppendLine(ci, $"gpu_hours,{m.Month:yyyy-MM},{m.OrgType},{m.Partition},{m.GpuHours.ToString("0.###", ci)},{m.Amount.ToString("0", ci)},,,,,");
        }

        foreach (var w in r.Waits)
        {
            sb.AppendLine(ci, $"wait,{w.Month:yyyy-MM},{w.OrgType},,,,{w.Jobs},{w.P50Minutes.ToString("0.#", ci)},{w.P90Minutes.ToString("0.#", ci)},{w.P99Minutes.ToString("0.#", ci)},");
        }

        Report = r;
        foreach (var month in r.Months.Select(m => m.Month).Distinct())
        {
            sb.AppendLine(ci, $"utilization,{month:yyyy-MM},,,,,,,,,{Utilization(month).ToString("0.####", ci)}");
        }

        return File(Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes(sb.ToString())).ToArray(), "text/csv; charset=utf-8", "gpucommons-report.csv");
    }
}
