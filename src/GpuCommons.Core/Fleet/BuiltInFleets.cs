namespace GpuCommons.Core.Fleet;

/// <summary>Fleets shipped with GpuCommons, by name: <c>national</c> (the national center) and <c>small</c> (tests and demos).</summary>
public static class BuiltInFleets
{
    /// <summary>The names of the shipped fleets, in lower case.</summary>
    public static IReadOnlyList<string> Names { get; } = ["national", "small"];

    /// <summary>Loads a shipped fleet by name (case does not matter); an unknown name is a <see cref="SpecException"/>.</summary>
    public static Fleet Get(string name)
    {
        var key = name.ToLowerInvariant();
        if (!Names.Contains(key))
        {
            throw new SpecException("fleet", $"no shipped fleet named '{name}' (shipped: {string.Join(", ", Names)})");
        }

        return FleetSpecLoader.FromJson(GetJson(key), key + ".json");
    }

    /// <summary>The JSON fleet spec of a shipped fleet, as it is embedded in the assembly.</summary>
    public static string GetJson(string name)
    {
        using var s = typeof(BuiltInFleets).Assembly.GetManifestResourceStream($"GpuCommons.Core.Fleets.{name.ToLowerInvariant()}.json")
            ?? throw new SpecException("fleet", $"no shipped fleet named '{name}'");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
