using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

namespace GpuCommons.Server.Data;

/// <summary>
/// <c>UPDATE … SET</c> of a few named columns of many rows by key, as few commands as the parameter limit allows, in
/// the context's current transaction. Names and value conversions come from the EF Core model (as in
/// <see cref="BulkInsert"/>), so the values read back as if <c>SaveChanges</c> wrote them; the change tracker, which
/// costs far more than the statements for a thousand rows, is skipped. A wave of a thousand starts is one command.
/// </summary>
internal sealed class BulkUpdate(GpucDb db)
{
    private const int MaxParameters = 30_000;

    /// <summary>
    /// Parameters per SQLite command: SQLite finds a named parameter by a linear search of the statement's names, so
    /// binding n of them costs n² (9,000 parameters, a thousand rows, took 0.45 s). Commands of at most this many keep
    /// a thousand rows at a few milliseconds.
    /// </summary>
    internal const int MaxSqliteParameters = 500;

    /// <summary>Whether the context writes to SQLite (whose commands are held to <see cref="MaxSqliteParameters"/>).</summary>
    internal static bool IsSqlite(GpucDb db) => db.Database.ProviderName?.Contains("Sqlite", StringComparison.Ordinal) == true;

    private static readonly ConcurrentDictionary<(Type Context, Type Entity, string Columns), Plan> Plans = new();

    private sealed record Plan(string Table, string[] Columns, IProperty[] Properties, RelationalTypeMapping[] Mappings, string KeyColumn, IProperty Key, RelationalTypeMapping KeyMapping);

    /// <summary>
    /// Writes <paramref name="columns"/> (property names; null: every column but the key) of <paramref name="rows"/>,
    /// matched by primary key.
    /// </summary>
    public async Task ExecuteAsync<T>(IReadOnlyList<T> rows, string[]? columns, CancellationToken ct)
        where T : class
    {
        if (rows.Count == 0)
        {
            return;
        }

        var plan = Plans.GetOrAdd((db.GetType(), typeof(T), columns is null ? "*" : string.Join(',', columns)), static (key, db) => Build(db, key.Entity, key.Columns == "*" ? null : key.Columns.Split(',')), db);
        var connection = db.Database.GetDbConnection();
        var opened = false;
        if (connection.State != System.Data.ConnectionState.Open)
        {
            await db.Database.OpenConnectionAsync(ct);
            opened = true;
        }

        var sqlite = IsSqlite(db);
        try
        {
            var perRow = plan.Properties.Length + 1;
            var chunk = Math.Max(1, (sqlite ? MaxSqliteParameters : MaxParameters) / perRow);
            for (var start = 0; start < rows.Count; start += chunk)
            {
                await using var cmd = connection.CreateCommand();
                cmd.Transaction = db.Database.CurrentTransaction?.GetDbTransaction();
                var sql = new StringBuilder();
                var p = 0;
                string Bind(RelationalTypeMapping mapping, object? value, bool nullable)
                {
                    var name = "@u" + p++.ToString(CultureInfo.InvariantCulture);
                    cmd.Parameters.Add(mapping.CreateParameter(cmd, name, value, nullable));
                    return name;
                }

                var batch = rows.Skip(start).Take(chunk).ToList();
                if (sqlite)
                {
                    // One statement: Microsoft.Data.Sqlite binds every parameter of a command to each of its statements,
                    // so a thousand one-row statements cost a million bindings.
                    sql.Append("WITH v(k");
                    for (var c = 0; c < plan.Properties.Length; c++)
                    {
                        sql.Append(", c").Append(c.ToString(CultureInfo.InvariantCulture));
                    }

                    sql.Append(") AS (VALUES ");
                    for (var r = 0; r < batch.Count; r++)
                    {
                        sql.Append(r == 0 ? "(" : ", (").Append(Bind(plan.KeyMapping, plan.Key.GetGetter().GetClrValueUsingContainingEntity(batch[r]), false));
                        for (var c = 0; c < plan.Properties.Length; c++)
                        {
                            sql.Append(", ").Append(Bind(plan.Mappings[c], plan.Properties[c].GetGetter().GetClrValueUsingContainingEntity(batch[r]), plan.Properties[c].IsNullable));
                        }

                        sql.Append(')');
                    }

                    sql.Append(") UPDATE ").Append(plan.Table).Append(" SET ");
                    for (var c = 0; c < plan.Properties.Length; c++)
                    {
                        sql.Append(c == 0 ? "" : ", ").Append(plan.Columns[c]).Append(" = v.c").Append(c.ToString(CultureInfo.InvariantCulture));
                    }

                    sql.Append(" FROM v WHERE ").Append(plan.Table).Append('.').Append(plan.KeyColumn).Append(" = v.k;");
                }
                else
                {
                    foreach (var row in batch)
                    {
                        sql.Append("UPDATE ").Append(plan.Table).Append(" SET ");
                        for (var c = 0; c < plan.Properties.Length; c++)
                        {
                            sql.Append(c == 0 ? "" : ", ").Append(plan.Columns[c]).Append(" = ")
                                .Append(Bind(plan.Mappings[c], plan.Properties[c].GetGetter().GetClrValueUsingContainingEntity(row), plan.Properties[c].IsNullable));
                        }

                        sql.Append(" WHERE ").Append(plan.KeyColumn).Append(" = ").Append(Bind(plan.KeyMapping, plan.Key.GetGetter().GetClrValueUsingContainingEntity(row), false)).Append(";\n");
                    }
                }

                cmd.CommandText = sql.ToString();
                await cmd.ExecuteNonQueryAsync(ct);
            }
        }
        finally
        {
            if (opened)
            {
                await db.Database.CloseConnectionAsync();
            }
        }
    }

    private static Plan Build(GpucDb db, Type type, string[]? names)
    {
        var entity = db.Model.FindEntityType(type) ?? throw new InvalidOperationException($"{type.Name} is not in the model");
        var helper = db.GetService<ISqlGenerationHelper>();
        var table = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());
        names ??= entity.GetProperties().Where(p => !p.IsPrimaryKey()).Select(p => p.Name).ToArray();
        var properties = names.Select(n => entity.FindProperty(n) ?? throw new InvalidOperationException($"{type.Name}.{n} is not in the model")).ToArray();
        var key = entity.FindPrimaryKey()!.Properties.Single();
        return new Plan(
            helper.DelimitIdentifier(table.Name, table.Schema),
            properties.Select(p => helper.DelimitIdentifier(p.GetColumnName(table)!)).ToArray(),
            properties,
            properties.Select(p => (RelationalTypeMapping)p.GetRelationalTypeMapping()).ToArray(),
            helper.DelimitIdentifier(key.GetColumnName(table)!),
            key,
            (RelationalTypeMapping)key.GetRelationalTypeMapping());
    }
}
