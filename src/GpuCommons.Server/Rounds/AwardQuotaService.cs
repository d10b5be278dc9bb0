using System.Globalization;
using System.Text.Json;
using GpuCommons.Core.Tenancy;
using GpuCommons.Server.Api;
using GpuCommons.Server.Data;
using GpuCommons.Server.Engine;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace GpuCommons.Server.Rounds;

/// <summary>
/// Turns capacity awards into the engine's quotas at their time: from an award's start to its end (or to the moment a
/// stage review ends it), its project holds a guaranteed (nominal) quota of the awarded GPUs on the award's partition,
/// lent to others while idle and reclaimed by preemption when the project needs it (the engine's quota semantics). It
/// goes through the same path as <c>PUT /api/projects/{name}/quotas</c>: the row, an audit event, then the
/// engine. What the awards add is kept apart (<c>award-quota:project:NAME</c> and <c>award-quota:organisation:NAME</c>
/// in the server state) so quotas an admin set by
/// hand are kept. It runs at start-up, every <see cref="Interval"/> of the server's clock, and when poked.
/// </summary>
public sealed partial class AwardQuotaService(Coordinator co, GpucDbFactory dbf, TimeProvider time, ILogger<AwardQuotaService> log) : BackgroundService
{
    internal const string KeyPrefix = "award-quota:";
    internal const string ProjectPrefix = KeyPrefix + "project:";
    internal const string OrgPrefix = KeyPrefix + "organisation:";
    private readonly SemaphoreSlim _poke = new(0);

    /// <summary>How often the awards are compared with the quotas (the server's clock). Default 30 s.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Passes completed (for tests and metrics).</summary>
    public long Passes { get; private set; }

