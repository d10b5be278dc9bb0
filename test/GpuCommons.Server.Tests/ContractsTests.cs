using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using GpuCommons.Contracts;
using Microsoft.AspNetCore.TestHost;

namespace GpuCommons.Server.Tests;

/// <summary>
/// The server's answers and the contracts the CLI reads them with (<see cref="ContractsJson"/>) are the same shape: every
/// field of every answer the CLI reads maps to a property of its contract. A field renamed on one side only fails here,
/// not as an empty column in <c>gpuc</c>.
/// </summary>
public sealed class ContractsTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 10, 9, 0, 0, TimeSpan.Zero);

    /// <summary>The generated contracts, with a field the contract lacks an error instead of ignored.</summary>
    private static readonly JsonSerializerOptions Strict = new(ContractsJson.Default.Options) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow };

    private readonly HashSet<Type> _checked = [];

    /// <summary>Sends a request, expects <paramref name="code"/>, and reads the answer strictly as <typeparamref name="T"/>.</summary>
    private async Task<T> AnswerAsync<T>(HttpClient c, HttpMethod method, string path, JsonTypeInfo<T> contract, object? body = null, HttpStatusCode code = HttpStatusCode.OK)
        where T : class
    {
        using var req = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var resp = await c.SendAsync(req);
        var text = await resp.Content.ReadAsStringAsync();
        resp.StatusCode.ShouldBe(code, $"{method} {path}: {text}");
        T value;
        try
        {
            value = JsonSerializer.Deserialize(text, (JsonTypeInfo<T>)Strict.GetTypeInfo(typeof(T)))!;
        }
        catch (JsonException e)
        {
            throw new ShouldAssertException($"{method} {path} does not match {typeof(T).Name}: {e.Message}\n{text}");
        }

        value.ShouldNotBeNull($"{method} {path}");
        _ = contract; // the contract the CLI reads this answer with: the same type, so the same properties
        _checked.Add(typeof(T));
        return value;
    }

    [Fact]
    public async Task EveryAnswerTheCliReads_MapsFieldForField_ToItsContract()
    {
        var time = new ShiftedTime(T0);
        var s = await ServerHarness.StartAsync(TestDatabase.Sqlite(), new TestBackend(nodes: 4), time: time);
        try
        {
            var admin = s.Client("admin");
            var alice = s.Client("alice"); // PI of demo
            var cj = ContractsJson.Default;

            // Users, tokens, organisations, projects, quotas.
            (await AnswerAsync(alice, HttpMethod.Get, "/api/me", cj.UserDto)).Projects.ShouldNotBeEmpty();
            (await AnswerAsync(admin, HttpMethod.Get, "/api/me", cj.UserDto)).Accounts.ShouldNotBeNull();
            (await AnswerAsync(admin, HttpMethod.Get, "/api/users?limit=1000", cj.PageUserDto)).Items.ShouldNotBeEmpty();
            await AnswerAsync(admin, HttpMethod.Get, "/api/users/alice", cj.UserDto);
            (await AnswerAsync(admin, HttpMethod.Post, "/api/users/alice/tokens", cj.UserDto, new { label = "contract", expiresInDays = 2 }, HttpStatusCode.Created))
                .Token.ShouldNotBeNullOrEmpty();
            (await AnswerAsync(admin, HttpMethod.Get, "/api/users/alice/tokens", cj.ListTokenDto)).ShouldNotBeEmpty();
            var orgs = await AnswerAsync(admin, HttpMethod.Get, "/api/organisations?limit=500", cj.PageOrganisationDto);
            await AnswerAsync(admin, HttpMethod.Get, $"/api/organisations/{Uri.EscapeDataString(orgs.Items[0].Name)}", cj.OrganisationDto);
            (await AnswerAsync(admin, HttpMethod.Get, "/api/projects?limit=500", cj.PageProjectDto)).Items.ShouldNotBeEmpty();
            (await AnswerAsync(admin, HttpMethod.Put, "/api/projects/demo/quotas", cj.ListQuotaDto,
                new { quotas = new[] { new { partition = "gpu", nominalGpus = 8.0, borrowingLimitGpus = 2.0, lendingLimitGpus = 1.0 } } })).Count.ShouldBe(1);
            (await AnswerAsync(admin, HttpMethod.Get, "/api/projects/demo", cj.ProjectDto)).Quotas.Count.ShouldBe(1);

            // Allocations and usage.
            var asked = await AnswerAsync(alice, HttpMethod.Post, "/api/allocation-requests", cj.AllocationRequestDto,
                new { project = "demo", gpuHours = 100.0, justification = "contracts", months = 3 }, HttpStatusCode.Created);
            (await AnswerAsync(admin, HttpMethod.Get, "/api/allocation-requests?limit=1000", cj.PageAllocationRequestDto)).Items.ShouldNotBeEmpty();
            (await AnswerAsync(admin, HttpMethod.Post, $"/api/allocation-requests/{asked.Id}/review", cj.AllocationRequestDto,
                new { decision = "award", score = 80, comment = "fine" })).Allocation.ShouldNotBeNull();
            (await AnswerAsync(admin, HttpMethod.Get, "/api/allocations", cj.ListAllocationDto)).ShouldNotBeEmpty();
            (await AnswerAsync(admin, HttpMethod.Get, "/api/usage?by=project", cj.ListUsageRow)).ShouldNotBeEmpty();

            // Fleet and sign-in.
            (await AnswerAsync(admin, HttpMethod.Get, "/api/nodes", cj.ListNodeDto)).ShouldNotBeEmpty();
            (await AnswerAsync(admin, HttpMethod.Get, "/api/fleet/discrepancies?state=all", cj.DiscrepancyReport)).Reconciliation.ShouldNotBeNull();
            await AnswerAsync(s.Client(null), HttpMethod.Get, "/api/auth/issuers", cj.ListIssuerDto);

            // A round: call, proposal, panel, reviews, committee, selection, awards, statement.
            var call = await AnswerAsync(admin, HttpMethod.Post, "/api/calls", cj.CallDto, new
            {
                id = "c1", titleEn = "GPU call", titleKo = "GPU 공모", textEn = "Apply.", textKo = "신청하세요.", opens = T0.AddDays(-1), closes = T0.AddDays(10),
                rules = new
                {
                    partitions = new[] { "gpu" },
                    budgetGpuMonths = new Dictionary<string, double> { ["academia"] = 48, ["industry"] = 24 },
                    maxGpusPerProject = new Dictionary<string, int> { ["gpu"] = 16 },
                    eligibleTypes = new[] { "university", "institute", "companylab", "startup" },
                    criteria = new[] { new { key = "impact", weight = 100.0, nameEn = "Impact", nameKo = "파급효과" } },
                    reviewersPerProposal = 1,
                },
            }, HttpStatusCode.Created);
            call.Rules.Partitions.ShouldBe(["gpu"]);
            var proposal = await AnswerAsync(alice, HttpMethod.Post, "/api/proposals", cj.ProposalDto, new
            {
                call = "c1", project = "demo", title = "demo model", team = "PI", partition = "gpu", gpus = 16, startMonth = "2026-02", months = 3, justification = "Science.",
            }, HttpStatusCode.Created);
            await AnswerAsync(alice, HttpMethod.Post, $"/api/proposals/{proposal.Id}/submit", cj.ProposalDto);
            (await AnswerAsync(alice, HttpMethod.Get, "/api/proposals", cj.ListProposalDto)).Count.ShouldBe(1);
            (await AnswerAsync(admin, HttpMethod.Get, "/api/calls", cj.ListCallDto)).Count.ShouldBe(1);
            await AnswerAsync(admin, HttpMethod.Post, "/api/users", cj.UserDto, new { name = "chair" }, HttpStatusCode.Created);
            (await AnswerAsync(admin, HttpMethod.Put, "/api/calls/c1/members/chair", cj.CommitteeMemberDto)).User.ShouldBe("chair");
            (await AnswerAsync(admin, HttpMethod.Get, "/api/calls/c1/members", cj.ListCommitteeMemberDto)).Count.ShouldBe(1);

            var reviewer = await AnswerAsync(admin, HttpMethod.Post, "/api/users", cj.UserDto, new { name = "rev1", role = "reviewer" }, HttpStatusCode.Created);
            (await AnswerAsync(admin, HttpMethod.Put, "/api/reviews/profiles/rev1", cj.ReviewerProfileBody, new { organisation = "Institute 09", conflicts = new[] { "Startup 001" } }))
                .Conflicts.ShouldBe(["Startup 001"]);
            await AnswerAsync(admin, HttpMethod.Put, "/api/reviews/profiles/carol", cj.ReviewerProfileBody, new { organisation = "University 01" });
            time.AdvanceTo(T0.AddDays(11));
            await AnswerAsync(admin, HttpMethod.Post, "/api/calls/c1/assign", cj.CallDto);
            var rev = s.App.GetTestClient();
            rev.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", reviewer.Token);
            (await AnswerAsync(rev, HttpMethod.Get, "/api/reviews", cj.ListAssignmentDto)).Single().Proposal.ShouldBe(proposal.Id);
            (await AnswerAsync(rev, HttpMethod.Put, $"/api/reviews/{proposal.Id}", cj.ReviewDto, new { scores = new { impact = 90.0 }, comment = "good" })).Weighted.ShouldBe(90);
            (await AnswerAsync(rev, HttpMethod.Get, $"/api/reviews/{proposal.Id}", cj.ListReviewDto)).ShouldNotBeEmpty();
            (await AnswerAsync(admin, HttpMethod.Get, "/api/calls/c1/committee", cj.CommitteeDto)).Decisions.ShouldNotBeEmpty();
            (await AnswerAsync(admin, HttpMethod.Post, "/api/calls/c1/select", cj.CommitteeDto, new { note = "contracts" })).Feasibility.ShouldNotBeEmpty();
            var award = (await AnswerAsync(admin, HttpMethod.Get, "/api/awards?call=c1", cj.ListAwardDto)).Single();
            (await AnswerAsync(admin, HttpMethod.Post, $"/api/awards/{award.Id}/cut", cj.AwardDto, new { gpus = 8, note = "stage review" })).Gpus.ShouldBe(8);
            await AnswerAsync(alice, HttpMethod.Get, "/api/projects/demo/statement?month=2026-02", cj.StatementDto);

            // Every contract the CLI reads was checked against a real answer.
            _checked.ShouldBe(
            [
                typeof(UserDto), typeof(Page<UserDto>), typeof(List<TokenDto>), typeof(Page<OrganisationDto>), typeof(OrganisationDto), typeof(Page<ProjectDto>),
                typeof(List<QuotaDto>), typeof(ProjectDto), typeof(AllocationRequestDto), typeof(Page<AllocationRequestDto>), typeof(List<AllocationDto>),
                typeof(List<UsageRow>), typeof(List<NodeDto>), typeof(DiscrepancyReport), typeof(List<IssuerDto>), typeof(CallDto), typeof(ProposalDto),
                typeof(List<ProposalDto>), typeof(List<CallDto>), typeof(CommitteeMemberDto), typeof(List<CommitteeMemberDto>), typeof(ReviewerProfileBody),
                typeof(List<AssignmentDto>), typeof(ReviewDto), typeof(List<ReviewDto>), typeof(CommitteeDto), typeof(List<AwardDto>), typeof(AwardDto), typeof(StatementDto),
            ], ignoreOrder: true);
        }
        finally
        {
            await s.DisposeAsync();
        }
    }

    [Fact]
    public void AFieldTheContractLacks_IsAnError_WhenReadStrictly()
    {
        var e = Should.Throw<JsonException>(() => JsonSerializer.Deserialize("""{"name":"a","role":"user","posixLogin":"x"}""", (JsonTypeInfo<UserDto>)Strict.GetTypeInfo(typeof(UserDto))));
        e.Message.ShouldContain("posixLogin");
    }
}
