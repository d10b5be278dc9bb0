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
    public void AReplacingSearch_ForgetsTheCandidatesStillToTake_AndKeepsItsFinds()
    {
        var rest = new RestCandidates();
        rest.BeginFind();
        for (var t = 0; t < 300; t++)
        {
            rest.Found((ulong)(300 - t), t);
        }

        rest.TakeAll();
        rest.TryNext(out _).ShouldBeTrue();

        // Its finds include places the pool held: each is taken once, in order.
        rest.BeginFind(replacing: true);
        rest.Found(5, 299);
        rest.Found(1, 7);
        rest.Found(3, 1000);
        rest.TakeAll();
        Taken(rest).ShouldBe([(1UL, 7), (3UL, 1000), (5UL, 299)]);

        rest.BeginFind(replacing: true);
        rest.FoundCount.ShouldBe(0);
        rest.TakeAll();
        rest.TryNext(out _).ShouldBeFalse();
    }

    [Fact]
    public void Merging_KeepsTheWholeOrder_AndEveryPlaceOnce()
    {
        // A place in the tail has one key (many places may share one); searches find places again.
        Gen.Select(Gen.ULong[0, 40].Array[61], Gen.Int[0, 60].Array[0, 30].Array[1, 5])
            .Sample((keys, batches) =>
            {
                var rest = new RestCandidates();
                var expected = new SortedSet<(ulong, int)>();
                // A search finds each place at most once.
                rest.BeginFind();
                foreach (var t in batches[0].Distinct())
                {
                    rest.Found(keys[t], t);
                    expected.Add((keys[t], t));
                }

                rest.TakeAll();
                foreach (var batch in batches.Skip(1))
                {
                    rest.BeginFind();
                    foreach (var t in batch.Distinct())
                    {
                        rest.Found(keys[t], t);
                        expected.Add((keys[t], t));
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

    [Fact]
    public void TestedCandidates_AreTakenAsAnOrderedWalkThatTestsEachAtItsTurn()
    {
        // The walk the pool stands for: every candidate in order, each tested at its turn, a failing one passed over; a
        // step may lower classes' bounds, and a search that raises a class's bound finds its candidates again. Many
        // candidates (several chunks), keys with many ties or none.
        Gen.Select(Gen.Int[1, 3000], Gen.Int[1, 8], Gen.Bool, Gen.Int)
            .Sample((n, classes, ties, seed) =>
            {
                var random = new Random(seed);
                var keys = new ulong[n];
                var cls = new int[n];
                var wall = new long[n];
                for (var t = 0; t < n; t++)
                {
                    keys[t] = ties ? (ulong)random.Next(20) : (ulong)random.NextInt64();
                    cls[t] = random.Next(classes);
                    wall[t] = random.Next(100);
                }

                var bound = new long[classes];
                for (var c = 0; c < classes; c++)
                {
                    bound[c] = random.Next(100);
                }

                var rest = new RestCandidates();
                var model = new SortedSet<UInt128>();
                rest.BeginFind();
                for (var t = 0; t < n; t++)
                {
                    if (wall[t] <= bound[cls[t]])
                    {
                        rest.Found(keys[t], t, cls[t], wall[t]);
                        model.Add(RestCandidates.Place(keys[t], t));
                    }
                }

                rest.TakeAll();
                var test = new Bounds(bound);
                UInt128? last = null;
                while (true)
                {
                    // The model's turn: the least place left, tested now.
                    UInt128? expected = null;
                    while (model.Count > 0)
                    {
                        var p = model.Min;
                        model.Remove(p);
                        var t = RestCandidates.TailOf(p);
                        if (wall[t] <= bound[cls[t]])
                        {
                            expected = p;
                            break;
                        }
                    }

                    var got = rest.TryNext(ref test, out var place);
                    got.ShouldBe(expected is not null);
                    if (!got)
                    {
                        break;
                    }

                    place.ShouldBe(expected!.Value);
                    last = place;

                    // The step takes room: some classes' bounds fall.
                    if (random.Next(3) == 0)
                    {
                        var c = random.Next(classes);
                        bound[c] = Math.Max(-1, bound[c] - random.Next(1, 40));
                    }

                    // A search after a step that opened something: the bounds of some classes rise, and their candidates
                    // after the step are found again (with places the pool already holds).
                    if (random.Next(8) == 0)
                    {
                        var c = random.Next(classes);
                        bound[c] += random.Next(1, 50);
                        rest.BeginFind();
                        for (var t = 0; t < n; t++)
                        {
                            var p = RestCandidates.Place(keys[t], t);
                            if (cls[t] == c && wall[t] <= bound[c] && p > last)
                            {
                                rest.Found(keys[t], t, cls[t], wall[t]);
                                model.Add(p);
                            }
                        }

                        rest.TakeMore();
                    }
                }
            }, iter: 300);
    }

    /// <summary>A candidate passes while its walltime is within its class's bound (as the engine's rest tests it).</summary>
    [Fact]
    public void FindsThatFailByTheirFirstTurn_ArePassedOver_AndTheOthersTakenInOrder()
    {
        // The first chunk of a replacing take is the search's least finds, selected as they were found; a step before the
        // first turn may have lowered bounds since. Class 0 is refused by then: among the least finds and beyond them.
        var rest = new RestCandidates();
        rest.BeginFind(replacing: true);
        var expected = new List<(ulong, int)>();
        for (var t = 0; t < 200; t++)
        {
            var key = (ulong)((t * 37) % 200);
            var cls = key < 50 || t % 3 == 0 ? 0 : 1;
            rest.Found(key, t, cls, walltime: 10);
            if (cls == 1)
            {
                expected.Add((key, t));
            }
        }

        rest.TakeAll();
        var test = new Bounds([5, 10]);
        var taken = new List<(ulong, int)>();
        while (rest.TryNext(ref test, out var place))
        {
            taken.Add((RestCandidates.KeyOf(place), RestCandidates.TailOf(place)));
        }

        taken.ShouldBe([.. expected.OrderBy(p => p.Item1).ThenBy(p => p.Item2)]);
    }

    private readonly struct Bounds(long[] bound) : RestCandidates.ICandidateTest
    {
        public bool Passes(int decisionClass, long walltime) => walltime <= bound[decisionClass];
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
