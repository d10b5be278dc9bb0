namespace GpuCommons.Server.Leadership;

/// <summary>SQLite: one server per database file (see <see cref="SqliteInstanceLock"/>); it always leads, epoch 0.</summary>
public sealed class SingleInstanceLeadership(TimeProvider time) : ILeadership
{
    private readonly long _started = time.GetTimestamp();

    public bool MultiInstance => false;
    public bool IsLeader => true;
    public long Epoch => 0;
    public bool IsLeaseValidLocally => true;
    public string? LeaderUrl => null;
    public long ObservedEpoch => 0;
    public double? SecondsSinceTakeover => time.GetElapsedTime(_started).TotalSeconds;
    public int Takeovers => 1;
    public CancellationToken Lost => CancellationToken.None;
    public bool SteppedDown => false;
    public Task WaitForLeadershipAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
