using System.Reflection;
using System.Text.RegularExpressions;
using GpuCommons.Server.Data;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.EntityFrameworkCore.Migrations.Operations;

namespace GpuCommons.Server.Tests.Upgrade;

/// <summary>One column of a PostgreSQL schema: its type as <c>format_type</c> writes it, and whether an insert may leave it out.</summary>
public sealed record SchemaColumn(string Table, string Column, string Type, bool Nullable, bool HasDefault);

/// <summary>
/// The expand-then-contract rule (docs/high-availability.md, "Upgrades"), as checks: what the previous release reads
/// (its schema, frozen in <c>Upgrade/previous-release/</c>) must still be there, with the same type, and nothing this
/// release adds may refuse the previous release's inserts. Two servers of neighbouring releases then run against one
/// database during a rolling upgrade.
/// </summary>
public static partial class UpgradeRules
{
    public static string FrozenDir => Path.Combine(AppContext.BaseDirectory, "Upgrade", "previous-release");

    /// <summary>The previous release's PostgreSQL columns (<c>columns.tsv</c>: table, column, type, nullable, default).</summary>
    public static IReadOnlyList<SchemaColumn> PreviousColumns() =>
        File.ReadAllLines(Path.Combine(FrozenDir, "columns.tsv"))
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split('\t'))
            .Select(f => new SchemaColumn(f[0], f[1], f[2], f[3] == "null", f[4] == "default"))
            .ToList();

    /// <summary>The migrations the previous release shipped (PostgreSQL), oldest first.</summary>
    public static IReadOnlyList<string> PreviousMigrations() =>
        File.ReadAllLines(Path.Combine(FrozenDir, "migrations.txt")).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();

    /// <summary>The SQL the columns come from, for reading them off a live database.</summary>
    public const string ColumnsSql = """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum
        """;

    /// <summary>
    /// What in <paramref name="current"/> breaks a server of the previous release running on it: a column it reads that is
    /// gone (dropped or renamed) or has another type, a nullable column it reads (and may find null) made NOT NULL, a NOT
    /// NULL column without a default added to a table it inserts into.
    /// </summary>
    public static List<string> CompareSchemas(IReadOnlyList<SchemaColumn> previous, IReadOnlyList<SchemaColumn> current)
    {
        var now = current.ToDictionary(c => (c.Table, c.Column));
        var before = previous.ToDictionary(c => (c.Table, c.Column));
        var previousTables = previous.Select(c => c.Table).ToHashSet(StringComparer.Ordinal);
        var wrong = new List<string>();
        foreach (var p in previous)
        {
            if (!now.TryGetValue((p.Table, p.Column), out var c))
            {
                wrong.Add(previousTables.Contains(p.Table) && current.All(x => x.Table != p.Table)
                    ? $"{p.Table}: the table is gone (dropped or renamed), and the previous release reads it"
                    : $"{p.Table}.{p.Column}: the column is gone (dropped or renamed), and the previous release reads it");
                continue;
            }

            if (c.Type != p.Type)
            {
                wrong.Add($"{p.Table}.{p.Column}: type changed from {p.Type} to {c.Type}; the previous release reads it as {p.Type}");
            }

            if (p.Nullable && !c.Nullable)
            {
                wrong.Add($"{p.Table}.{p.Column}: made NOT NULL; the previous release writes null there");
            }
        }

        foreach (var c in current.Where(c => previousTables.Contains(c.Table) && !before.ContainsKey((c.Table, c.Column)) && !c.Nullable && !c.HasDefault))
        {
            wrong.Add($"{c.Table}.{c.Column}: a NOT NULL column without a default; the previous release's inserts into {c.Table} leave it out");
        }

        return wrong;
    }

    /// <summary>The PostgreSQL migrations of this build, oldest first.</summary>
    public static IReadOnlyList<(string Id, Migration Migration)> PostgresMigrations() =>
        typeof(PostgresGpucDb).Assembly.GetTypes()
            .Where(t => typeof(Migration).IsAssignableFrom(t) && !t.IsAbstract && t.GetCustomAttribute<DbContextAttribute>()?.ContextType == typeof(PostgresGpucDb))
            .Select(t => (Id: t.GetCustomAttribute<MigrationAttribute>()!.Id, Migration: (Migration)Activator.CreateInstance(t)!))
            .OrderBy(m => m.Id, StringComparer.Ordinal)
            .ToList();

    /// <summary>
    /// The same rule on a migration's operations, before any database sees them: no drop or rename of a table or column the
    /// previous release reads, no change of its type, no NOT NULL on it, no NOT NULL column without a default on its tables,
    /// no new unique or check constraint on its tables (its inserts must still pass; a unique index over a column added
    /// nullable here is safe, as the previous release leaves it null), and no raw SQL that drops, renames or
    /// retypes. Contraction (dropping what the previous release no longer reads) is allowed: those names are not in its schema.
    /// </summary>
    public static List<string> CheckOperations(string migration, IEnumerable<MigrationOperation> ops, IReadOnlyList<SchemaColumn> previous)
    {
        var tables = previous.Select(c => c.Table).ToHashSet(StringComparer.Ordinal);
        var columns = previous.ToDictionary(c => (c.Table, c.Column));
        var wrong = new List<string>();
        void Bad(string what) => wrong.Add($"{migration}: {what}");
        ops = ops.ToList();

        // Columns these operations add as nullable with no default: the previous release leaves them null, and nulls never
        // collide in a unique index (PostgreSQL and SQLite), so a unique index over one of them cannot refuse its inserts.
        var addedNull = ops.OfType<AddColumnOperation>()
            .Where(a => a.IsNullable && a.DefaultValue is null && a.DefaultValueSql is null && a.ComputedColumnSql is null)
            .Select(a => (a.Table, a.Name)).ToHashSet();
        foreach (var op in ops)
        {
            switch (op)
            {
                case DropTableOperation d when tables.Contains(d.Name):
                    Bad($"drops table {d.Name}, which the previous release reads");
                    break;
                case RenameTableOperation r when tables.Contains(r.Name):
                    Bad($"renames table {r.Name} to {r.NewName}; the previous release reads {r.Name}");
                    break;
                case DropColumnOperation d when columns.ContainsKey((d.Table, d.Name)):
                    Bad($"drops column {d.Table}.{d.Name}, which the previous release reads");
                    break;
                case RenameColumnOperation r when columns.ContainsKey((r.Table, r.Name)):
                    Bad($"renames column {r.Table}.{r.Name} to {r.NewName}; the previous release reads {r.Name}");
                    break;
                case AlterColumnOperation a when columns.TryGetValue((a.Table, a.Name), out var was):
                    if (a.OldColumn.IsNullable && !a.IsNullable)
                    {
                        Bad($"makes {a.Table}.{a.Name} NOT NULL; the previous release writes null there");
                    }

                    if ((a.ColumnType ?? a.ClrType.Name) != (a.OldColumn.ColumnType ?? a.OldColumn.ClrType?.Name ?? a.ClrType.Name))
                    {
                        Bad($"changes the type of {a.Table}.{a.Name} (was {was.Type}); the previous release reads it as that");
                    }

                    break;
                case AddColumnOperation a when tables.Contains(a.Table) && !a.IsNullable && a.DefaultValue is null && a.DefaultValueSql is null && a.ComputedColumnSql is null:
                    Bad($"adds {a.Table}.{a.Name} NOT NULL without a default; the previous release's inserts into {a.Table} leave it out");
                    break;
                case CreateIndexOperation i when i.IsUnique && tables.Contains(i.Table) && !i.Columns.Any(c => addedNull.Contains((i.Table, c))):
                    Bad($"adds unique index {i.Name} on {i.Table}; the previous release's inserts may break it");
                    break;
                case AddUniqueConstraintOperation u when tables.Contains(u.Table):
                    Bad($"adds unique constraint {u.Name} on {u.Table}; the previous release's inserts may break it");
                    break;
                case AddCheckConstraintOperation c when tables.Contains(c.Table):
                    Bad($"adds check constraint {c.Name} on {c.Table}; the previous release's inserts may break it");
                    break;
                case SqlOperation s when DestructiveSql().IsMatch(s.Sql):
                    Bad($"runs SQL that drops, renames or retypes ({DestructiveSql().Match(s.Sql).Value.Trim()}); write it as an expand now and a contract a release later");
                    break;
            }
        }

        return wrong;
    }

    [GeneratedRegex(@"\b(DROP\s+(COLUMN|TABLE)|RENAME\s+(COLUMN|TO)|ALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE|SET\s+NOT\s+NULL)\b", RegexOptions.IgnoreCase)]
    private static partial Regex DestructiveSql();
}
