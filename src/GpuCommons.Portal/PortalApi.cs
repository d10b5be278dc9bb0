using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;

namespace GpuCommons.Portal;

/// <summary>
/// Every change the portal makes (submit, cancel, request, review, drain, members, reservations) goes through the
/// server's own API over loopback, with the signed-in user's token: one set of rules for validation and authorization.
/// Reads go straight to the database (paged) for speed.
/// </summary>
public sealed class PortalApi(IHttpClientFactory http, IServer server)
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };
    private string? _base;

    /// <summary>Overrides the loopback address (tests on an in-memory server).</summary>
    public Func<HttpClient>? ClientFactory { get; set; }

    private HttpClient Client(HttpContext ctx)
    {
        var c = ClientFactory?.Invoke() ?? http.CreateClient("portal-self");
        if (ClientFactory is null)
        {
            c.BaseAddress = new Uri(_base ??= Loopback(server));
        }

        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ctx.Items["portal-token"] as string ?? "");
        return c;
    }

    private static string Loopback(IServer server)
    {
        var addr = server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:8080";
        var u = new Uri(addr.Replace("://+", "://127.0.0.1", StringComparison.Ordinal).Replace("://*", "://127.0.0.1", StringComparison.Ordinal)
            .Replace("://0.0.0.0", "://127.0.0.1", StringComparison.Ordinal).Replace("://[::]", "://127.0.0.1", StringComparison.Ordinal));
        return $"{u.Scheme}://{u.Host}:{u.Port}/";
    }

    /// <summary>Sends a request; returns (ok, the problem's detail or body, JSON result).</summary>
    public async Task<ApiResult> SendAsync(HttpContext ctx, HttpMethod method, string path, object? body = null)
    {
        using var client = Client(ctx);
        using var req = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null)
        {
            // A string body carries a Content-Length (the API reads optional bodies only when it is there).
            req.Content = new StringContent(JsonSerializer.Serialize(body, body.GetType(), JsonOptions), System.Text.Encoding.UTF8, "application/json");
        }

        using var resp = await client.SendAsync(req, ctx.RequestAborted);
        var text = await resp.Content.ReadAsStringAsync(ctx.RequestAborted);
        if (resp.IsSuccessStatusCode)
        {
            return new ApiResult(true, null, text) { Status = (int)resp.StatusCode };
        }

        string? detail = null, field = null;
        try
        {
            using var doc = JsonDocument.Parse(text);
            detail = doc.RootElement.TryGetProperty("detail", out var d) ? d.GetString() : doc.RootElement.TryGetProperty("title", out var t) ? t.GetString() : null;
            field = doc.RootElement.TryGetProperty("field", out var f) ? f.GetString() : null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
        }

        return new ApiResult(false, detail ?? $"{(int)resp.StatusCode} {resp.ReasonPhrase}", text) { Status = (int)resp.StatusCode, Field = field };
    }
}

public sealed record ApiResult(bool Ok, string? Error, string Body)
{
    /// <summary>The HTTP status the API answered.</summary>
    public int Status { get; init; }

    /// <summary>The field a 400 names (the problem document's <c>field</c>).</summary>
    public string? Field { get; init; }

    public JsonElement Json => JsonDocument.Parse(Body).RootElement;
}
