using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using GpuCommons.Cli;
using GpuCommons.Core;
using GpuCommons.Server.Api;

namespace GpuCommons.Server.Tests;

/// <summary>Input that must be right: names in any script, walltimes, commands, idempotency keys, strict JSON.</summary>
public sealed class InputTests : IAsyncLifetime
{
    private ServerHarness _s = null!;

    public async Task InitializeAsync() => _s = await ServerHarness.StartAsync();

    public async Task DisposeAsync() => await _s.DisposeAsync();

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string Body(object o) => JsonSerializer.Serialize(o);

    /// <summary>Asserts a 400 problem document whose field is <paramref name="field"/> and whose detail starts with it.</summary>
    private static async Task<string> ShouldBe400Async(HttpResponseMessage r, string field, HttpStatusCode status = HttpStatusCode.BadRequest)
    {
        var text = await r.Content.ReadAsStringAsync();
        r.StatusCode.ShouldBe(status, text);
        r.Content.Headers.ContentType!.MediaType.ShouldBe("application/problem+json");
        var p = JsonDocument.Parse(text).RootElement;
        p.GetProperty("field").GetString().ShouldBe(field, text);
        var detail = p.GetProperty("detail").GetString()!;
        detail.ShouldStartWith(field);
        return detail;
    }

    private static string Location(HttpResponseMessage r)
    {
        var values = r.Headers.TryGetValues("Location", out var v) ? v.ToList() : [];
        values.Count.ShouldBe(1);
        return values[0];
    }

    // ---- Korean (any script) names, end to end --------------------------------------------------------------------

