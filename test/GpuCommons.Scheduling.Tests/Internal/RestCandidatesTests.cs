using CsCheck;
using GpuCommons.Scheduling.Internal;
using Shouldly;
using Xunit;

namespace GpuCommons.Scheduling.Tests.Internal;

public sealed class RestCandidatesTests
{
    [Fact]
    public void Candidates_AreTakenByKeyThenPlace_WhateverOrderTheyWereFoundIn()
    {
        var rest = new RestCandidates();
        rest.BeginFind();
        rest.Found(7, 2);
        rest.Found(3, 9);
        rest.Found(7, 1);
        rest.Found(ulong.MaxValue, 0);
        rest.TakeAll();
        Taken(rest).ShouldBe([(3UL, 9), (7UL, 1), (7UL, 2), (ulong.MaxValue, 0)]);
    }

    [Fact]
    public void MoreCandidates_JoinThoseStillToTake_EachPlaceOnce()
    {
        var rest = new RestCandidates();
        rest.BeginFind();
        rest.Found(1, 0);
        rest.Found(5, 3);
        rest.Found(9, 4);
        rest.TakeAll();
        rest.TryNext(out var first).ShouldBeTrue();
        RestCandidates.KeyOf(first).ShouldBe(1UL);

        // Found again after the first: one place already to take, one new, one before the first (never taken again
        // only because the search looks after it; here it is given, and joins in order).
        rest.BeginFind();
        rest.Found(9, 4);
        rest.Found(6, 7);
        rest.TakeMore();
        Taken(rest).ShouldBe([(5UL, 3), (6UL, 7), (9UL, 4)]);
    }

    [Fact]
    public void TakeAll_ForgetsTheCandidatesStillToTake()
    {
        var rest = new RestCandidates();
        rest.BeginFind();
        rest.Found(2, 2);
        rest.TakeAll();
        rest.BeginFind();
        rest.Found(4, 1);
        rest.TakeMore();
        rest.BeginFind();
        rest.Found(8, 8);
        rest.TakeAll();
        Taken(rest).ShouldBe([(8UL, 8)]);
    }

    [Fact]
    public void Merging_KeepsTheWholeOrder_AndEveryPlaceOnce()
    {
        Gen.Select(Gen.Int[0, 40].Select(k => (ulong)k), Gen.Int[0, 60]).Array[0, 30].Array[1, 5]
            .Sample(batches =>
            {
                var rest = new RestCandidates();
                var expected = new SortedSet<(ulong, int)>();
                // A search finds each place at most once.
                rest.BeginFind();
                foreach (var (k, t) in batches[0].Distinct())
                {
                    rest.Found(k, t);
                    expected.Add((k, t));
                }

                rest.TakeAll();
                foreach (var batch in batches.Skip(1))
                {
                    rest.BeginFind();
                    foreach (var (k, t) in batch.Distinct())
                    {
                        rest.Found(k, t);
                        expected.Add((k, t));
                    }

                    rest.TakeMore();
                }

                Taken(rest).ShouldBe([.. expected]);
            }, iter: 500);
    }

    [Fact]
    public void ManyCandidates_AreTakenByKeyThenPlace_LikeFewOnes()
    {
        // Enough finds to be sorted by radix: keys that differ in every byte or only in low ones, many equal, found in
        // tail order (as a search finds them) or shuffled.
        var keys = Gen.OneOf(Gen.ULong, Gen.ULong[0, 300], Gen.ULong[0, 5].Select(k => 0x3FF0_0000_0000_0000UL | (k << 40)));
        Gen.Select(keys.Array[500, 3000], Gen.Bool, Gen.Int)
            .Sample((found, shuffled, seed) =>
            {
                var places = found.Select((k, t) => (k, t)).ToArray();
                if (shuffled)
                {
                    new Random(seed).Shuffle(places);
                }

                var rest = new RestCandidates();
                rest.BeginFind();
                foreach (var (k, t) in places)
                {
                    rest.Found(k, t);
                }

                rest.TakeAll();
                Taken(rest).ShouldBe([.. places.OrderBy(p => p.k).ThenBy(p => p.t)]);
            }, iter: 200);
    }

    private static List<(ulong, int)> Taken(RestCandidates rest)
    {
        var taken = new List<(ulong, int)>();
        while (rest.TryNext(out var place))
        {
            taken.Add((RestCandidates.KeyOf(place), RestCandidates.TailOf(place)));
        }

        return taken;
    }
}
