using GpuCommons.Scheduling.Internal;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Internal;

public sealed class ProjectSetTests
{
    [Fact]
    public void Clear_EmptiesTheSet_AndProjectsCanBeAddedAgain()
    {
        var set = new ProjectSet();
        set.Add(3);
        set.Add(3);
        set.Add(100);
        set.Count.ShouldBe(2);
        set.Contains(3).ShouldBeTrue();
        set.Contains(100).ShouldBeTrue();
        set.Contains(4).ShouldBeFalse();
        set.Contains(1_000).ShouldBeFalse("beyond what was ever added");

        set.Clear();
        set.Count.ShouldBe(0);
        set.Contains(3).ShouldBeFalse();
        set.Contains(100).ShouldBeFalse();

        set.Add(100);
        set.Count.ShouldBe(1);
        set.Contains(100).ShouldBeTrue();
        set.Contains(3).ShouldBeFalse();
    }

    [Fact]
    public void Add_NegativeProject_IsRefused()
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new ProjectSet().Add(-1));
    }
}
