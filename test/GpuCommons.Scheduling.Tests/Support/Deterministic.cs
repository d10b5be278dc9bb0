using CsCheck;

namespace GpuCommons.Scheduling.Tests.Support;

/// <summary>
/// Runs a CsCheck property over a fixed sequence of seeds, so every run of the suite tests the same cases. When one
/// fails, CsCheck takes over from that seed to shrink it and reports the seed (set CsCheck_Seed to replay it).
/// </summary>
internal static class Deterministic
{
    /// <summary>GPUC_STREAM_OFFSET=n explores other seeds (for a longer hunt); the suite itself always runs offset 0.</summary>
    private static readonly uint Offset = uint.TryParse(Environment.GetEnvironmentVariable("GPUC_STREAM_OFFSET"), out var o) ? o : 0;

    public static void Sample<T>(Gen<T> gen, Action<T> property, int iter, uint stream, Func<T, string>? print = null, Action<string>? writeLine = null)
    {
        stream += Offset * 1000;
        for (var i = 0; i < iter; i++)
        {
            var pcg = new PCG(stream, (ulong)i * 0x9E3779B97F4A7C15UL);
            var seed = pcg.ToString();
            var value = gen.Generate(pcg, null, out _);
            try
            {
                property(value);
            }
            catch (Exception first)
            {
                // Shrink from the failing seed; CsCheck throws its report. If it cannot reproduce, report the original.
                gen.Sample(property, seed: seed, iter: 500, threads: 1, print: print, writeLine: writeLine);
                throw new InvalidOperationException($"case {i} of stream {stream} (CsCheck_Seed={seed}) failed: {first.Message}\n{print?.Invoke(value)}", first);
            }
        }
    }
}
