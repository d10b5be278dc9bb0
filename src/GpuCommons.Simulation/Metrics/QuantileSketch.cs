namespace GpuCommons.Simulation.Metrics;

/// <summary>
/// Quantiles of a stream in fixed memory (a DDSketch-style log histogram): every quantile is within 0.5% of the true
/// value (relative), zero is exact, and the minimum and maximum are exact. Memory does not grow with the values seen.
/// </summary>
public sealed class QuantileSketch
{
    private const double Gamma = 1.01;
    private const double MinValue = 1e-3;
    private static readonly double LogGamma = Math.Log(Gamma);
    private readonly Dictionary<int, long> _buckets = [];
    private long _zeros;

    public long Count { get; private set; }
    public double Sum { get; private set; }
    public double Min { get; private set; } = double.PositiveInfinity;
    public double Max { get; private set; } = double.NegativeInfinity;
    public double Mean => Count == 0 ? 0 : Sum / Count;

    public void Add(double value)
    {
        if (double.IsNaN(value))
        {
            return;
        }

        value = Math.Max(0, value);
        Count++;
        Sum += value;
        Min = Math.Min(Min, value);
        Max = Math.Max(Max, value);
        if (value < MinValue)
        {
            _zeros++;
            return;
        }

        var k = (int)Math.Ceiling(Math.Log(value / MinValue) / LogGamma);
        _buckets[k] = _buckets.GetValueOrDefault(k) + 1;
    }

    /// <summary>The q-quantile (0 ≤ q ≤ 1), by the nearest-rank rule; 0 for an empty sketch.</summary>
    public double Quantile(double q)
    {
        if (Count == 0)
        {
            return 0;
        }

        var rank = Math.Max(1, (long)Math.Ceiling(q * Count));
        if (rank <= _zeros)
        {
            return Min < MinValue ? Min : 0;
        }

        var seen = _zeros;
        foreach (var k in SortedKeys())
        {
            seen += _buckets[k];
            if (seen >= rank)
            {
                // The bucket (γ^(k-1), γ^k] × MinValue; its middle is within (γ-1)/2 of any value in it.
                var value = MinValue * Math.Pow(Gamma, k) * 2 / (1 + Gamma);
                return Math.Clamp(value, Min, Max);
            }
        }

        return Max;
    }

    /// <summary>Points of the empirical CDF: (value, fraction of values ≤ value), one per bucket.</summary>
    public List<(double Value, double Fraction)> Cdf()
    {
        var points = new List<(double, double)>();
        if (Count == 0)
        {
            return points;
        }

        long seen = _zeros;
        if (_zeros > 0)
        {
            points.Add((0, _zeros / (double)Count));
        }

        foreach (var k in SortedKeys())
        {
            seen += _buckets[k];
            points.Add((Math.Min(Max, MinValue * Math.Pow(Gamma, k)), seen / (double)Count));
        }

        return points;
    }

    private List<int> SortedKeys()
    {
        var keys = _buckets.Keys.ToList();
        keys.Sort();
        return keys;
    }
}
