namespace GpuCommons.Core.Fleet;

/// <summary>Fleets shipped with GpuCommons, by name: <c>national</c> (the national center) and <c>small</c> (tests and demos).</summary>
public static class BuiltInFleets
{
    public static IReadOnlyList<string> Names { get; } = ["national", "small"];

    public static Fleet Get(string name)
    {
        var key = name.ToLowerInvariant();
        if (!Names.Contains(key))
        {
            throw new SpecException("fleet", $"no shipped fleet named '{name}' (shipped: {string.Join(", ", Names)})");
        }

        return FleetSpecLoader.FromJson(GetJson(key), key + ".json");
    }

    public static string GetJson(string name)
    {
        using var s = typeof(BuiltInFleets).Assembly.GetManifestResourceStream($"GpuCommons.Core.Fleets.{name.ToLowerInvariant()}.json")
            ?? throw new SpecException("fleet", $"no shipped fleet named '{name}'");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
