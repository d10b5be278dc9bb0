using GpuCommons.Core.Jobs;

namespace GpuCommons.Scheduling.Tests.Support;

/// <summary>Fluent job builder in Kueue's style: <c>Job(1).Gpus(8).Project("a").Hours(2)</c>.</summary>
public sealed class JobBuilder(long id)
{
    private string _project = "a";
    private string _user = "alice";
    private string? _partition;
    private double _gpus = 1;
    private int? _nodes;
    private int? _gpusPerNode;
    private TimeSpan _walltime = TimeSpan.FromHours(1);
    private PriorityClass _priority = PriorityClass.Normal;
    private bool _checkpointable;
    private bool _requeueable = true;
    private DateTimeOffset? _submit;

    public long Id { get; } = id;

    public JobBuilder Project(string project)
    {
        _project = project;
        return this;
    }

    public JobBuilder User(string user)
    {
        _user = user;
        return this;
    }

    public JobBuilder Partition(string partition)
    {
        _partition = partition;
        return this;
    }

    public JobBuilder Gpus(double gpus)
    {
        _gpus = gpus;
        return this;
    }

    public JobBuilder Nodes(int nodes)
    {
        _nodes = nodes;
        return this;
    }

    public JobBuilder GpusPerNode(int perNode)
    {
        _gpusPerNode = perNode;
        return this;
    }

    public JobBuilder Walltime(TimeSpan walltime)
    {
        _walltime = walltime;
        return this;
    }

    public JobBuilder Hours(double hours) => Walltime(TimeSpan.FromHours(hours));

    public JobBuilder Minutes(double minutes) => Walltime(TimeSpan.FromMinutes(minutes));

    public JobBuilder Priority(PriorityClass priority)
    {
        _priority = priority;
        return this;
    }

    public JobBuilder Preemptible() => Priority(PriorityClass.Preemptible);

    public JobBuilder High() => Priority(PriorityClass.High);

    public JobBuilder Checkpointable()
    {
        _checkpointable = true;
        return this;
    }

    public JobBuilder NotRequeueable()
    {
        _requeueable = false;
        return this;
    }

    public JobBuilder SubmittedAt(DateTimeOffset at)
    {
        _submit = at;
        return this;
    }

    /// <summary>The spec; submitted now unless <see cref="SubmittedAt"/> was given.</summary>
    public JobSpec Obj(DateTimeOffset now) => new()
    {
        Id = Id,
        Project = _project,
        User = _user,
        Partition = _partition,
        Gpus = _gpus,
        Nodes = _nodes,
        GpusPerNode = _gpusPerNode,
        Walltime = _walltime,
        Priority = _priority,
        Checkpointable = _checkpointable,
        Requeueable = _requeueable,
        SubmitTime = _submit ?? now,
    };
}
