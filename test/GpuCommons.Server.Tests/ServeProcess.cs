using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace GpuCommons.Server.Tests;

/// <summary><c>gpuc serve</c> as a child process (the real product: Kestrel, SQLite file, local backend).</summary>
public sealed class ServeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output;

    private ServeProcess(Process process, StringBuilder output, string url, string dataDir)
    {
        _process = process;
        _output = output;
        Url = url;
        DataDir = dataDir;
    }

    public string Url { get; }
    public string DataDir { get; }
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Starts the server; retries twice when it dies while starting (a busy machine, a port taken meanwhile).</summary>
    public static Task<ServeProcess> StartAsync(string dataDir, int? port = null, params string[] extra) =>
        StartWithAsync(Path.Combine(AppContext.BaseDirectory, "gpuc.dll"), dataDir, port, extra);

    /// <summary>Starts the server of another build (<paramref name="gpucDll"/>: another release's gpuc.dll).</summary>
    public static async Task<ServeProcess> StartWithAsync(string gpucDll, string dataDir, int? port = null, params string[] extra)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await StartOnceAsync(gpucDll, dataDir, port, extra);
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await Task.Delay(500);
            }
        }
    }

    private static async Task<ServeProcess> StartOnceAsync(string dll, string dataDir, int? port, string[] extra)
    {
        var url = $"http://127.0.0.1:{port ?? FreePort()}";
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { dll, "serve", "--urls", url, "--data-dir", dataDir, "--gpus", "virtual", "--virtual-gpus", "8" }.Concat(extra))
        {
            psi.ArgumentList.Add(a);
        }

        var output = new StringBuilder();
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        p.ErrorDataReceived += (_, e) =>
        {
            lock (output)
            {
                output.AppendLine(e.Data);
            }
        };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var s = new ServeProcess(p, output, url, dataDir);
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(2) };
        var until = Environment.TickCount64 + 120_000; // a loaded CI machine can take a minute to start dotnet
        while (Environment.TickCount64 < until)
        {
            if (p.HasExited)
            {
                p.WaitForExit();
                throw new InvalidOperationException($"gpuc serve exited with {p.ExitCode}: " + s.Output);
            }

            try
            {
                if ((await http.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK)
                {
                    return s;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("gpuc serve did not become healthy: " + s.Output);
    }

    public HttpClient Client(string user)
    {
        string token;
        if (user == "admin")
        {
            token = File.ReadAllText(Path.Combine(DataDir, "admin-token")).Trim();
        }
        else
        {
            token = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(Path.Combine(DataDir, "demo-tokens.json")))![user];
        }

        var c = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(30) };
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return c;
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>SIGSTOP (<paramref name="stop"/>) or SIGCONT: the process freezes or carries on where it was.</summary>
    public void Pause(bool stop)
    {
        using var kill = Process.Start("kill", [stop ? "-STOP" : "-CONT", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    /// <summary>The body of /healthz (leader, standby, starting…), or null when the server does not answer.</summary>
    public async Task<string?> HealthAsync()
    {
        using var http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(1) };
        try
        {
            return (await http.GetStringAsync("/healthz").ConfigureAwait(false)).Trim();
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>A client of this server with a token from another one's data directory (a standby writes no token files).</summary>
    public HttpClient ClientWithTokensOf(ServeProcess first, string user)
    {
        var c = first.Client(user);
        c.BaseAddress = new Uri(Url);
        return c;
    }

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void KillHard()
    {
        _process.Kill(entireProcessTree: false);
        _process.WaitForExit(10_000);
    }

    private bool _disposed;

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: false);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
