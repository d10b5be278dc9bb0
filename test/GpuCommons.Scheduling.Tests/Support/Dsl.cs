namespace GpuCommons.Scheduling.Tests.Support;

/// <summary>Entry points of the fluent builders, for <c>using static</c>.</summary>
internal static class Dsl
{
    public static JobBuilder Job(long id) => new(id);

    public static TenancyBuilder Tenants() => new();
}
