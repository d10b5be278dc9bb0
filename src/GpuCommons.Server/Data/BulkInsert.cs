using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using System.Text;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;
using Microsoft.EntityFrameworkCore.Storage;

namespace GpuCommons.Server.Data;

/// <summary>
/// Multi-row <c>INSERT … VALUES (…), (…)</c> of new rows, several tables in one command, so that a group of new
/// submissions costs one round trip to the database. Columns, names and value conversions come from the EF Core
/// model, so a row written here reads back exactly as one written by <c>SaveChanges</c>; the change tracker, most of
/// the cost of many small inserts, is skipped. Store-generated keys (the events' id) are left to the database and
/// not read back.
/// </summary>
internal sealed class BulkInsert(GpucDb db)
{
    // SQLite binds at most 32,766 parameters per statement, PostgreSQL 65,535 per command.
    private const int MaxParameters = 30_000;

    /// <summary>
    /// Parameters per command: on SQLite <see cref="BulkUpdate.MaxSqliteParameters"/> (Microsoft.Data.Sqlite also binds
    /// every parameter of a command to each of its statements, so a larger command costs n²). Callers on SQLite always
    /// write inside a transaction.
    /// </summary>
    private readonly int _maxParameters = BulkUpdate.IsSqlite(db) ? BulkUpdate.MaxSqliteParameters : MaxParameters;

    private static readonly ConcurrentDictionary<(Type Context, Type Entity), Plan> Plans = new();

    private readonly List<(StringBuilder Sql, List<(RelationalTypeMapping Mapping, object? Value, bool Nullable)> Values)> _commands = [];

    private sealed record Plan(string Head, IProperty[] Properties, RelationalTypeMapping[] Mappings);

    /// <summary>Commands the statements take (a command binds at most 30,000 values; 500 on SQLite).</summary>
    public int Commands => _commands.Count;

    /// <summary>Adds INSERT statements for <paramref name="rows"/> (nothing is sent yet).</summary>
    public BulkInsert Add<T>(IReadOnlyList<T> rows)
        where T : class
    {
        if (rows.Count == 0)
        {
            return this;
        }

        var plan = Plans.GetOrAdd((db.GetType(), typeof(T)), static (key, db) => Build(db, key.Entity), db);
        var columns = plan.Properties.Length;
        var r = 0;
        while (r < rows.Count)
        {
            if (_commands.Count == 0 || _commands[^1].Values.Count + columns > _maxParameters)
            {
                _commands.Add((new StringBuilder(), []));
            }

            var (sql, values) = _commands[^1];
            var room = Math.Max(1, (_maxParameters - values.Count) / columns);
            var count = Math.Min(room, rows.Count - r);
            sql.Append(plan.Head);
            for (var i = 0; i < count; i++, r++)
            {
                sql.Append(i == 0 ? "(" : ", (");
                for (var c = 0; c < columns; c++)
                {
                    sql.Append(c == 0 ? "@p" : ", @p").Append(values.Count.ToString(CultureInfo.InvariantCulture));
                    values.Add((plan.Mappings[c], plan.Properties[c].GetGetter().GetClrValueUsingContainingEntity(rows[r]), plan.Properties[c].IsNullable));
                }

                sql.Append(')');
            }

            sql.Append(";\n");
        }

        return this;
    }

    /// <summary>
    /// Sends the statements: in the context's current transaction when there is one; otherwise each command on its
    /// own, which PostgreSQL runs as one implicit transaction (all of its statements or none).
    /// </summary>
    public async Task ExecuteAsync(CancellationToken ct)
    {
        var transaction = db.Database.CurrentTransaction?.GetDbTransaction();
        if (transaction is null && _commands.Count > 1)
        {
            throw new InvalidOperationException("inserts that take more than one command run inside a transaction");
        }

        var connection = db.Database.GetDbConnection();
        var opened = false;
        if (connection.State != System.Data.ConnectionState.Open)
        {
            await db.Database.OpenConnectionAsync(ct);
            opened = true;
        }

        try
        {
            foreach (var (sql, values) in _commands)
            {
                await using var cmd = connection.CreateCommand();
                cmd.Transaction = transaction;
                for (var i = 0; i < values.Count; i++)
                {
                    var (mapping, value, nullable) = values[i];
                    cmd.Parameters.Add(mapping.CreateParameter(cmd, "@p" + i.ToString(CultureInfo.InvariantCulture), value, nullable));
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

        _commands.Clear();
    }

    private static Plan Build(GpucDb db, Type type)
    {
        var entity = db.Model.FindEntityType(type) ?? throw new InvalidOperationException($"{type.Name} is not in the model");
        var helper = db.GetService<ISqlGenerationHelper>();
        var table = StoreObjectIdentifier.Table(entity.GetTableName()!, entity.GetSchema());
        var properties = entity.GetProperties()
            .Where(p => !(p.IsPrimaryKey() && p.ValueGenerated != ValueGenerated.Never))
            .ToArray();
        var head = new StringBuilder("INSERT INTO ")
            .Append(helper.DelimitIdentifier(table.Name, table.Schema))
            .Append(" (")
            .AppendJoin(", ", properties.Select(p => helper.DelimitIdentifier(p.GetColumnName(table)!)))
            .Append(") VALUES ")
            .ToString();
        return new Plan(head, properties, properties.Select(p => (RelationalTypeMapping)p.GetRelationalTypeMapping()).ToArray());
    }
}
