using GpuCommons.Server.Leadership;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Postgres
{
    /// <summary>
    /// Leader and standbys (PostgreSQL only; SQLite is single-instance and has no such tables): the lease row, the
    /// standbys' submission inbox, and the fence trigger on every table. Expand-only: the previous release runs on the
    /// result unchanged (its sessions carry no epoch, so the fence lets them write), see docs/high-availability.md.
    /// The tables are outside the EF model (they are read and written with plain SQL), so the model snapshot is unchanged.
    /// </summary>
    [DbContext(typeof(PostgresGpucDb))]
    [Migration("20261206115907_Leadership")]
    public partial class Leadership : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(FenceSql.CreateTables);
            migrationBuilder.Sql(FenceSql.CreateFunction);
            migrationBuilder.Sql(FenceSql.AttachAll);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql(FenceSql.Drop);
        }
    }
}