    [Fact]
    public async Task KoreanNames_WorkEndToEnd_WithPercentEncodedLocations_AndTheOneTimeToken()
    {
        var admin = _s.Client("admin");
        var org = await admin.PostAsJsonAsync("/api/organisations", new { name = "서울대학교", type = "university" });
        org.StatusCode.ShouldBe(HttpStatusCode.Created, await org.Content.ReadAsStringAsync());
        Location(org).ShouldBe("/api/organisations/" + Uri.EscapeDataString("서울대학교"));
        Location(org).All(char.IsAscii).ShouldBeTrue();

        var user = await admin.PostAsJsonAsync("/api/users", new { name = "김연구" });
        user.StatusCode.ShouldBe(HttpStatusCode.Created, await user.Content.ReadAsStringAsync());
        Location(user).ShouldBe("/api/users/%EA%B9%80%EC%97%B0%EA%B5%AC");
        var token = (await user.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;

        var project = await admin.PostAsJsonAsync("/api/projects", new { name = "단백질-접힘", organisation = "서울대학교", pi = "김연구" });
        project.StatusCode.ShouldBe(HttpStatusCode.Created, await project.Content.ReadAsStringAsync());
        Location(project).ShouldBe("/api/projects/" + Uri.EscapeDataString("단백질-접힘"));

        var alloc = await admin.PostAsJsonAsync("/api/allocations", new { id = "단백질-2026", project = "단백질-접힘", gpuHours = 100.0 });
        alloc.StatusCode.ShouldBe(HttpStatusCode.Created, await alloc.Content.ReadAsStringAsync());
        Location(alloc).ShouldBe("/api/allocations/" + Uri.EscapeDataString("단백질-2026"));

        // The Location answered is one the API serves.
        (await admin.GetAsync(Location(project))).StatusCode.ShouldBe(HttpStatusCode.OK);
        (await admin.GetAsync(Location(org))).StatusCode.ShouldBe(HttpStatusCode.OK);

        var kim = _s.Client(null);
        kim.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var me = await kim.GetFromJsonAsync<JsonElement>("/api/me");
        me.GetProperty("name").GetString().ShouldBe("김연구");
        me.GetProperty("projects").GetProperty("단백질-접힘").GetString().ShouldBe("pi");

        var job = await kim.PostAsJsonAsync("/api/jobs", new { project = "단백질-접힘", name = "접힘-실험", gpus = 1, walltime = "1h", command = new[] { "python", "fold.py" } });
        job.StatusCode.ShouldBe(HttpStatusCode.Created, await job.Content.ReadAsStringAsync());
        var dto = await job.Content.ReadFromJsonAsync<JsonElement>();
        dto.GetProperty("name").GetString().ShouldBe("접힘-실험");
        dto.GetProperty("user").GetString().ShouldBe("김연구");
        Location(job).ShouldBe($"/api/jobs/{dto.GetProperty("id").GetInt64()}");

        var member = await kim.PostAsJsonAsync($"/api/projects/{Uri.EscapeDataString("단백질-접힘")}/members", new { user = "bob" });
        member.StatusCode.ShouldBe(HttpStatusCode.Created, await member.Content.ReadAsStringAsync());
        Location(member).ShouldBe($"/api/projects/{Uri.EscapeDataString("단백질-접힘")}/members");

        var another = await kim.PostAsync($"/api/users/{Uri.EscapeDataString("김연구")}/tokens", null);
        another.StatusCode.ShouldBe(HttpStatusCode.Created);
        Location(another).ShouldBe("/api/users/%EA%B9%80%EC%97%B0%EA%B5%AC");
    }

    [Fact]
    public void Location_PercentEncodesEverySegment()
    {
        InputRules.Location("users", "김연구").ShouldBe("/api/users/%EA%B9%80%EC%97%B0%EA%B5%AC");
        InputRules.Location("projects", "a b?c#d%e", "members").ShouldBe("/api/projects/a%20b%3Fc%23d%25e/members");
    }

    // ---- Names ----------------------------------------------------------------------------------------------------

    public static TheoryData<string, string, string> BadNames() => new()
    {
        { "/api/users", Body(new { name = "." }), "name" },
        { "/api/users", Body(new { name = ".." }), "name" },
        { "/api/users", Body(new { name = "a/b" }), "name" },
        { "/api/users", Body(new { name = "evil\u001b[2J" }), "name" },
        { "/api/users", Body(new { name = "bell\u0007" }), "name" },
        { "/api/users", Body(new { name = "del\u007f" }), "name" },
        { "/api/users", Body(new { name = "csi\u009b31m" }), "name" },
        { "/api/users", Body(new { name = "user\u202egnp.exe" }), "name" },
        { "/api/users", Body(new { name = "iso\u2066late" }), "name" },
        { "/api/organisations", Body(new { name = "..", type = "university" }), "name" },
        { "/api/organisations", Body(new { name = "Org\u001b]0;pwned\u0007", type = "university" }), "name" },
        { "/api/projects", Body(new { name = ".", organisation = "University 01" }), "name" },
        { "/api/projects", Body(new { name = "p\nq", organisation = "University 01" }), "name" },
        { "/api/projects", Body(new { name = "ok", organisation = "../University 01" }), "organisation" },
        { "/api/allocations", Body(new { id = "..", project = "demo", gpuHours = 1.0 }), "id" },
        { "/api/allocations", Body(new { id = "a\u0000b", project = "demo", gpuHours = 1.0 }), "id" },
    };

    [Theory]
    [MemberData(nameof(BadNames))]
    public async Task BadName_Is400NamingTheField(string path, string body, string field)
    {
        var detail = await ShouldBe400Async(await _s.Client("admin").PostAsync(path, Json(body)), field);
        detail.Length.ShouldBeLessThan(300);
    }

    [Fact]
    public async Task ControlCharactersInAName_AreNamedInTheMessage()
    {
        var detail = await ShouldBe400Async(await _s.Client("admin").PostAsync("/api/users", Json(Body(new { name = "x\u001b[31m" }))), "name");
        detail.ShouldContain("U+001B");
        detail.ShouldContain("position 1");
    }

    /// <summary>Job names as JSON string literals (escapes as a client would send them).</summary>
    public static TheoryData<string> BadJobNames() => new()
    {
        """job\u001b[2J\u001b[H""",
        """tab\there""",
        """line\nbreak""",
        """c1\u0085""",
        """rlo\u202Eexe""",
        """lone\uD800surrogate""",
        """.""",
        """..""",
    };

    [Theory]
    [MemberData(nameof(BadJobNames))]
    public async Task BadJobName_Is400NamingTheField_AndStoresNothing(string name)
    {
        var body = $$"""{"project":"demo","name":"{{name}}","gpus":1,"walltime":"1h","command":["x"]}""";
        await ShouldBe400Async(await _s.Client("bob").PostAsync("/api/jobs", Json(body)), "name");
        (await _s.CountJobsAsync()).ShouldBe(0);
    }

    [Fact]
    public async Task DefaultJobName_FromAProgramWithControlCharacters_IsMadeSafe()
    {
        var r = await _s.Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "/opt/bin/tr\u001b[2Jain", "x" } });
        r.StatusCode.ShouldBe(HttpStatusCode.Created);
        (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("name").GetString().ShouldBe("tr_[2Jain");
    }

    // ---- Walltimes ------------------------------------------------------------------------------------------------

    public static TheoryData<string, string> BadWalltimes() => new()
    {
        { "99999999999h", "too large" },
        { "99999999999999999999999", "too large" },
        { "9999999999999999999d", "too large" },
        { "3651d", "too large" },
        { "1-99:99:99", "hours after days must be 0-23" },
        { "1-24:00:00", "hours after days must be 0-23" },
        { "10:60", "minutes must be 0-59" },
        { "1:00:60", "seconds must be 0-59" },
        { "1-", "not a duration" },
        { "-1", "not a duration" },
        { "1--2", "not a duration" },
        { "1h-2", "not a duration" },
        { ":30", "not a duration" },
        { "1::2", "not a duration" },
    };

    [Theory]
    [MemberData(nameof(BadWalltimes))]
    public async Task BadWalltime_Is400NamingTheField_NeverA500(string walltime, string why)
    {
        var body = Body(new { project = "demo", gpus = 1, walltime, command = new[] { "x" } });
        var detail = await ShouldBe400Async(await _s.Client("bob").PostAsync("/api/jobs", Json(body)), "walltime");
        detail.ShouldContain(why);
        (await _s.CountJobsAsync()).ShouldBe(0);
    }

    [Theory]
    [InlineData("60", 60)]
    [InlineData("3600", 3600)]
    [InlineData("90s", 90)]
    [InlineData("30m", 1800)]
    [InlineData("1h", 3600)]
    [InlineData("2d", 172800)]
    [InlineData("1h30m", 5400)]
    [InlineData("1d2h3m4s", 93784)]
    [InlineData("01:30", 5400)]
    [InlineData("36:00", 129600)]
    [InlineData("12:00:00", 43200)]
    [InlineData("100:59:59", 363599)]
    [InlineData("1-12", 129600)]
    [InlineData("2-00:30", 174600)]
    [InlineData("1-12:00:00", 129600)]
    [InlineData("0-23:59:59", 86399)]
    [InlineData(" 2h ", 7200)]
    [InlineData("3650d", 315360000)]
    public void Walltime_SlurmAndUnitForms_Parse(string text, long seconds)
    {
        Http.TryParseDuration(text, out var t, out var error).ShouldBeTrue(error);
        ((long)t.TotalSeconds).ShouldBe(seconds);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(null)]
    [InlineData("h")]
    [InlineData("2x")]
    [InlineData("2")]
    [InlineData("1h1")]
    [InlineData("-5")]
    [InlineData("+5")]
    [InlineData("1:2:3:4")]
    [InlineData("1-2:3:4:5")]
    [InlineData("1-99:99:99")]
    [InlineData("1-24")]
    [InlineData("0:60")]
    [InlineData("0:0:60")]
    [InlineData("99999999999h")]
    [InlineData("99999999999999999999999")]
    [InlineData("9223372036854775807s")]
    [InlineData("1.5h")]
    [InlineData("١٢")]
    public void Walltime_OutOfRangeOrNonsense_IsRefused_WithoutThrowing(string? text)
    {
        if (text == "2")
        {
            // A bare number is seconds: "2" is two seconds, not an error.
            Http.TryParseDuration(text, out var two, out _).ShouldBeTrue();
            two.ShouldBe(TimeSpan.FromSeconds(2));
            return;
        }

        Http.TryParseDuration(text, out _, out var error).ShouldBeFalse();
        error.ShouldNotBeNullOrWhiteSpace();
    }

    // ---- What a job runs (checked at submit) ----------------------------------------------------------------------

    public static TheoryData<string, string> BadCommands() => new()
    {
        { """{"project":"demo","gpus":1,"walltime":"1h","command":[""]}""", "command[0]" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["   ","x"]}""", "command[0]" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":[]}""", "command" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["sh","a\u0000b"]}""", "command[1]" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"environment":{"A":"b\u0000c"}}""", "environment.A" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"environment":{"1ABC":"x"}}""", "environment.1ABC" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"environment":{"A=B":"x"}}""", "environment.A=B" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"environment":{"A-B":"x"}}""", "environment.A-B" },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"environment":{"":"x"}}""", "environment." },
        { """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"workingDirectory":"/tmp\u0000/x"}""", "workingDirectory" },
    };

    [Theory]
    [MemberData(nameof(BadCommands))]
    public async Task BadCommand_Is400NamingTheField_AndStoresNothing(string body, string field)
    {
        await ShouldBe400Async(await _s.Client("bob").PostAsync("/api/jobs", Json(body)), field);
        (await _s.CountJobsAsync()).ShouldBe(0);
    }

    [Fact]
    public async Task OneArgumentOverTheKernelLimit_Is400NamingIt()
    {
        var ok = new string('a', InputRules.MaxArgStringBytes - 1);
        (await _s.Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "echo", ok } })).StatusCode.ShouldBe(HttpStatusCode.Created);
        var big = new string('a', InputRules.MaxArgStringBytes);
        var detail = await ShouldBe400Async(await _s.Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "echo", big } }), "command[1]");
        detail.ShouldContain("MAX_ARG_STRLEN");

        // Bytes, not characters: 43,691 Korean syllables are 131,073 bytes in UTF-8.
        var korean = new string('한', (InputRules.MaxArgStringBytes / 3) + 1);
        await ShouldBe400Async(await _s.Client("bob").PostAsync("/api/jobs", Json($$"""{"project":"demo","gpus":1,"walltime":"1h","command":["echo","{{korean}}"]}""")), "command[1]");
        var env = await _s.Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "x" }, environment = new Dictionary<string, string> { ["BIG"] = big } });
        await ShouldBe400Async(env, "environment.BIG");
        (await _s.CountJobsAsync()).ShouldBe(1);
    }

    [Fact]
    public async Task ArgumentsAndEnvironmentOverArgMax_Are400NamingTheField()
    {
        await using var s = await ServerHarness.StartAsync(configure: o => o.MaxBodyBytes = 8 * 1024 * 1024);
        var chunk = new string('a', 100_000);
        var args = Enumerable.Repeat(chunk, 21).Prepend("echo").ToArray();
        var r = await s.Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 1, walltime = "1h", command = args });
        (await ShouldBe400Async(r, "command")).ShouldContain("ARG_MAX");

        var env = Enumerable.Range(0, 11).ToDictionary(i => $"V{i}", _ => chunk);
        r = await s.Client("bob").PostAsJsonAsync("/api/jobs", new { project = "demo", gpus = 1, walltime = "1h", command = Enumerable.Repeat(chunk, 10).Prepend("echo").ToArray(), environment = env });
        (await ShouldBe400Async(r, "environment")).ShouldContain("ARG_MAX");
        (await s.CountJobsAsync()).ShouldBe(0);
    }

    // ---- Idempotency keys -----------------------------------------------------------------------------------------

    private async Task<HttpResponseMessage> SubmitWithKeyAsync(string key, object body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, "/api/jobs") { Content = JsonContent.Create(body) };
        req.Headers.Add("Idempotency-Key", key);
        return await _s.Client("bob").SendAsync(req);
    }

    [Fact]
    public async Task IdempotencyKey_WithADifferentBody_Is422NamingTheKey_TheSameBodyReplays()
    {
        var first = await SubmitWithKeyAsync("k-42", new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "train", "--lr", "0.1" }, environment = new Dictionary<string, string> { ["A"] = "1", ["B"] = "2" } });
        first.StatusCode.ShouldBe(HttpStatusCode.Created);
        var id = (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64();

        // The same request in another spelling (fields reordered, defaults given, walltime as seconds): a replay.
        var same = await SubmitWithKeyAsync("k-42", new { environment = new Dictionary<string, string> { ["B"] = "2", ["A"] = "1" }, command = new[] { "train", "--lr", "0.1" }, walltime = "3600", gpus = 1.0, project = "demo", priority = "normal", requeueable = true });
        same.StatusCode.ShouldBe(HttpStatusCode.OK, await same.Content.ReadAsStringAsync());
        (await same.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetInt64().ShouldBe(id);

        foreach (var different in new object[]
        {
            new { project = "demo", gpus = 2, walltime = "1h", command = new[] { "train", "--lr", "0.1" }, environment = new Dictionary<string, string> { ["A"] = "1", ["B"] = "2" } },
            new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "train", "--lr", "0.2" }, environment = new Dictionary<string, string> { ["A"] = "1", ["B"] = "2" } },
            new { project = "demo", gpus = 1, walltime = "1h", command = new[] { "train", "--lr", "0.1" } },
            new { project = "demo", gpus = 1, walltime = "2h", command = new[] { "train", "--lr", "0.1" }, environment = new Dictionary<string, string> { ["A"] = "1", ["B"] = "2" } },
        })
        {
            var r = await SubmitWithKeyAsync("k-42", different);
            var detail = await ShouldBe400Async(r, "Idempotency-Key", HttpStatusCode.UnprocessableEntity);
            detail.ShouldContain("'k-42'");
            detail.ShouldContain($"job {id}");
        }

        (await _s.CountJobsAsync()).ShouldBe(1);
    }

    // ---- Strict JSON ----------------------------------------------------------------------------------------------

    public static TheoryData<string, string, string> DuplicateKeys() => new()
    {
        { "/api/jobs", """{"project":"demo","gpus":1,"gpus":8,"walltime":"1h","command":["x"]}""", "gpus" },
        { "/api/jobs", """{"project":"demo","gpus":1,"walltime":"1h","command":["x"],"environment":{"A":"1","A":"2"}}""", "environment.A" },
        { "/api/users", """{"name":"dup","name":"admin2"}""", "name" },
        { "/api/projects", """{"name":"p","organisation":"University 01","organisation":"Startup 001"}""", "organisation" },
    };

    [Theory]
    [MemberData(nameof(DuplicateKeys))]
    public async Task DuplicateJsonKeys_Are400NamingTheKey(string path, string body, string field)
    {
        var client = path == "/api/jobs" ? _s.Client("bob") : _s.Client("admin");
        var detail = await ShouldBe400Async(await client.PostAsync(path, Json(body)), field);
        detail.ShouldContain("more than once");
        (await _s.CountJobsAsync()).ShouldBe(0);
    }

    // ---- The CLI's escaping ---------------------------------------------------------------------------------------

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("서울대학교 김연구", "서울대학교 김연구")]
    [InlineData("emoji 🧬 ok", "emoji 🧬 ok")]
    [InlineData("evil\u001b[2J\u001b[H", "evil\\e[2J\\e[H")]
    [InlineData("title\u001b]0;pwned\u0007", "title\\e]0;pwned\\x07")]
    [InlineData("a\nb\tc\rd", "a\\nb\\tc\\rd")]
    [InlineData("nul\u0000del\u007f", "nul\\x00del\\x7f")]
    [InlineData("csi\u009b31m", "csi\\x9b31m")]
    [InlineData("user\u202egnp.exe", "user\\u{202e}gnp.exe")]
    [InlineData("iso\u2066x\u2069", "iso\\u{2066}x\\u{2069}")]
    public void Cli_EscapesEveryUnprintableCharacter(string raw, string shown)
    {
        Display.Safe(raw).ShouldBe(shown);
        TextSafety.FirstUnsafe(Display.Safe(raw)).ShouldBe(-1);
        TextSafety.FirstUnsafe(Display.Cell(raw)).ShouldBe(-1);
    }

    [Fact]
    public void Cli_EscapesALoneSurrogate()
    {
        // Built at run time: a lone surrogate in an attribute would be stored as U+FFFD.
        var raw = "lone" + (char)0xD800 + "x";
        Display.Safe(raw).ShouldBe("lone\\u{d800}x");
        Display.Safe("pair 🧬").ShouldBe("pair 🧬");
    }

    [Fact]
    public void Cli_TableCells_EscapeMarkupToo()
    {
        Display.Cell("[red]x\u001b[0m[/]").ShouldBe("[[red]]x\\e[[0m[[/]]");
        Display.Safe(null).ShouldBe("");
    }
}

