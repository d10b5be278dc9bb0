using CsCheck;
using GpuCommons.Scheduling.Internal;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Internal;

public sealed class PendingQueueHeadTests
{
    [Fact]
    public void TheHead_IsTheFirstEntriesByKeyThenIndex_InThatOrder()
    {
        var queue = new PendingQueue(new SchedulerOptions());
        ulong[] keys = [9, 3, 7, 3, 1, 7, 7, 2];
        queue.SelectHeadForTests(keys, 5).ShouldBe([4, 7, 1, 3, 2]);
        queue.SelectHeadForTests(keys, 20).ShouldBe([4, 7, 1, 3, 2, 5, 6, 0]);
        queue.SelectHeadForTests(keys, 0).ShouldBeEmpty();
    }

    [Fact]
    public void TheHead_OfAnyKeys_IsWhatAFullSortPutsFirst()
    {
        // Keys that differ in every byte, only in low ones, or in one high byte (where the split buckets are large), with
        // many equal keys (the head then ends inside a run of one key).
        var keys = Gen.OneOf(Gen.ULong, Gen.ULong[0, 40], Gen.ULong[0, 3].Select(k => 0xBFF0_0000_0000_0000UL - (k << 48)), Gen.ULong[0, 70_000]);
        // The bounds of the keys it is given may be loose (the tail's are): exact, or lower and higher by any amount.
        var loosen = Gen.OneOf(Gen.Const(0UL), Gen.ULong[0, 1000], Gen.ULong);
        Gen.Select(keys.Array[0, 4000], Gen.Int[0, 2500], loosen, loosen)
            .Sample((all, head, lowerBy, raiseBy) =>
            {
                var queue = new PendingQueue(new SchedulerOptions());
                var expected = Enumerable.Range(0, all.Length).OrderBy(i => all[i]).ThenBy(i => i).Take(head).ToArray();
                queue.SelectHeadForTests(all, head, lowerBy, raiseBy).ShouldBe(expected);
            }, iter: 300);
    }
}