    public void Poke()
    {
        if (_poke.CurrentCount == 0)
        {
            _poke.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await co.Ready.WaitAsync(stoppingToken);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ApplyAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogFailed(e);
            }

            Passes++;
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                var delay = Task.Delay(Interval, time, cts.Token);
                var poke = _poke.WaitAsync(cts.Token);
                await Task.WhenAny(delay, poke);
                await cts.CancelAsync();
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Makes every project's and organisation's award quotas what the awards say at the server's now. The organisation
    /// gets the same nominal GPUs as its projects: the engine's guarantee is hierarchical (a project is within its
    /// guarantee only when its organisation is within its own), so an award is a guarantee only if both hold it.
    /// </summary>
    public async Task ApplyAsync(CancellationToken ct = default)
    {
        var now = time.GetUtcNow();
        List<(string Project, string Organisation, string Partition, int Gpus)> awards;
        Dictionary<string, string> applied;
        await using (var db = dbf.Create())
        {
            awards = (await db.Set<AwardRow>().AsNoTracking()
                .Where(a => a.Kind == "capacity" && a.State == "active" && a.Gpus > 0 && a.Start <= now && a.End > now)
                .Select(a => new { a.Project, a.Organisation, a.Partition, a.Gpus }).ToListAsync(ct))
                .Select(a => (a.Project, a.Organisation, a.Partition, a.Gpus)).ToList();
            applied = await db.ServerState.AsNoTracking().Where(s => s.Key.StartsWith(KeyPrefix)).ToDictionaryAsync(s => s.Key, s => s.Value, ct);
        }

        var wanted = new Dictionary<string, List<QuotaSpec>>(StringComparer.Ordinal);
        foreach (var (prefix, key) in new[] { (ProjectPrefix, (Func<(string Project, string Organisation, string Partition, int Gpus), string>)(a => a.Project)), (OrgPrefix, a => a.Organisation) })
        {
            foreach (var g in awards.GroupBy(key))
            {
                wanted[prefix + g.Key] = g.GroupBy(a => a.Partition).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new QuotaSpec(p.Key, p.Sum(a => a.Gpus))).ToList();
            }
        }

        foreach (var stateKey in wanted.Keys.Union(applied.Keys).Order(StringComparer.Ordinal))
        {
            var want = wanted.GetValueOrDefault(stateKey) ?? [];
            if (Same(want, QuotasApi.FromJson(applied.GetValueOrDefault(stateKey))))
            {
                continue;
            }

            var isOrg = stateKey.StartsWith(OrgPrefix, StringComparison.Ordinal);
            var name = stateKey[(isOrg ? OrgPrefix : ProjectPrefix).Length..];
            await co.RunAsync(async engine =>
            {
                await using var db = dbf.Create();
                var state = await db.ServerState.FindAsync([stateKey], ct);
                string? stored;
                if (isOrg)
                {
                    stored = (await db.Organisations.FindAsync([name], ct))?.Quotas;
                }
                else
                {
                    stored = (await db.Projects.FindAsync([name], ct))?.Quotas;
                }

                var exists = isOrg ? db.Organisations.Local.Any(o => o.Name == name) : db.Projects.Local.Any(p => p.Name == name);
                if (!exists)
                {
                    if (state is not null)
                    {
                        db.ServerState.Remove(state);
                        await db.SaveChangesAsync(ct);
                    }

                    return false;
                }

                var quotas = Combine(QuotasApi.FromJson(stored), QuotasApi.FromJson(state?.Value), want);
                if (isOrg)
                {
                    db.Organisations.Local.First(o => o.Name == name).Quotas = QuotasApi.ToJson(quotas);
                }
                else
                {
                    db.Projects.Local.First(p => p.Name == name).Quotas = QuotasApi.ToJson(quotas);
                }

                if (want.Count == 0)
                {
                    if (state is not null)
                    {
                        db.ServerState.Remove(state);
                    }
                }
                else if (state is null)
                {
                    db.ServerState.Add(new ServerStateRow { Key = stateKey, Value = QuotasApi.ToJson(want)! });
                }
                else
                {
                    state.Value = QuotasApi.ToJson(want)!;
                }

                var kind = isOrg ? "organisation" : "project";
                db.Events.Add(co.Event("system", "award.quota", $"{kind}/{name}", isOrg ? null : name,
                    want.Count == 0 ? "awards lapsed: no award quota" : "award quota: " + string.Join("; ", want.Select(q => $"{q.Partition} {q.NominalGpus.ToString(CultureInfo.InvariantCulture)} GPUs"))));
                await db.SaveChangesAsync(ct);
                if (isOrg)
                {
                    engine.SetOrganisationQuotas(name, quotas);
                }
                else
                {
                    engine.SetProjectQuotas(name, quotas);
                }

                return true;
            });
        }
    }

    /// <summary>The project's quotas: what was set by hand (current minus what awards added before) plus what awards add now.</summary>
    internal static List<QuotaSpec> Combine(List<QuotaSpec> current, List<QuotaSpec> previousAward, List<QuotaSpec> award)
    {
        var result = new List<QuotaSpec>();
        var parts = current.Select(q => q.Partition).Union(award.Select(q => q.Partition)).Order(StringComparer.Ordinal);
        foreach (var p in parts)
        {
            var cur = current.FirstOrDefault(q => q.Partition == p);
            var manual = Math.Max(0, (cur?.NominalGpus ?? 0) - (previousAward.FirstOrDefault(q => q.Partition == p)?.NominalGpus ?? 0));
            var add = award.FirstOrDefault(q => q.Partition == p)?.NominalGpus ?? 0;
            var nominal = manual + add;
            var lending = cur?.LendingLimitGpus is { } l ? Math.Min(l, nominal) : (double?)null;
            if (nominal > 0 || cur?.BorrowingLimitGpus is not null || lending is not null)
            {
                result.Add(new QuotaSpec(p, nominal, cur?.BorrowingLimitGpus, lending));
            }
        }

        return result;
    }

    private static bool Same(List<QuotaSpec> a, List<QuotaSpec> b) =>
        a.Count == b.Count && a.All(q => b.Any(r => r.Partition == q.Partition && r.NominalGpus == q.NominalGpus));

    [LoggerMessage(EventId = 140, Level = LogLevel.Error, Message = "applying award quotas failed")]
    private partial void LogFailed(Exception e);
}
