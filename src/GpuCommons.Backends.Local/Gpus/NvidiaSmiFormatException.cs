namespace GpuCommons.Backends.Local.Gpus;

/// <summary>
/// <c>nvidia-smi</c> printed something this parser does not understand. The message names the command form, the line
/// and the field; nothing is guessed from output that does not parse.
/// </summary>
public sealed class NvidiaSmiFormatException : FormatException
{
    public NvidiaSmiFormatException(string message)
        : base(message)
    {
    }

    public NvidiaSmiFormatException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
