using CsCheck;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Properties;

/// <summary>The queue is sorted on integers that must order exactly like the priority doubles did.</summary>
public sealed class OrderKeyProperty
{
    private static readonly double[] Special = [0.0, -0.0, double.NaN, double.PositiveInfinity, double.NegativeInfinity, double.Epsilon, -double.Epsilon, double.MaxValue, double.MinValue, 1, -1];

    private static readonly Gen<double> Key = Gen.OneOf(Gen.Double, Gen.Double[-10, 10], Gen.OneOfConst(Special));

    [Fact]
    public void Descending_OrdersLikeDoubleCompareTo_HighestFirst()
    {
        Gen.Select(Key, Key).Sample((a, b) =>
            Math.Sign(SchedulerEngine.Descending(a).CompareTo(SchedulerEngine.Descending(b))).ShouldBe(Math.Sign(b.CompareTo(a)), $"{a} vs {b}"),
            iter: 200_000);

        foreach (var a in Special)
        {
            foreach (var b in Special)
            {
                Math.Sign(SchedulerEngine.Descending(a).CompareTo(SchedulerEngine.Descending(b))).ShouldBe(Math.Sign(b.CompareTo(a)), $"{a} vs {b}");
            }
        }
    }
}
