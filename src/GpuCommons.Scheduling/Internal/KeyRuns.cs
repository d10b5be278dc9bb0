namespace GpuCommons.Scheduling.Internal;

/// <summary>Helpers for entries sorted by a key, with an integer place beside each key.</summary>
internal static class KeyRuns
{
    /// <summary>
    /// Puts each run of equal keys in <paramref name="keys"/> in ascending order of its places in
    /// <paramref name="places"/> (the keys already sorted; a run already in order is left as it is).
    /// </summary>
    public static void OrderPlacesWithinRuns(ReadOnlySpan<ulong> keys, Span<int> places)
    {
        for (var i = 0; i < keys.Length;)
        {
            var j = i + 1;
            var inOrder = true;
            while (j < keys.Length && keys[j] == keys[i])
            {
                inOrder &= places[j] > places[j - 1];
                j++;
            }

            if (!inOrder)
            {
                places[i..j].Sort();
            }

            i = j;
        }
    }
}
