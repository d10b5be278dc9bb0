using System.Globalization;
using GpuCommons.Core.Rounds;
using GpuCommons.Core.Tenancy;
using Microsoft.AspNetCore.Mvc;

namespace GpuCommons.Portal.Pages;

/// <summary>
/// An admin opens a call: titles and texts in Korean and English, dates, partitions on offer with their caps, a budget per
/// tenant class, eligibility, criteria and weights, reviewers per proposal, preference rules and the co-pay per
/// organisation type. Every field is checked here first (all errors at once, each beside its field); the API then checks
/// the call against the fleet, and its error is shown beside the field it names.
/// </summary>
public sealed class CallNewModel : PortalPage
{
    public const int CriteriaRows = 6;

    public static IReadOnlyList<string> OrgTypes { get; } = Enum.GetNames<OrganisationType>().Select(n => n.ToLowerInvariant()).ToList();

    /// <summary>Errors by form field (the input's name).</summary>
    public Dictionary<string, string> Errors { get; } = new(StringComparer.Ordinal);

    public string? Error { get; private set; }

    public IReadOnlyList<(string Name, int Gpus, int ServerGpus)> Partitions { get; private set; } = [];

    [BindProperty] public string? Id { get; set; }
    [BindProperty] public string? TitleEn { get; set; }
    [BindProperty] public string? TitleKo { get; set; }
    [BindProperty] public string? TextEn { get; set; }
    [BindProperty] public string? TextKo { get; set; }
    [BindProperty] public string? Opens { get; set; }
    [BindProperty] public string? Closes { get; set; }
    /// <summary>Partitions on offer.</summary>
    [BindProperty] public List<string> Offered { get; set; } = [];
    /// <summary>Per partition: most GPUs per project (empty: no cap).</summary>
    [BindProperty] public Dictionary<string, string?> Cap { get; set; } = [];
    /// <summary>Per partition: GPUs per server (empty: the partition's nodes').</summary>
    [BindProperty] public Dictionary<string, string?> Server { get; set; } = [];
    /// <summary>Per tenant class: budget in GPU-months.</summary>
    [BindProperty] public Dictionary<string, string?> Budget { get; set; } = [];
    [BindProperty] public string? MaxMonths { get; set; } = "12";
    [BindProperty] public string? MaxGpuHours { get; set; }
    [BindProperty] public List<string> Eligible { get; set; } = [];
    [BindProperty] public List<string?> CritKey { get; set; } = [];
    [BindProperty] public List<string?> CritWeight { get; set; } = [];
    [BindProperty] public List<string?> CritEn { get; set; } = [];
    [BindProperty] public List<string?> CritKo { get; set; } = [];
    [BindProperty] public string? Reviewers { get; set; } = "3";
    [BindProperty] public string? RegionalBonus { get; set; } = "0";
    [BindProperty] public string? OrgCap { get; set; }
    [BindProperty] public bool AllowPartial { get; set; } = true;
    [BindProperty] public string? MinPartial { get; set; } = "50";
    [BindProperty] public string? WaitlistMin { get; set; } = "60";
    /// <summary>Per organisation type: co-pay in percent of the market price.</summary>
    [BindProperty] public Dictionary<string, string?> Copay { get; set; } = [];
    [BindProperty] public string? Youth { get; set; } = "50";

    private void Load()
    {
        Partitions = Co.Fleet.Partitions.Select(p => (p.Name, p.TotalGpus, p.Nodes.Count > 0 ? Co.Fleet.Nodes[p.Nodes[0]].Gpus : 8)).ToList();
    }

    public IActionResult OnGet()
    {
        if (!Caller.IsAdmin)
        {
            return Forbidden();
        }

        Load();
        var now = Now;
        Opens = now.UtcDateTime.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture);
        Closes = now.AddDays(30).UtcDateTime.ToString("yyyy-MM-ddTHH:mm", CultureInfo.InvariantCulture);
        Eligible = [.. OrgTypes];
        foreach (var c in CallRules.NationalCriteria)
        {
            CritKey.Add(c.Key);
            CritWeight.Add(c.Weight.ToString(CultureInfo.InvariantCulture));
            CritEn.Add(c.NameEn);
            CritKo.Add(c.NameKo);
        }

