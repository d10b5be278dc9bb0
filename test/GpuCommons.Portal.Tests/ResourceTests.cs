using System.Text.RegularExpressions;
using System.Xml.Linq;
using GpuCommons.Core.Tenancy;
using GpuCommons.Scheduling;

namespace GpuCommons.Portal.Tests;

/// <summary>Every string the portal shows comes from the resource files, in both languages (no browser needed).</summary>
public sealed partial class ResourceTests
{
    private static string Root()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "GpuCommons.slnx")))
        {
            d = d.Parent;
        }

        return d!.FullName;
    }

    private static HashSet<string> Keys(string file) =>
        XDocument.Load(Path.Combine(Root(), "src/GpuCommons.Portal/Resources", file)).Root!.Elements("data").Select(e => e.Attribute("name")!.Value).ToHashSet(StringComparer.Ordinal);

    [GeneratedRegex("""L\["([A-Za-z0-9_]+)"[,\]]""")]
    private static partial Regex KeyUse();

    [Fact]
    public void English_and_Korean_have_the_same_keys_and_no_empty_value()
    {
        var en = Keys("Text.resx");
        var ko = Keys("Text.ko.resx");
        en.Except(ko).ShouldBeEmpty();
        ko.Except(en).ShouldBeEmpty();
        XDocument.Load(Path.Combine(Root(), "src/GpuCommons.Portal/Resources/Text.ko.resx")).Root!.Elements("data")
            .Where(e => string.IsNullOrWhiteSpace(e.Element("value")?.Value)).ShouldBeEmpty();
    }

    [Fact]
    public void Every_key_the_pages_use_is_in_the_resource_files()
    {
        var keys = Keys("Text.resx");
        var dir = Path.Combine(Root(), "src/GpuCommons.Portal");
        var used = Directory.EnumerateFiles(dir, "*.*", SearchOption.AllDirectories)
            .Where(f => (f.EndsWith(".cshtml", StringComparison.Ordinal) || f.EndsWith(".cs", StringComparison.Ordinal)) && !f.Contains("/obj/", StringComparison.Ordinal) && !f.Contains("/bin/", StringComparison.Ordinal))
            .SelectMany(f => KeyUse().Matches(File.ReadAllText(f)).Select(m => m.Groups[1].Value))
            .Where(k => !k.EndsWith('_'))
            .ToHashSet(StringComparer.Ordinal);
        used.Count.ShouldBeGreaterThan(100);
        used.Except(keys).ShouldBeEmpty();
    }

    [Fact]
    public void Every_pending_reason_state_role_and_organisation_type_has_words()
    {
        var keys = Keys("Text.resx");
        foreach (var r in Enum.GetValues<PendingReason>())
        {
            keys.ShouldContain("Reason_" + r);
        }

        foreach (var t in Enum.GetValues<OrganisationType>())
        {
            keys.ShouldContain("Class_" + t.ToString().ToLowerInvariant());
        }

        foreach (var s in new[] { "pending", "running", "finished", "failed", "cancelled" })
        {
            keys.ShouldContain("JobState_" + s);
        }

        foreach (var s in new[] { "admin", "operator", "reviewer", "user" })
        {
            keys.ShouldContain("Role_" + s);
        }

        foreach (var s in new[] { "active", "scheduled", "expired", "exhausted" })
        {
            keys.ShouldContain("AllocState_" + s);
        }

        var kinds = typeof(GpuCommons.Backends.DiscrepancyKinds).GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToList();
        kinds.Count.ShouldBeGreaterThan(8);
        foreach (var k in kinds)
        {
            keys.ShouldContain("Discrepancy_" + k);
        }
    }
}
