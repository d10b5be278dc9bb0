using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using GpuCommons.Contracts;
using Spectre.Console;

namespace GpuCommons.Cli.Commands;

/// <summary>
/// The client side of gpuc (sbatch/squeue/scancel/sacct habits): talks to a server found through <c>--server</c>/<c>--token</c>,
/// <c>GPUC_URL</c>/<c>GPUC_TOKEN</c>, or <c>~/.config/gpuc/config.json</c> (<c>{"server": …, "token": …}</c>).
/// Exit codes: 0 ok, 2 bad input (HTTP 400), 3 not found, 4 denied (401/403), 5 server unavailable, 1 anything else.
/// </summary>
internal static partial class ClientCommands
{
    private sealed record Common(Option<string?> Server, Option<string?> Token, Option<bool> Json);

    public static IEnumerable<Command> Create()
    {
        yield return Submit();
        yield return Queue();
        yield return Show();
        yield return Cancel();
        yield return Logs();
        yield return Usage();
        yield return Alloc();
        yield return Nodes();
        yield return Quota();
        yield return Discrepancies();
        yield return Users();
        yield return Projects();
        yield return Whoami();
        yield return Login();
        yield return Logout();
        yield return Tokens();
        yield return Call();
        yield return Proposal();
        yield return Review();
    }

    private static Common AddCommon(Command c)
    {
        var server = new Option<string?>("--server") { Description = "Server URL (env GPUC_URL)" };
        var token = new Option<string?>("--token") { Description = "API token (env GPUC_TOKEN)" };
        var json = new Option<bool>("--json") { Description = "Print JSON for scripts" };
        c.Options.Add(server);
        c.Options.Add(token);
        c.Options.Add(json);
        return new Common(server, token, json);
    }

    // ---- Commands ----------------------------------------------------------------------------------------------

