using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class RoundCopayLedgerAndCommittee : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "CopayShare",
                table: "ledger",
                type: "double precision",
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.AddColumn<decimal>(
                name: "Payable",
                table: "ledger",
                type: "numeric(20,4)",
                precision: 20,
                scale: 4,
                nullable: false,
                defaultValue: 0m);

            migrationBuilder.AddColumn<double>(
                name: "CopayShare",
                table: "allocations",
                type: "double precision",
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.CreateTable(
                name: "committee_members",
                columns: table => new
                {
                    CallId = table.Column<string>(type: "text", nullable: false),
                    User = table.Column<string>(type: "text", nullable: false),
                    AddedBy = table.Column<string>(type: "text", nullable: false),
                    Added = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_committee_members", x => new { x.CallId, x.User });
                });

            migrationBuilder.CreateIndex(
                name: "IX_committee_members_User",
                table: "committee_members",
                column: "User");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "committee_members");

            migrationBuilder.DropColumn(
                name: "CopayShare",
                table: "ledger");

            migrationBuilder.DropColumn(
                name: "Payable",
                table: "ledger");

            migrationBuilder.DropColumn(
                name: "CopayShare",
                table: "allocations");
        }
    }
}
