using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using GpuCommons.Contracts;
using Spectre.Console;

namespace GpuCommons.Cli.Commands;

// gpuc call / proposal / review: allocation rounds (calls for proposals, review panels, selection, capacity awards).
internal static partial class ClientCommands
{
    /// <summary>
    /// A small helper: a command that sends one request and prints the answer: the server's JSON with --json, else
    /// <paramref name="print"/> with the answer read as its contract <paramref name="answer"/>.
    /// </summary>
    private static Command Simple<T>(string name, string description, IEnumerable<Symbol> symbols, Func<ParseResult, (HttpMethod Method, string Path, JsonNode? Body)> request,
        JsonTypeInfo<T> answer, Action<T> print) =>
        Simple(name, description, symbols, request, r => print(Read(r, answer)));

    /// <summary>A small helper: a command that sends one request and prints the answer (JSON with --json, else a table or a line).</summary>
    private static Command Simple(string name, string description, IEnumerable<Symbol> symbols, Func<ParseResult, (HttpMethod Method, string Path, JsonNode? Body)> request,
        Action<JsonNode?> print)
    {
        var c = new Command(name, description);
        foreach (var s in symbols)
        {
            switch (s)
            {
                case Option o:
                    c.Options.Add(o);
                    break;
                case Argument a:
                    c.Arguments.Add(a);
                    break;
            }
        }

        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            var (method, path, body) = request(parse);
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var r = await api.SendAsync(method, path, body, ct);
            if (parse.GetValue(common.Json))
            {
                Print(r);
            }
            else
            {
                print(r);
            }

            return 0;
        });
        return c;
    }

    private static JsonNode ReadJsonFile(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) ?? throw new CliException($"{path}: a JSON object is needed", CliRunner.Usage);
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            throw new CliException($"{path}: {e.Message}", CliRunner.Usage);
        }
    }

    private static string Esc(string? s) => Markup.Escape(s ?? "");

    private static Command Call()
    {
        var call = new Command("call", "Calls for proposals: open one, assign review panels, see the committee's ranking and feasibility, select, cut or end awards");
        call.Subcommands.Add(Simple("list", "Calls, newest first", [], _ => (HttpMethod.Get, "/api/calls", null), ContractsJson.Default.ListCallDto, r =>
        {
            var t = new Table().AddColumns("ID", "TITLE", "STATUS", "OPENS", "CLOSES", "PROPOSALS");
            foreach (var c in r)
            {
                t.AddRow(Esc(S(c.Id)), Esc(S(c.TitleEn)), Esc(S(c.Status)), Time(c.Opens), Time(c.Closes), S(c.Proposals));
            }

            AnsiConsole.Write(t);
        }));
        var id = new Argument<string>("id") { Description = "Call id" };
        call.Subcommands.Add(Simple("show", "One call with its rules", [id], p => (HttpMethod.Get, $"/api/calls/{Uri.EscapeDataString(p.GetValue(id)!)}", null), Print));
        var file = new Option<string>("--file", "-f") { Description = "The call as JSON: id, titleEn, titleKo, textEn, textKo, opens, closes, rules, capacity (docs/rounds.md)", Required = true };
        call.Subcommands.Add(Simple("create", "Open a call (admin)", [file], p => (HttpMethod.Post, "/api/calls", ReadJsonFile(p.GetValue(file)!)), ContractsJson.Default.CallDto,
            r => Console.WriteLine($"Call {S(r.Id)} created: open {Time(r.Opens)} to {Time(r.Closes)}")));
        var id2 = new Argument<string>("id") { Description = "Call id" };
        call.Subcommands.Add(Simple("assign", "Assign review panels after the call closes (admin): balanced, never with a conflict of interest", [id2],
            p => (HttpMethod.Post, $"/api/calls/{Uri.EscapeDataString(p.GetValue(id2)!)}/assign", null), ContractsJson.Default.CallDto,
            r => Console.WriteLine($"Call {S(r.Id)}: {S(r.Proposals)} proposals under review")));
        var id3 = new Argument<string>("id") { Description = "Call id" };
        call.Subcommands.Add(Simple("committee", "The ranking per class, the decisions selection would take, and the fleet's feasibility per partition and month (the call's committee or an admin); the first 20 of each class (all with --json)", [id3],
            p => (HttpMethod.Get, $"/api/calls/{Uri.EscapeDataString(p.GetValue(id3)!)}/committee", null), ContractsJson.Default.CommitteeDto, r => WriteCommittee(r, 20)));
        var id4 = new Argument<string>("id") { Description = "Call id" };
        var over = new Option<bool>("--override") { Description = "Award even where the fleet cannot hold the dedicated capacity in some month" };
        var note = new Option<string?>("--note") { Description = "The committee's note (audit)" };
        call.Subcommands.Add(Simple("select", "Select and award (the call's committee or an admin); refused when the fleet cannot hold the capacity unless --override", [id4, over, note],
            p => (HttpMethod.Post, $"/api/calls/{Uri.EscapeDataString(p.GetValue(id4)!)}/select",
                Body(new SelectBody { Override = p.GetValue(over), Note = p.GetValue(note) }, ContractsJson.Default.SelectBody)),
            ContractsJson.Default.CommitteeDto, r => WriteCommittee(r, 20)));
        var awardId = new Argument<string>("award") { Description = "Award id" };
        var gpus = new Option<int>("--gpus") { Description = "GPUs the award keeps (whole servers)", Required = true };
        var note2 = new Option<string?>("--note") { Description = "Why (audit)" };
        call.Subcommands.Add(Simple("cut", "Stage review: cut a capacity award (the call's committee or an admin); running jobs keep running", [awardId, gpus, note2],
            p => (HttpMethod.Post, $"/api/awards/{Uri.EscapeDataString(p.GetValue(awardId)!)}/cut",
                Body(new AwardChangeBody { Gpus = p.GetValue(gpus), Note = p.GetValue(note2) }, ContractsJson.Default.AwardChangeBody)),
            ContractsJson.Default.AwardDto, r => Console.WriteLine($"Award {S(r.Id)}: {S(r.Gpus)} GPUs on {S(r.Partition)} until {Time(r.End)}")));
        var awardId2 = new Argument<string>("award") { Description = "Award id" };
        var note3 = new Option<string?>("--note") { Description = "Why (audit)" };
        call.Subcommands.Add(Simple("end", "End an award now (the call's committee or an admin): stage review or misuse", [awardId2, note3],
            p => (HttpMethod.Post, $"/api/awards/{Uri.EscapeDataString(p.GetValue(awardId2)!)}/end",
                Body(new AwardChangeBody { Note = p.GetValue(note3) }, ContractsJson.Default.AwardChangeBody)),
            ContractsJson.Default.AwardDto, r => Console.WriteLine($"Award {S(r.Id)} ended {Time(r.End)}")));
        var mid = new Argument<string>("id") { Description = "Call id" };
        call.Subcommands.Add(Simple("members", "Who sits on the call's committee (the committee and admins)", [mid],
            p => (HttpMethod.Get, $"/api/calls/{Uri.EscapeDataString(p.GetValue(mid)!)}/members", null), ContractsJson.Default.ListCommitteeMemberDto,
            r =>
            {
                var t = new Table().AddColumns("USER", "ADDED BY", "ADDED");
                foreach (var m in r)
                {
                    t.AddRow(Esc(S(m.User)), Esc(S(m.AddedBy)), Time(m.Added));
                }

                AnsiConsole.Write(t);
            }));
        var mid2 = new Argument<string>("id") { Description = "Call id" };
        var muser = new Argument<string>("user") { Description = "User" };
        call.Subcommands.Add(Simple("add-member", "Name a user to the call's committee (admin): with the admins, only the committee ranks, selects, cuts and ends awards", [mid2, muser],
            p => (HttpMethod.Put, $"/api/calls/{Uri.EscapeDataString(p.GetValue(mid2)!)}/members/{Uri.EscapeDataString(p.GetValue(muser)!)}", null),
            ContractsJson.Default.CommitteeMemberDto, r => Console.WriteLine($"{S(r.User)} sits on the committee of call {S(r.Call)}")));
        var mid3 = new Argument<string>("id") { Description = "Call id" };
        var muser2 = new Argument<string>("user") { Description = "User" };
        call.Subcommands.Add(Simple("remove-member", "Take a user off the call's committee (admin)", [mid3, muser2],
            p => (HttpMethod.Delete, $"/api/calls/{Uri.EscapeDataString(p.GetValue(mid3)!)}/members/{Uri.EscapeDataString(p.GetValue(muser2)!)}", null),
            _ => Console.WriteLine("Removed from the committee")));
        var callOpt = new Option<string?>("--call") { Description = "Only this call's awards" };
        var projOpt = new Option<string?>("--project", "-p") { Description = "Only this project's awards" };
        call.Subcommands.Add(Simple("awards", "Awards of calls", [callOpt, projOpt],
            p => (HttpMethod.Get, "/api/awards?" + string.Join('&', new[] { ("call", p.GetValue(callOpt)), ("project", p.GetValue(projOpt)) }.Where(x => x.Item2 is not null).Select(x => $"{x.Item1}={Uri.EscapeDataString(x.Item2!)}")), null),
            ContractsJson.Default.ListAwardDto,
            r =>
            {
                var t = new Table().AddColumns("ID", "PROJECT", "KIND", "PARTITION", "GPUS", "GPU-HOURS", "START", "END", "CO-PAY", "STATUS");
                foreach (var a in r)
                {
                    t.AddRow(Esc(S(a.Id)), Esc(S(a.Project)), Esc(S(a.Kind)), Esc(S(a.Partition)), S(a.Gpus), Num(a.GpuHours), Time(a.Start), Time(a.End),
                        (a.CopayShare * 100).ToString("0.#", CultureInfo.InvariantCulture) + "%", Esc(S(a.Status)));
                }

                AnsiConsole.Write(t);
            }));
        return call;
    }

    private static void WriteCommittee(CommitteeDto r, int top)
    {
        var classes = new Table().AddColumns("CLASS", "BUDGET GPU-MONTHS", "PROPOSALS", "ASKED GPUS", "FUNDED", "AWARDED GPUS", "AWARDED GPU-MONTHS");
        foreach (var c in r.Classes ?? [])
        {
            classes.AddRow(Esc(S(c.Class)), Num(c.BudgetGpuMonths), S(c.Proposals), S(c.AskedGpus), S(c.Funded), S(c.AwardedGpus), Num(c.AwardedGpuMonths));
        }

        AnsiConsole.Write(classes);
        var ranking = new Table().AddColumns("CLASS", "RANK", "PROPOSAL", "PROJECT", "SCORE", "OUTCOME", "GPUS", "MONTHS", "GPU-HOURS", "WHY");
        foreach (var g in (r.Decisions ?? []).GroupBy(d => S(d.Class)))
        {
            foreach (var d in g.OrderBy(d => d.Rank).Take(top))
            {
                ranking.AddRow(Esc(g.Key), S(d.Rank), S(d.Proposal), Esc(S(d.Project)), Num(d.Score), Esc(S(d.Outcome)), S(d.Gpus), S(d.Months), Num(d.GpuHours), Esc(S(d.Reason)));
            }
        }

        AnsiConsole.Write(ranking);
        var feas = new Table().AddColumns("PARTITION", "MONTH", "CAPACITY", "AWARDED BEFORE", "THIS ROUND", "SHARED QUEUE");
        foreach (var f in r.Feasibility ?? [])
        {
            feas.AddRow(Esc(S(f.Partition)), Esc(S(f.Month)), S(f.Capacity), S(f.Existing), S(f.Added), f.Over ? $"[red]{S(f.SharedQueue)} over[/]" : S(f.SharedQueue));
        }

        AnsiConsole.Write(feas);
        Console.WriteLine(r.Feasible ? "The fleet holds every award in every month." : "The fleet cannot hold the dedicated capacity in some months (see 'over').");
    }

    private static Command Proposal()
    {
        var proposal = new Command("proposal", "Proposals against calls: draft, change, submit, withdraw, see the outcome and a project's monthly statement");
        var call = new Option<string?>("--call") { Description = "Call" };
        var state = new Option<string?>("--state") { Description = "draft, submitted, under_review, awarded, partly_awarded, waitlisted, rejected or withdrawn" };
        proposal.Subcommands.Add(Simple("list", "Your projects' proposals (all for the committee)", [call, state],
            p => (HttpMethod.Get, "/api/proposals?" + string.Join('&', new[] { ("call", p.GetValue(call)), ("state", p.GetValue(state)) }.Where(x => x.Item2 is not null).Select(x => $"{x.Item1}={Uri.EscapeDataString(x.Item2!)}")), null),
            ContractsJson.Default.ListProposalDto,
            r =>
            {
                var t = new Table().AddColumns("ID", "CALL", "PROJECT", "TITLE", "PARTITION", "GPUS", "GPU-HOURS", "START", "MONTHS", "STATE", "AWARDED");
                foreach (var x in r)
                {
                    t.AddRow(S(x.Id), Esc(S(x.Call)), Esc(S(x.Project)), Esc(S(x.Title)), Esc(S(x.Partition)), S(x.Gpus), Num(x.GpuHours), Esc(S(x.StartMonth)), S(x.Months), Esc(S(x.State)),
                        x.AwardedGpus > 0 ? $"{S(x.AwardedGpus)} GPUs" : x.AwardedGpuHours > 0 ? $"{Num(x.AwardedGpuHours)} GPU-h" : "");
                }

                AnsiConsole.Write(t);
            }));
        var id = new Argument<long>("id") { Description = "Proposal id" };
        proposal.Subcommands.Add(Simple("show", "A proposal and, once decided, its outcome (the reviews: gpuc review show ID)", [id],
            p => (HttpMethod.Get, $"/api/proposals/{p.GetValue(id)}", null), Print));

        var callReq = new Option<string>("--call") { Description = "Call", Required = true };
        var project = new Option<string>("--project", "-p") { Description = "Project (you are its PI)", Required = true };
        var title = new Option<string>("--title") { Description = "Title", Required = true };
        var team = new Option<string?>("--team") { Description = "Team" };
        var partition = new Option<string>("--partition") { Description = "Partition on offer", Required = true };
        var gpus = new Option<int?>("--gpus") { Description = "GPUs in whole servers (capacity award)" };
        var hours = new Option<double?>("--gpu-hours") { Description = "GPU-hours (shared-queue award), instead of --gpus" };
        var start = new Option<string>("--start") { Description = "First month, yyyy-MM", Required = true };
        var months = new Option<int>("--months") { Description = "Months", Required = true };
        var why = new Option<string>("--justification") { Description = "Justification", Required = true };
        var regional = new Option<bool>("--regional") { Description = "A regional organisation (the call's bonus applies)" };
        var youth = new Option<bool>("--youth") { Description = "A youth-founded firm (a further co-pay discount)" };
        var submit = new Option<bool>("--submit") { Description = "Submit at once (else it stays a draft)" };
        var create = new Command("create", "Draft a proposal (PI); --submit to submit it at once") { callReq, project, title, team, partition, gpus, hours, start, months, why, regional, youth, submit };
        var cc = AddCommon(create);
        create.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(cc.Server), parse.GetValue(cc.Token));
            var body = new ProposalBody
            {
                Call = parse.GetValue(callReq), Project = parse.GetValue(project), Title = parse.GetValue(title), Team = parse.GetValue(team),
                Partition = parse.GetValue(partition), Gpus = parse.GetValue(gpus), GpuHours = parse.GetValue(hours), StartMonth = parse.GetValue(start),
                Months = parse.GetValue(months), Justification = parse.GetValue(why), Regional = parse.GetValue(regional), Youth = parse.GetValue(youth),
            };
            var r = await api.SendAsync(HttpMethod.Post, "/api/proposals", Body(body, ContractsJson.Default.ProposalBody), ct);
            if (parse.GetValue(submit))
            {
                r = await api.SendAsync(HttpMethod.Post, $"/api/proposals/{S(Read(r, ContractsJson.Default.ProposalDto).Id)}/submit", null, ct);
            }

            if (parse.GetValue(cc.Json))
            {
                Print(r);
            }
            else
            {
                var proposal = Read(r, ContractsJson.Default.ProposalDto);
                Console.WriteLine($"Proposal {S(proposal.Id)} {S(proposal.State)}");
            }

            return 0;
        });
        proposal.Subcommands.Add(create);
        var id2 = new Argument<long>("id") { Description = "Proposal id" };
        proposal.Subcommands.Add(Simple("submit", "Submit a draft (PI), while the call is open", [id2], p => (HttpMethod.Post, $"/api/proposals/{p.GetValue(id2)}/submit", null),
            ContractsJson.Default.ProposalDto, r => Console.WriteLine($"Proposal {S(r.Id)} {S(r.State)}")));
        var id3 = new Argument<long>("id") { Description = "Proposal id" };
        proposal.Subcommands.Add(Simple("withdraw", "Withdraw a proposal (PI), while the call is open", [id3], p => (HttpMethod.Post, $"/api/proposals/{p.GetValue(id3)}/withdraw", null),
            ContractsJson.Default.ProposalDto, r => Console.WriteLine($"Proposal {S(r.Id)} {S(r.State)}")));
        var sp = new Argument<string?>("project") { Description = "Project (or give --organisation)", Arity = ArgumentArity.ZeroOrOne };
        var sorg = new Option<string?>("--organisation") { Description = "An organisation's statement, a line per project (staff)" };
        var month = new Option<string?>("--month") { Description = "yyyy-MM (default: this month)" };
        proposal.Subcommands.Add(Simple("statement", "A monthly statement from the ledger: GPU-hours, their market value, what the organisation pays (co-pay) and the subsidy", [sp, sorg, month],
            p =>
            {
                var path = (p.GetValue(sp), p.GetValue(sorg)) switch
                {
                    ({ } proj, null) => $"/api/projects/{Uri.EscapeDataString(proj)}/statement",
                    (null, { } o) => $"/api/organisations/{Uri.EscapeDataString(o)}/statement",
                    _ => throw new CliException("give a project or --organisation, not both", CliRunner.Usage),
                };
                return (HttpMethod.Get, path + (p.GetValue(month) is { } m ? $"?month={Uri.EscapeDataString(m)}" : ""), null);
            },
            ContractsJson.Default.StatementDto,
            r =>
            {
                var t = new Table().AddColumns("PROJECT", "PARTITION", "GPU-HOURS", "MARKET VALUE", "SHARE", "PAID", "SUBSIDY");
                foreach (var l in r.Lines ?? [])
                {
                    t.AddRow(Esc(S(l.Project)), Esc(S(l.Partition)), Num(l.GpuHours), Num(l.MarketAmount), Num(l.Share), Num(l.Due), Num(l.Subsidy));
                }

                t.AddRow("total", "", Num(r.GpuHours), Num(r.MarketAmount), "", Num(r.Due), Num(r.Subsidy));
                AnsiConsole.Write(t);
            }));
        return proposal;
    }

    private static Command Review()
    {
        var review = new Command("review", "Review panels: your assignments, scoring a proposal on every criterion, declaring conflicts of interest");
        var call = new Option<string?>("--call") { Description = "Only this call" };
        review.Subcommands.Add(Simple("list", "The proposals you are assigned to review", [call],
            p => (HttpMethod.Get, "/api/reviews" + (p.GetValue(call) is { } c ? $"?call={Uri.EscapeDataString(c)}" : ""), null),
            ContractsJson.Default.ListAssignmentDto,
            r =>
            {
                var t = new Table().AddColumns("PROPOSAL", "CALL", "TITLE", "ORGANISATION", "PARTITION", "GPUS", "MONTHS", "STATE", "REVIEWED");
                foreach (var a in r)
                {
                    t.AddRow(S(a.Proposal), Esc(S(a.Call)), Esc(S(a.Title)), Esc(S(a.Organisation)), Esc(S(a.Partition)), S(a.Gpus), S(a.Months), Esc(S(a.State)),
                        a.Submitted ? "yes" : "no");
                }

                AnsiConsole.Write(t);
            }));
        var id = new Argument<long>("proposal") { Description = "Proposal id" };
        review.Subcommands.Add(Simple("show", "A proposal's reviews you may see (others' only after you submitted yours)", [id],
            p => (HttpMethod.Get, $"/api/reviews/{p.GetValue(id)}", null), Print));
        var id2 = new Argument<long>("proposal") { Description = "Proposal id" };
        var score = new Option<string[]>("--score", "-s") { Description = "criterion=score (0–100), once per criterion", Required = true, AllowMultipleArgumentsPerToken = true };
        var comment = new Option<string?>("--comment") { Description = "Comment (the applicant sees it without your name)" };
        review.Subcommands.Add(Simple("submit", "Score every criterion and comment (the assigned reviewer); once", [id2, score, comment], p =>
        {
            var scores = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var kv in p.GetValue(score) ?? [])
            {
                var eq = kv.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0 || !double.TryParse(kv[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                {
                    throw new CliException($"--score: '{kv}' is not criterion=number", CliRunner.Usage);
                }

                scores[kv[..eq]] = v;
            }

            return (HttpMethod.Put, $"/api/reviews/{p.GetValue(id2)}", Body(new ReviewSubmitBody { Scores = scores, Comment = p.GetValue(comment) }, ContractsJson.Default.ReviewSubmitBody));
        }, ContractsJson.Default.ReviewDto, r => Console.WriteLine($"Review of proposal {S(r.Proposal)} submitted (weighted {Num(r.Weighted)})")));
        var user = new Argument<string>("user") { Description = "Reviewer" };
        var org = new Option<string?>("--organisation") { Description = "The reviewer's organisation (never reviews its proposals)" };
        var conflicts = new Option<string[]>("--conflict") { Description = "An organisation the reviewer has a conflict with (repeat)", AllowMultipleArgumentsPerToken = true };
        review.Subcommands.Add(Simple("conflicts", "Declare a reviewer's organisation and conflicts of interest (the reviewer or an admin)", [user, org, conflicts],
            p => (HttpMethod.Put, $"/api/reviews/profiles/{Uri.EscapeDataString(p.GetValue(user)!)}",
                Body(new ReviewerProfileBody { Organisation = p.GetValue(org), Conflicts = p.GetValue(conflicts) is { Length: > 0 } cs ? [.. cs] : null }, ContractsJson.Default.ReviewerProfileBody)),
            ContractsJson.Default.ReviewerProfileBody,
            r => Console.WriteLine($"organisation {S(r.Organisation)}; conflicts {(r.Conflicts is null ? "" : JsonSerializer.Serialize(r.Conflicts, ContractsJson.Default.ListString))}")));
        return review;
    }
}