/// <summary>Korean names through the real server (Kestrel refuses a non-ASCII header, TestServer does not).</summary>
[Collection("processes")]
public sealed class InputProcessTests
{
    [Fact]
    public async Task KoreanNames_Answer201_FromTheRealServer_AndTheNewUsersTokenWorks()
    {
        var dir = Path.Combine(Path.GetTempPath(), "gpuc-input-" + Guid.NewGuid().ToString("N"));
        var s = await ServeProcess.StartAsync(dir);
        try
        {
            var admin = s.Client("admin");
            var org = await admin.PostAsJsonAsync("/api/organisations", new { name = "서울대학교", type = "university" });
            org.StatusCode.ShouldBe(HttpStatusCode.Created, s.Output);
            var project = await admin.PostAsJsonAsync("/api/projects", new { name = "유전체", organisation = "서울대학교" });
            project.StatusCode.ShouldBe(HttpStatusCode.Created, s.Output);
            project.Headers.Location!.OriginalString.ShouldBe("/api/projects/" + Uri.EscapeDataString("유전체"));
            var user = await admin.PostAsJsonAsync("/api/users", new { name = "김연구" });
            user.StatusCode.ShouldBe(HttpStatusCode.Created, s.Output);
            var token = (await user.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString()!;
            (await admin.PostAsJsonAsync($"/api/projects/{Uri.EscapeDataString("유전체")}/members", new { user = "김연구" })).StatusCode.ShouldBe(HttpStatusCode.Created);

            using var kim = new HttpClient { BaseAddress = new Uri(s.Url) };
            kim.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            (await kim.GetFromJsonAsync<JsonElement>("/api/me")).GetProperty("name").GetString().ShouldBe("김연구");
            var job = await kim.PostAsJsonAsync("/api/jobs", new { project = "유전체", name = "정렬", gpus = 1, walltime = "5m", command = new[] { "true" } });
            job.StatusCode.ShouldBe(HttpStatusCode.Created, await job.Content.ReadAsStringAsync());
            s.Output.ShouldNotContain("Invalid non-ASCII");
        }
        finally
        {
            await s.DisposeAsync();
            try
            {
                Directory.Delete(dir, true);
            }
            catch (IOException)
            {
            }
        }
    }
}
