using GpuCommons.Core.Tenancy;

namespace GpuCommons.Core.Rounds;

/// <summary>The classes a call's budget is divided between, as the national programme reports its results.</summary>
public static class TenantClasses
{
    /// <summary>The class names: universities are academia, institutes research, company labs and startups industry, flagship teams flagship.</summary>
    public const string Academia = "academia", Research = "research", Industry = "industry", Flagship = "flagship";

    /// <summary>Every class, in the order reports list them.</summary>
    public static IReadOnlyList<string> All { get; } = [Academia, Research, Industry, Flagship];

    /// <summary>The class of an organisation type.</summary>
    public static string Of(OrganisationType type) => type switch
    {
        OrganisationType.University => Academia,
        OrganisationType.Institute => Research,
        OrganisationType.CompanyLab or OrganisationType.Startup => Industry,
        _ => Flagship,
    };

    /// <summary>The class of an organisation type given as text (<c>university</c>, <c>startup</c>, …); unknown types are industry.</summary>
    public static string Of(string type) => Enum.TryParse<OrganisationType>(type, true, out var t) ? Of(t) : Industry;
}
