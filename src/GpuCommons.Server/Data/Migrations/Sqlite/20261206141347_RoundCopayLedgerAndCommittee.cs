using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Sqlite
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
                type: "REAL",
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.AddColumn<double>(
                name: "Payable",
                table: "ledger",
                type: "REAL",
                precision: 20,
                scale: 4,
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.AddColumn<double>(
                name: "CopayShare",
                table: "allocations",
                type: "REAL",
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.CreateTable(
                name: "committee_members",
                columns: table => new
                {
                    CallId = table.Column<string>(type: "TEXT", nullable: false),
                    User = table.Column<string>(type: "TEXT", nullable: false),
                    AddedBy = table.Column<string>(type: "TEXT", nullable: false),
                    Added = table.Column<long>(type: "INTEGER", nullable: false)
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
