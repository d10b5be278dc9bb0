using System.Globalization;
using GpuCommons.Backends.Local.Gpus;

namespace GpuCommons.Backends.Local.Tests;

/// <summary>The machine's cores and memory reach the fleet.</summary>
public sealed class LocalBackendResourceTests
{
    [Fact]
    public async Task DiscoverAsync_ReportsTheMachinesCoresAndMemory()
    {
        await using var t = new TestBackend(FakeNvidiaSmi.NotInstalled(), o => o.VirtualGpuCount = 4);
        var node = (await t.Backend.DiscoverAsync(CancellationToken.None)).Nodes.ShouldHaveSingleItem();

        node.Cpus.ShouldBe(Environment.ProcessorCount);
        var memTotalKiB = long.Parse(File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        node.MemoryMiB.ShouldNotBeNull().ShouldBeInRange(1, memTotalKiB / 1024);
    }
}