    private static Command Usage()
    {
        var by = new Option<string>("--by") { Description = "allocation, project, member or orgtype", DefaultValueFactory = _ => "project" };
        var c = new Command("usage", "GPU-hours granted, spent, committed and remaining (sacct/sshare)") { by };
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var rows = await api.SendAsync(HttpMethod.Get, $"/api/usage?by={Uri.EscapeDataString(parse.GetValue(by)!)}", null, ct);
            if (parse.GetValue(common.Json))
            {
                Print(rows);
                return 0;
            }

            var t = new Output.Sheet(parse.GetValue(by)!.ToUpperInvariant(), "GRANTED GPU-H", "SPENT GPU-H", "COMMITTED GPU-H", "REMAINING GPU-H", "CHARGED KRW");
            foreach (var r in Read(rows, ContractsJson.Default.ListUsageRow))
            {
                t.Add(r.Key, Num(r.GrantedGpuHours), Num(r.SpentGpuHours), Num(r.CommittedGpuHours), Num(r.RemainingGpuHours), Num(r.Amount));
            }

            t.Write();
            return 0;
        });
        return c;
    }

    private static Command Alloc()
    {
        var alloc = new Command("alloc", "Allocation requests, reviews and allocations");

        var project = new Option<string>("--project", "-p") { Description = "Project", Required = true };
        var hours = new Option<double>("--gpu-hours") { Description = "GPU-hours asked for", Required = true };
        var why = new Option<string>("--justification") { Description = "Why (science case)", Required = true };
        var partition = new Option<string?>("--partition") { Description = "Partition (default: any)" };
        var months = new Option<int?>("--months") { Description = "Months (default 6)" };
        var request = new Command("request", "Ask for GPU-hours (PI)") { project, hours, why, partition, months };
        var c1 = AddCommon(request);
        request.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c1.Server), parse.GetValue(c1.Token));
            var body = new AllocationRequestBody
            {
                Project = parse.GetValue(project), GpuHours = parse.GetValue(hours), Justification = parse.GetValue(why), Partition = parse.GetValue(partition),
                Months = parse.GetValue(months),
            };
            var r = await api.SendAsync(HttpMethod.Post, "/api/allocation-requests", Body(body, ContractsJson.Default.AllocationRequestBody), ct);
            if (parse.GetValue(c1.Json))
            {
                Print(r);
            }
            else
            {
                Console.WriteLine($"Allocation request {S(Read(r, ContractsJson.Default.AllocationRequestDto).Id)} submitted");
            }

            return 0;
        });

        var id = new Argument<long>("id") { Description = "Request id" };
        var award = new Option<bool>("--award") { Description = "Award it" };
        var reject = new Option<bool>("--reject") { Description = "Reject it" };
        var score = new Option<int?>("--score") { Description = "Score 0–100" };
        var awardHours = new Option<double?>("--gpu-hours") { Description = "GPU-hours awarded (default: as asked)" };
        var tranches = new Option<int?>("--tranches") { Description = "Tranches (default 1)" };
        var comment = new Option<string?>("--comment") { Description = "Comment to the PI" };
        var review = new Command("review", "Award (possibly less) or reject a request (reviewer)") { id, award, reject, score, awardHours, tranches, comment };
        var c2 = AddCommon(review);
        review.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(award) == parse.GetValue(reject))
            {
                throw new CliException("say --award or --reject", CliRunner.Usage);
            }

            using var api = Api.From(parse.GetValue(c2.Server), parse.GetValue(c2.Token));
            var body = new ReviewBody
            {
                Decision = parse.GetValue(award) ? "award" : "reject", Score = parse.GetValue(score), GpuHours = parse.GetValue(awardHours),
                Tranches = parse.GetValue(tranches), Comment = parse.GetValue(comment),
            };
            var r = await api.SendAsync(HttpMethod.Post, $"/api/allocation-requests/{parse.GetValue(id)}/review", Body(body, ContractsJson.Default.ReviewBody), ct);
            if (parse.GetValue(c2.Json))
            {
                Print(r);
            }
            else
            {
                var decided = Read(r, ContractsJson.Default.AllocationRequestDto);
                Console.WriteLine($"Request {S(decided.Id)}: {S(decided.State)}{(decided.Allocation is { } a ? $" as allocation {S(a)}" : "")}");
            }

            return 0;
        });

        var requests = new Option<bool>("--requests") { Description = "List requests instead of allocations" };
        var list = new Command("list", "Allocations with usage, or --requests") { requests };
        var c3 = AddCommon(list);
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c3.Server), parse.GetValue(c3.Token));
            if (parse.GetValue(requests))
            {
                var page = await api.SendAsync(HttpMethod.Get, "/api/allocation-requests?limit=1000", null, ct);
                if (parse.GetValue(c3.Json))
                {
                    PrintAll(RawItems(page));
                    return 0;
                }

                var t = new Output.Sheet("ID", "PROJECT", "ASKED GPU-H", "STATE", "SCORE", "AWARDED GPU-H", "BY");
                foreach (var r in Read(page, ContractsJson.Default.PageAllocationRequestDto).Items ?? [])
                {
                    t.Add(Inv(r.Id), r.Project, Num(r.GpuHours), r.State, Inv(r.Score), Num(r.AwardedGpuHours), r.RequestedBy);
                }

                t.Write();
                return 0;
            }

            var rows = await api.SendAsync(HttpMethod.Get, "/api/allocations", null, ct);
            if (parse.GetValue(c3.Json))
            {
                Print(rows);
                return 0;
            }

            var table = new Output.Sheet("ID", "PROJECT", "PARTITION", "STATE", "RELEASED GPU-H", "SPENT GPU-H", "COMMITTED GPU-H", "REMAINING GPU-H", "USED %", "END");
            foreach (var a in Read(rows, ContractsJson.Default.ListAllocationDto))
            {
                table.Add(a.Id, a.Project, a.Partition is null or "" ? "any" : a.Partition, a.State, Num(a.ReleasedGpuHours),
                    Num(a.SpentGpuHours), Num(a.CommittedGpuHours), Num(a.RemainingGpuHours), Num(a.UsedPercent), Time(a.End));
            }

            table.Write();
            return 0;
        });

        alloc.Subcommands.Add(request);
        alloc.Subcommands.Add(review);
        alloc.Subcommands.Add(list);
        return alloc;
    }

    private static Command Nodes()
    {
        var c = new Command("nodes", "Nodes and their states (sinfo)");
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var rows = await api.SendAsync(HttpMethod.Get, "/api/nodes", null, ct);
            if (parse.GetValue(common.Json))
            {
                Print(rows);
                return 0;
            }

            var t = new Output.Sheet("NODE", "PARTITION", "GPUS", "STATE", "REASON");
            foreach (var n in Read(rows, ContractsJson.Default.ListNodeDto))
            {
                t.Add(n.Name, n.Partition, Inv(n.Gpus), n.State, n.Reason);
            }

            t.Write();
            return 0;
        });
        return c;
    }

    private static Command Quota()
    {
        var quota = new Command("quota", "Quotas of organisations and projects, per partition (Kueue: nominal, borrowing and lending limits)");

        var org = new Option<string?>("--org") { Description = "Organisation" };
        var project = new Option<string?>("--project", "-p") { Description = "Project" };
        var partition = new Option<string>("--partition") { Description = "Partition", Required = true };
        var nominal = new Option<double?>("--nominal") { Description = "GPUs guaranteed" };
        var borrow = new Option<double?>("--borrow") { Description = "GPUs that may be borrowed above the nominal (default: no limit)" };
        var lend = new Option<double?>("--lend") { Description = "GPUs of the unused nominal lent to others (default: all)" };
        var clear = new Option<bool>("--clear") { Description = "Remove the quota on this partition" };
        var set = new Command("set", "Set one partition's quota of an organisation or project (admin); running jobs keep running") { org, project, partition, nominal, borrow, lend, clear };
        var c1 = AddCommon(set);
        set.SetAction(async (parse, ct) =>
        {
            var (o, p) = (parse.GetValue(org), parse.GetValue(project));
            if ((o is null) == (p is null))
            {
                throw new CliException("give one of --org NAME or --project NAME", CliRunner.Usage);
            }

            if (parse.GetValue(nominal) is null && !parse.GetValue(clear))
            {
                throw new CliException("give --nominal GPUS (or --clear)", CliRunner.Usage);
            }

            var path = o is not null ? $"/api/organisations/{Uri.EscapeDataString(o)}" : $"/api/projects/{Uri.EscapeDataString(p!)}";
            using var api = Api.From(parse.GetValue(c1.Server), parse.GetValue(c1.Token));
            var current = await api.SendAsync(HttpMethod.Get, path, null, ct);
            var have = o is not null ? Read(current, ContractsJson.Default.OrganisationDto).Quotas : Read(current, ContractsJson.Default.ProjectDto).Quotas;
            var part = parse.GetValue(partition)!;
            var quotas = (have ?? []).Where(q => q.Partition != part)
                .Select(q => new QuotaRequest { Partition = q.Partition, NominalGpus = q.NominalGpus, BorrowingLimitGpus = q.BorrowingLimitGpus, LendingLimitGpus = q.LendingLimitGpus })
                .ToList();
            if (!parse.GetValue(clear))
            {
                quotas.Add(new QuotaRequest { Partition = part, NominalGpus = parse.GetValue(nominal), BorrowingLimitGpus = parse.GetValue(borrow), LendingLimitGpus = parse.GetValue(lend) });
            }

            var result = await api.SendAsync(HttpMethod.Put, path + "/quotas", Body(new SetQuotasRequest { Quotas = quotas }, ContractsJson.Default.SetQuotasRequest), ct);
            if (parse.GetValue(c1.Json))
            {
                Print(result);
                return 0;
            }

            WriteQuotas([new TenantQuotas(o is not null ? "organisation" : "project", o ?? p!, Read(result, ContractsJson.Default.ListQuotaDto))]);
            return 0;
        });

        var list = new Command("list", "Quotas of the organisations and projects you can see");
        var c2 = AddCommon(list);
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c2.Server), parse.GetValue(c2.Token));
            var rows = new List<TenantQuotas>();
            foreach (var (kind, path) in new[] { ("organisation", "/api/organisations"), ("project", "/api/projects") })
            {
                string? after = null;
                do
                {
                    var page = await api.SendAsync(HttpMethod.Get, $"{path}?limit=500" + (after is null ? "" : "&after=" + Uri.EscapeDataString(after)), null, ct);
                    if (kind == "organisation")
                    {
                        var orgs = Read(page, ContractsJson.Default.PageOrganisationDto);
                        rows.AddRange((orgs.Items ?? []).Select(x => new TenantQuotas(kind, x.Name, x.Quotas)));
                        after = orgs.Next;
                    }
                    else
                    {
                        var projects = Read(page, ContractsJson.Default.PageProjectDto);
                        rows.AddRange((projects.Items ?? []).Select(x => new TenantQuotas(kind, x.Name, x.Quotas)));
                        after = projects.Next;
                    }
                }
                while (after is not null);
            }

            if (parse.GetValue(c2.Json))
            {
                Print(JsonSerializer.SerializeToNode(rows, CliJson.Default.ListTenantQuotas));
                return 0;
            }

            WriteQuotas(rows.Where(r => r.Quotas is { Count: > 0 }).ToList());
            return 0;
        });

        quota.Subcommands.Add(set);
        quota.Subcommands.Add(list);
        return quota;
    }

    private static void WriteQuotas(List<TenantQuotas> rows)
    {
        var t = new Output.Sheet("TENANT", "KIND", "PARTITION", "NOMINAL", "BORROW LIMIT", "LEND LIMIT");
        foreach (var (kind, name, quotas) in rows)
        {
            foreach (var q in quotas ?? [])
            {
                t.Add(Display.Safe(name), Display.Safe(kind), q.Partition, Num(q.NominalGpus),
                    q.BorrowingLimitGpus is { } b ? Num(b) : "none", q.LendingLimitGpus is { } l ? Num(l) : "all");
            }
        }

        if (t.Count == 0)
        {
            AnsiConsole.MarkupLine("[grey]no quotas: every tenant may borrow any idle GPU[/]");
            return;
        }

        t.Write();
    }

    private static Command Discrepancies()
    {
        var state = new Option<string>("--state") { Description = "open (default), resolved or all", DefaultValueFactory = _ => "open" };
        var kind = new Option<string?>("--kind") { Description = "Only this kind: lost, unknown, duplicate, not_started, wrong_nodes, ended, unreachable, slow, malformed_output, pass_failed" };
        var c = new Command("discrepancies", "Where the server and the cluster manager (Slurm) disagree, and what was done about it (operator)") { state, kind };
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var path = "/api/fleet/discrepancies?state=" + Uri.EscapeDataString(parse.GetValue(state)!)
                + (parse.GetValue(kind) is { } k ? "&kind=" + Uri.EscapeDataString(k) : "");
            var report = await api.SendAsync(HttpMethod.Get, path, null, ct);
            if (parse.GetValue(common.Json))
            {
                Print(report);
                return 0;
            }

            var typed = Read(report, ContractsJson.Default.DiscrepancyReport);
            var r = typed.Reconciliation ?? throw new CliException("the server's answer has no reconciliation status", CliRunner.Failure);
            if (!r.Enabled)
            {
                AnsiConsole.MarkupLine("Reconciliation: off (the backend runs jobs itself; there is no cluster manager to compare with).");
            }
            else if (r.LastPass is null)
            {
                AnsiConsole.MarkupLine("Reconciliation: no pass yet.");
            }
            else
            {
                AnsiConsole.MarkupLine(Markup.Escape($"Reconciliation: last pass {When(r.LastPass)}, {(r.Reachable ? "cluster manager answered" : "CLUSTER MANAGER DID NOT ANSWER")}, "
                    + $"{S(r.ExpectedJobs)} expected, {S(r.BackendJobs)} in the backend, next {When(r.NextAttempt)}"));
            }

            if (r.Problem is { } problem)
            {
                AnsiConsole.MarkupLine("[red]" + Markup.Escape(S(problem)) + "[/]");
            }

            AnsiConsole.MarkupLine(Markup.Escape($"{S(typed.Open)} open"));
            var t = new Output.Sheet("KIND", "JOB", "SLURM ID", "NODE", "FIRST SEEN", "LAST SEEN", "SEEN", "DETAIL", "DONE / SUGGESTED");
            foreach (var d in typed.Items ?? [])
            {
                var job = d.JobId is not { } jobId ? "" : S(jobId) + (d.Attempt is { } a && a > 0 ? "-r" + S(a) : "");
                var done = d.Action is { Length: > 0 } act ? S(act) : "suggested: " + S(d.SuggestedAction);
                if (d.Resolved is { } resolved)
                {
                    done = $"resolved {When(resolved)}; {done}";
                }

                t.Add(d.Kind, job, d.ExternalId, d.Node, When(d.FirstSeen), When(d.LastSeen), Inv(d.Seen), d.Detail, done);
            }

            t.Write();
            return 0;
        });
        return c;
    }

    // ---- Helpers -----------------------------------------------------------------------------------------------

    /// <summary>A text field from the server, unprintable characters escaped (see <see cref="Display"/>).</summary>
    private static string S(string? s) => Display.Safe(s);

    /// <summary>A number from the server as text (invariant culture), for a line of output.</summary>
    private static string S(IFormattable? n) => Display.Safe(Inv(n));

    /// <summary>A number as raw text (invariant culture), for an <see cref="Output.Sheet"/> (which escapes what it writes); empty for none.</summary>
    private static string Inv(IFormattable? n) => n?.ToString(null, CultureInfo.InvariantCulture) ?? "";

    /// <summary>A number as an amount: <c>1,234.5</c>; empty for none.</summary>
    private static string Num(double? n) => n is { } d ? Output.Number(d) : "";

    /// <summary>An amount of money as <see cref="Num(double?)"/>.</summary>
    private static string Num(decimal? n) => n is { } d ? Output.Number((double)d) : "";

    /// <summary>A time as the server wrote it (its offset kept), short: <c>2026-11-27 20:47:36</c>; empty for none.</summary>
    private static string Time(DateTimeOffset? t) => t?.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "";

    /// <summary>A request body from its contract, nulls left out (the API's convention).</summary>
    private static JsonNode? Body<T>(T body, JsonTypeInfo<T> type) => JsonSerializer.SerializeToNode(body, type);

    /// <summary>The items of a page (<see cref="GpuCommons.Contracts.Page{T}"/>) as the server sent them, for <c>--json</c>.</summary>
    private static IReadOnlyList<JsonNode?> RawItems(JsonNode? page) => Read(page, CliJson.Default.PageJsonNode).Items ?? [];

    /// <summary>Items as the server sent them (<see cref="RawItems"/>: nodes of their own), as one JSON array for <c>--json</c>.</summary>
    private static void PrintAll(IEnumerable<JsonNode?> items) => Print(new JsonArray([.. items]));

    /// <summary>A server answer read as its contract type; a clear error (not a stack trace) when it is not one.</summary>
    private static T Read<T>(JsonNode? answer, JsonTypeInfo<T> type)
    {
        try
        {
            return answer.Deserialize(type) ?? throw new CliException($"the server answered nothing where {Describe(type.Type)} was expected", CliRunner.Failure);
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
        {
            throw new CliException($"the server's answer is not {Describe(type.Type)}: {e.Message}", CliRunner.Failure);
        }
    }

    /// <summary>A contract type in words: <c>a UserDto</c>, <c>a list of NodeDto</c>, <c>a page of UserDto</c>.</summary>
    private static string Describe(Type t) =>
        !t.IsGenericType ? "a " + t.Name
        : $"a {(t.Name.StartsWith("Page", StringComparison.Ordinal) ? "page" : "list")} of {string.Join(", ", t.GetGenericArguments().Select(a => a.Name))}";

    /// <summary>JSON for scripts, without needless escapes (see <see cref="Output.Json"/>).</summary>
    private static void Print(JsonNode? node) => Console.WriteLine(Output.Json(node));

    /// <summary>A thin HTTP client that turns problem documents into messages and exit codes.</summary>
    private sealed class Api : IDisposable
    {
        private readonly HttpClient _http;

        private Api(HttpClient http) => _http = http;

        public static Api From(string? server, string? token)
        {
            server ??= Environment.GetEnvironmentVariable("GPUC_URL");
            token ??= Environment.GetEnvironmentVariable("GPUC_TOKEN");
            if (server is null || token is null)
            {
                var path = ConfigPath();
                if (ReadConfig(path) is { } cfg)
                {
                    server ??= cfg.Server;
                    if (token is null && cfg.Token is { } saved)
                    {
                        // A token from gpuc login expires: say so instead of a bare 401.
                        if (cfg.Expires is { } expires && expires <= TimeProvider.System.GetUtcNow())
                        {
                            throw new CliException($"your sign-in expired on {expires:yyyy-MM-dd HH:mm}Z: run gpuc login", CliRunner.Denied);
                        }

                        token = saved;
                    }
                }
            }

            if (string.IsNullOrWhiteSpace(server))
            {
                throw new CliException("no server: give --server, set GPUC_URL, or write ~/.config/gpuc/config.json", CliRunner.Usage);
            }

            if (string.IsNullOrWhiteSpace(token))
            {
                throw new CliException("no token: run gpuc login, give --token, or set GPUC_TOKEN", CliRunner.Usage);
            }

            // Several servers (a leader and standbys): GPUC_URL=https://a,https://b; each request goes to one that answers.
            var servers = FailoverHandler.Parse(server);
            var http = new HttpClient(new FailoverHandler(servers, new HttpClientHandler()), disposeHandler: true)
            {
                BaseAddress = servers[0],
                Timeout = TimeSpan.FromSeconds(90),
            };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token.Trim());
            return new Api(http);
        }

        /// <summary>A client without a token, for sign-in.</summary>
        public static Api Anonymous(string server)
        {
            if (!Uri.TryCreate(server, UriKind.Absolute, out var uri))
            {
                throw new CliException($"--server: '{server}' is not a URL", CliRunner.Usage);
            }

            return new Api(new HttpClient { BaseAddress = uri, Timeout = TimeSpan.FromSeconds(60) });
        }

        /// <summary>~/.config/gpuc/config.json, or GPUC_CONFIG.</summary>
        public static string ConfigPath() => Environment.GetEnvironmentVariable("GPUC_CONFIG")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "gpuc", "config.json");

        public static CliConfig? ReadConfig(string path)
        {
            if (!File.Exists(path))
            {
                return null;
            }

            try
            {
                return JsonSerializer.Deserialize(File.ReadAllText(path), CliJson.Default.CliConfig) ?? throw new CliException($"{path}: not a JSON object", CliRunner.Usage);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                throw new CliException($"{path}: {e.Message}", CliRunner.Usage);
            }
        }

        public async Task<JsonNode?> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct, Dictionary<string, string>? headers = null)
        {
            using var req = new HttpRequestMessage(method, path);
            if (body is not null)
            {
                req.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            }

            foreach (var (k, v) in headers ?? [])
            {
                req.Headers.TryAddWithoutValidation(k, v);
            }

            using var resp = await SendRawAsync(req, ct);
            var text = await resp.Content.ReadAsStringAsync(ct);
            try
            {
                return text.Length == 0 ? null : JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new CliException($"the server's answer to {method} {path} is not JSON: {e.Message}", CliRunner.Failure);
            }
        }

        public async Task<(byte[] Bytes, long Next, string? State)> GetLogAsync(long id, string stream, long offset, CancellationToken ct)
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, $"/api/jobs/{id}/logs?stream={stream}&offset={offset}");
            using var resp = await SendRawAsync(req, ct);
            var bytes = await resp.Content.ReadAsByteArrayAsync(ct);
            var next = resp.Headers.TryGetValues("X-Log-Offset", out var v) && long.TryParse(v.First(), CultureInfo.InvariantCulture, out var n) ? n : offset + bytes.Length;
            var state = resp.Headers.TryGetValues("X-Job-State", out var s) ? s.First() : null;
            return (bytes, next, state);
        }

        private async Task<HttpResponseMessage> SendRawAsync(HttpRequestMessage req, CancellationToken ct)
        {
            HttpResponseMessage resp;
            try
            {
                resp = await _http.SendAsync(req, ct);
            }
            catch (HttpRequestException e)
            {
                throw new CliException($"cannot reach {_http.BaseAddress}: {e.Message}", CliRunner.Unavailable);
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new CliException($"{_http.BaseAddress} did not answer in time", CliRunner.Unavailable);
            }

            if (resp.IsSuccessStatusCode)
            {
                return resp;
            }

            var text = await resp.Content.ReadAsStringAsync(ct);
            resp.Dispose();
            string message;
            string? field = null;
            try
            {
                var p = JsonSerializer.Deserialize(text, CliJson.Default.ProblemDocument);
                message = p?.Detail ?? p?.Title ?? resp.ReasonPhrase ?? "";
                field = p?.Field;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException)
            {
                message = text.Length > 0 ? text : resp.ReasonPhrase ?? "";
            }

            var status = (int)resp.StatusCode;
            var code = resp.StatusCode switch
            {
                HttpStatusCode.BadRequest or HttpStatusCode.Conflict or HttpStatusCode.UnsupportedMediaType or HttpStatusCode.RequestEntityTooLarge
                    or HttpStatusCode.UnprocessableEntity => CliRunner.Usage,
                HttpStatusCode.NotFound => CliRunner.NotFound,
                HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => CliRunner.Denied,
                >= HttpStatusCode.InternalServerError => CliRunner.Unavailable,
                _ => CliRunner.Failure,
            };

            // Said once: the server's words (which name the field), not the status code too; the exit code carries the kind.
            message = Output.Once(Display.Safe(message.Trim()));
            if (status >= 500 || message.Length == 0)
            {
                message = $"the server answered {status} {resp.ReasonPhrase}" + (message.Length > 0 ? ": " + message : "");
            }

            throw new ApiProblem(message, code, status, field);
        }

        public void Dispose() => _http.Dispose();
    }
}
