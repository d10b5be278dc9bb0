using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class Discrepancies : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "discrepancies",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    Key = table.Column<string>(type: "character varying(512)", maxLength: 512, nullable: false),
                    Kind = table.Column<string>(type: "character varying(32)", maxLength: 32, nullable: false),
                    JobId = table.Column<long>(type: "bigint", nullable: true),
                    Attempt = table.Column<int>(type: "integer", nullable: true),
                    ExternalId = table.Column<string>(type: "text", nullable: true),
                    Node = table.Column<string>(type: "text", nullable: true),
                    Detail = table.Column<string>(type: "text", nullable: false),
                    SuggestedAction = table.Column<string>(type: "text", nullable: false),
                    FirstSeen = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    LastSeen = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Seen = table.Column<int>(type: "integer", nullable: false),
                    Resolved = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    Action = table.Column<string>(type: "text", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_discrepancies", x => x.Id);
                });

            migrationBuilder.CreateIndex(
                name: "IX_discrepancies_LastSeen",
                table: "discrepancies",
                column: "LastSeen");

            migrationBuilder.CreateIndex(
                name: "IX_discrepancies_Resolved_Key",
                table: "discrepancies",
                columns: new[] { "Resolved", "Key" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "discrepancies");
        }
    }
}
