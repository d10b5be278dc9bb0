namespace GpuCommons.Backends.Slurm.Parsing;

/// <summary>A line of Slurm output that did not have the shape we asked for. The line is skipped, never guessed.</summary>
public sealed record SlurmParseError(string Command, int Line, string Text, string Problem)
{
    public override string ToString() => $"{Command}: line {Line}: {Problem}: '{Text}'";
}

/// <summary>Rows parsed from one command's output, and the lines that could not be parsed.</summary>
public sealed record SlurmParseResult<T>(IReadOnlyList<T> Rows, IReadOnlyList<SlurmParseError> Errors)
{
    public bool Clean => Errors.Count == 0;
}
