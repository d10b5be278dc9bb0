using System.Net;
using System.Net.Sockets;

namespace GpuCommons.Cli;

/// <summary>
/// Sends each request to one of several servers (<c>GPUC_URL=https://a,https://b</c>): the last one that answered first,
/// then the others in turn. A request is sent again to the next server only when that is safe: the connection failed
/// before anything was sent (refused, unreachable, DNS), or the server answered 503 (starting, or a standby with no leader
/// yet), or the request carries an Idempotency-Key or is a GET (a timeout or a reset then cannot do it twice). It goes
/// round the servers for up to <see cref="Patience"/>, which covers a leader's takeover.
/// </summary>
internal sealed class FailoverHandler : DelegatingHandler
{
    private readonly Uri[] _servers;
    private int _current;

    public FailoverHandler(IReadOnlyList<Uri> servers, HttpMessageHandler inner)
        : base(inner)
    {
        _servers = [.. servers];
    }

    /// <summary>How long to keep trying the servers. Default 30 s (a takeover takes about 5–10 s).</summary>
    public TimeSpan Patience { get; init; } = TimeSpan.FromSeconds(30);

    public static IReadOnlyList<Uri> Parse(string servers)
    {
        var list = new List<Uri>();
        foreach (var s in servers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(s, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            {
                throw new CliException($"--server: '{s}' is not an http(s) URL (several servers: separate them with commas)", CliRunner.Usage);
            }

            list.Add(uri);
        }

        if (list.Count == 0)
        {
            throw new CliException("--server: no URL given", CliRunner.Usage);
        }

        return list;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        // The body is read once and sent again as often as needed.
        var body = request.Content is null ? null : await request.Content.ReadAsByteArrayAsync(cancellationToken);
        var contentHeaders = request.Content?.Headers.ToList();
        var retryAny = request.Method == HttpMethod.Get || request.Headers.Contains("Idempotency-Key");
        var until = Environment.TickCount64 + (long)Patience.TotalMilliseconds;
        var pathAndQuery = request.RequestUri!.IsAbsoluteUri ? request.RequestUri.PathAndQuery : request.RequestUri.OriginalString;
        Exception? last = null;
        for (var round = 0; ; round++)
        {
            for (var i = 0; i < _servers.Length; i++)
            {
                var index = (Volatile.Read(ref _current) + i) % _servers.Length;
                var server = _servers[index];
                using var attempt = new HttpRequestMessage(request.Method, new Uri(server, pathAndQuery));
                foreach (var h in request.Headers)
                {
                    attempt.Headers.TryAddWithoutValidation(h.Key, h.Value);
                }

                if (body is not null)
                {
                    attempt.Content = new ByteArrayContent(body);
                    foreach (var h in contentHeaders!)
                    {
                        attempt.Content.Headers.TryAddWithoutValidation(h.Key, h.Value);
                    }
                }

                try
                {
                    var resp = await base.SendAsync(attempt, cancellationToken);
                    if (resp.StatusCode == HttpStatusCode.ServiceUnavailable && (_servers.Length > 1 || Environment.TickCount64 < until))
                    {
                        last = new HttpRequestException($"{server} answered 503 ({resp.ReasonPhrase})");
                        resp.Dispose();
                        continue;
                    }

                    Volatile.Write(ref _current, index);
                    return resp;
                }
                catch (HttpRequestException e) when (retryAny || NotSent(e))
                {
                    last = e;
                }
                catch (TaskCanceledException e) when (retryAny && !cancellationToken.IsCancellationRequested)
                {
                    last = e;
                }
            }

            if (Environment.TickCount64 >= until)
            {
                throw last is HttpRequestException h ? h : new HttpRequestException($"no server answered ({string.Join(", ", _servers.Select(s => s.ToString()))}): {last?.Message}", last);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 100 << Math.Min(round, 4))), cancellationToken);
        }
    }

    /// <summary>The connection never carried the request: refused, unreachable, or the name did not resolve.</summary>
    private static bool NotSent(HttpRequestException e) =>
        e.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError
        || e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.HostNotFound };
}