        Copay["companylab"] = "30";
        Copay["startup"] = "30";
        return Page();
    }

    public async Task<IActionResult> OnPostAsync()
    {
        if (!Caller.IsAdmin)
        {
            return Forbidden();
        }

        Load();
        var body = Build();
        if (Errors.Count > 0)
        {
            Error = L["Rd_FormErrors", Errors.Count];
            return Page();
        }

        var r = await Api.SendAsync(HttpContext, HttpMethod.Post, "/api/calls", body);
        if (!r.Ok)
        {
            var field = FormField(r.Field);
            var message = ServerText.Error(r, L);
            if (field is not null)
            {
                Errors[field] = message;
            }

            Error = field is null ? message : L["Rd_FormErrors", 1];
            return Page();
        }

        Flash = L["Rd_CallCreated", Id ?? ""];
        return Redirect($"/calls/{Uri.EscapeDataString(Id!)}");
    }

    /// <summary>The call as the API takes it; every field that cannot be read gets its error.</summary>
    private object Build()
    {
        Required(nameof(Id), Id);
        Required(nameof(TitleEn), TitleEn);
        Required(nameof(TitleKo), TitleKo);
        var opens = Date(nameof(Opens), Opens);
        var closes = Date(nameof(Closes), Closes);
        if (opens is { } o && closes is { } c && c <= o)
        {
            Errors[nameof(Closes)] = L["Rd_ErrAfterOpens"];
        }

        var partitions = Offered.Where(p => Partitions.Any(x => x.Name == p)).Distinct().ToList();
        if (partitions.Count == 0)
        {
            Errors[nameof(Offered)] = L["Rd_ErrPartition"];
        }

        var caps = new Dictionary<string, int>();
        var servers = new Dictionary<string, int>();
        foreach (var p in partitions)
        {
            if (Int($"Cap[{p}]", Cap.GetValueOrDefault(p), 1, 1_000_000) is { } cap)
            {
                caps[p] = cap;
            }

            if (Int($"Server[{p}]", Server.GetValueOrDefault(p), 1, 1024) is { } server)
            {
                servers[p] = server;
            }
        }

        var budgets = new Dictionary<string, double>();
        foreach (var cls in TenantClasses.All)
        {
            if (Number($"Budget[{cls}]", Budget.GetValueOrDefault(cls), 0, 1e9) is { } b)
            {
                budgets[cls] = b;
            }
        }

        if (budgets.Count == 0 && !Errors.Keys.Any(k => k.StartsWith("Budget[", StringComparison.Ordinal)))
        {
            Errors["Budget"] = L["Rd_ErrBudget"];
        }

        var criteria = new List<Criterion>();
        for (var i = 0; i < CritKey.Count; i++)
        {
            var key = CritKey[i]?.Trim();
            if (string.IsNullOrEmpty(key))
            {
                continue;
            }

            var weight = Number($"CritWeight[{i}]", CritWeight.ElementAtOrDefault(i), 0.0001, 1e6);
            Required($"CritEn[{i}]", CritEn.ElementAtOrDefault(i));
            Required($"CritKo[{i}]", CritKo.ElementAtOrDefault(i));
            if (criteria.Any(c => c.Key == key))
            {
                Errors[$"CritKey[{i}]"] = L["Rd_ErrUnique"];
            }

            criteria.Add(new Criterion(key, weight ?? 1, CritEn.ElementAtOrDefault(i)?.Trim() ?? "", CritKo.ElementAtOrDefault(i)?.Trim() ?? ""));
        }

        if (criteria.Count == 0)
        {
            Errors["Criteria"] = L["Rd_ErrCriteria"];
        }

        var copay = new Dictionary<string, double>();
        foreach (var t in OrgTypes)
        {
            if (Number($"Copay[{t}]", Copay.GetValueOrDefault(t), 0, 100) is { } pct && pct > 0)
            {
                copay[t] = pct / 100;
            }
        }

        return new
        {
            id = Id?.Trim(),
            titleEn = TitleEn?.Trim(),
            titleKo = TitleKo?.Trim(),
            textEn = TextEn ?? "",
            textKo = TextKo ?? "",
            opens,
            closes,
            rules = new
            {
                partitions,
                budgetGpuMonths = budgets,
                maxGpusPerProject = caps,
                serverGpus = servers,
                maxMonths = Int(nameof(MaxMonths), MaxMonths, 1, 60, required: true) ?? 12,
                maxGpuHoursPerProject = Number(nameof(MaxGpuHours), MaxGpuHours, 1, 1e9),
                eligibleTypes = Eligible.Where(OrgTypes.Contains).Distinct().ToList(),
                criteria,
                reviewersPerProposal = Int(nameof(Reviewers), Reviewers, 1, 20, required: true) ?? 3,
                regionalBonus = Number(nameof(RegionalBonus), RegionalBonus, 0, 100) ?? 0,
                maxGpusPerOrganisation = Int(nameof(OrgCap), OrgCap, 1, 1_000_000),
                allowPartial = AllowPartial,
                minPartialFraction = (Number(nameof(MinPartial), MinPartial, 1, 100) ?? 50) / 100,
                waitlistMinScore = Number(nameof(WaitlistMin), WaitlistMin, 0, 200) ?? 60,
                copay,
                youthDiscount = (Number(nameof(Youth), Youth, 0, 100) ?? 50) / 100,
            },
        };
    }

    private void Required(string field, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            Errors[field] = L["Rd_ErrRequired"];
        }
    }

    private DateTimeOffset? Date(string field, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            Errors[field] = L["Rd_ErrRequired"];
            return null;
        }

        // The form's dates are UTC (the portal shows times in UTC).
        if (DateTime.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var d))
        {
            return new DateTimeOffset(DateTime.SpecifyKind(d, DateTimeKind.Utc));
        }

        Errors[field] = L["Rd_ErrDate"];
        return null;
    }

    private double? Number(string field, string? value, double min, double max)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !double.IsFinite(v) || v < min || v > max)
        {
            Errors[field] = L["Rd_ErrRange", min.ToString("G", CultureInfo.CurrentCulture), max.ToString("N0", CultureInfo.CurrentCulture)];
            return null;
        }

        return v;
    }

    private int? Int(string field, string? value, int min, int max, bool required = false)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            if (required)
            {
                Errors[field] = L["Rd_ErrRequired"];
            }

            return null;
        }

        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < min || v > max)
        {
            Errors[field] = L["Rd_ErrWhole", min.ToString("N0", CultureInfo.CurrentCulture), max.ToString("N0", CultureInfo.CurrentCulture)];
            return null;
        }

        return v;
    }

    /// <summary>The form field an API error names (<c>rules.budgetGpuMonths.academia</c> → <c>Budget[academia]</c>), or null.</summary>
    public static string? FormField(string? api)
    {
        if (api is null)
        {
            return null;
        }

        var f = api.StartsWith("rules.", StringComparison.Ordinal) ? api["rules.".Length..] : api;
        string After(string prefix) => f[prefix.Length..];
        return f switch
        {
            "id" => nameof(Id),
            "titleEn" => nameof(TitleEn),
            "titleKo" => nameof(TitleKo),
            "textEn" => nameof(TextEn),
            "textKo" => nameof(TextKo),
            "opens" => nameof(Opens),
            "closes" => nameof(Closes),
            _ when f.StartsWith("partitions", StringComparison.Ordinal) => nameof(Offered),
            _ when f.StartsWith("budgetGpuMonths.", StringComparison.Ordinal) => $"Budget[{After("budgetGpuMonths.")}]",
            "budgetGpuMonths" => "Budget",
            _ when f.StartsWith("maxGpusPerProject.", StringComparison.Ordinal) => $"Cap[{After("maxGpusPerProject.")}]",
            _ when f.StartsWith("serverGpus.", StringComparison.Ordinal) => $"Server[{After("serverGpus.")}]",
            "maxMonths" => nameof(MaxMonths),
            "maxGpuHoursPerProject" => nameof(MaxGpuHours),
            _ when f.StartsWith("eligibleTypes", StringComparison.Ordinal) => nameof(Eligible),
            _ when f.StartsWith("criteria[", StringComparison.Ordinal) && f.EndsWith("].weight", StringComparison.Ordinal) => $"CritWeight[{f["criteria[".Length..f.IndexOf(']', StringComparison.Ordinal)]}]",
            _ when f.StartsWith("criteria", StringComparison.Ordinal) => "Criteria",
            "reviewersPerProposal" => nameof(Reviewers),
            "regionalBonus" => nameof(RegionalBonus),
            "maxGpusPerOrganisation" => nameof(OrgCap),
            "minPartialFraction" => nameof(MinPartial),
            _ when f.StartsWith("copay.", StringComparison.Ordinal) => $"Copay[{After("copay.")}]",
            "youthDiscount" => nameof(Youth),
            _ => null,
        };
    }

    /// <summary>The input's attributes for an error: aria-invalid and aria-describedby of the error's element.</summary>
    public string ErrId(string field) => "err-" + new string(field.Select(ch => char.IsLetterOrDigit(ch) ? ch : '-').ToArray());
}
