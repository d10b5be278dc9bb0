using System.CommandLine;
using GpuCommons.Core;

namespace GpuCommons.Cli;

/// <summary>Runs the command line and turns expected errors into a message and an exit code, never a stack trace.</summary>
internal static class CliRunner
{
    /// <summary>Exit codes scripts can trust.</summary>
    public const int Ok = 0, Failure = 1, Usage = 2, NotFound = 3, Denied = 4, Unavailable = 5;

    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        try
        {
            var parse = root.Parse(args);
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (SpecException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return Usage;
        }
        catch (CliException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return e.ExitCode;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("cancelled");
            return 130;
        }
        catch (IOException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return Failure;
        }
        catch (UnauthorizedAccessException e)
        {
            await Console.Error.WriteLineAsync($"error: {e.Message}");
            return Failure;
        }
        catch (ArgumentException e)
        {
            // Options the server or a backend refused (a connection string for the wrong database, a bad path…).
            var message = e.ParamName is { } name ? e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : e.Message;
            await Console.Error.WriteLineAsync($"error: {message}");
            return Usage;
        }
        catch (System.Data.Common.DbException e)
        {
            await Console.Error.WriteLineAsync($"error: database: {e.Message}");
            return Unavailable;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("GPUC_DEBUG") is null)
        {
            // Anything else is a fault of ours: say what failed in one line; GPUC_DEBUG=1 shows the stack trace.
            await Console.Error.WriteLineAsync($"error: {e.GetType().Name}: {e.Message} (GPUC_DEBUG=1 for details)");
            return Failure;
        }
    }
}

/// <summary>An error the user can act on, with the exit code to return.</summary>
internal class CliException(string message, int exitCode = CliRunner.Failure) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>An error the server answered with: its HTTP status and the field it names, if any.</summary>
internal sealed class ApiProblem(string message, int exitCode, int status, string? field) : CliException(message, exitCode)
{
    public int Status { get; } = status;
    public string? Field { get; } = field;
}

/// <summary>The few POSIX calls the CLI needs.</summary>
internal static partial class Posix
{
    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    /// <summary>The effective uid of this process (-1 on Windows).</summary>
    public static long EffectiveUid => OperatingSystem.IsWindows() ? -1 : GetEuid();
}
