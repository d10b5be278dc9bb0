namespace GpuCommons.Backends.Local.Tests.Tenants;

/// <summary>
/// A test that needs root (it creates accounts and runs jobs as them). Skipped, with the reason, when the tests do not
/// run as root; on CI (<c>CI=true</c>, where the tests run as root) it runs anyway, and <see cref="Require"/> fails it.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public static bool IsRoot => Environment.UserName == "root" || GpuCommons.Backends.Local.Internal.Posix.EffectiveUid == 0;

    public static bool OnCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public RootFactAttribute()
    {
        if (!IsRoot && !OnCi)
        {
            Skip = "needs root: it creates local accounts and runs jobs as them (CI=true makes this a failure)";
        }
    }

    /// <summary>Fails the test when it runs without root (only on CI: elsewhere the attribute skipped it).</summary>
    public static void Require()
    {
        if (!IsRoot)
        {
            Assert.Fail("The hostile-tenant tests must run as root on CI (CI=true): they create local accounts and run jobs as them.");
        }
    }
}
