namespace GpuCommons.Backends.Local.Tests;

/// <summary>A clock that moves only when told (the backend reads schedule time through <see cref="TimeProvider.GetUtcNow"/>).</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private DateTimeOffset _now = new(2026, 11, 27, 12, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
