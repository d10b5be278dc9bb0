using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class PosixAccounts : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "PosixName",
                table: "users",
                type: "character varying(32)",
                maxLength: 32,
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "Uid",
                table: "users",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "Gid",
                table: "projects",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "PosixGroup",
                table: "projects",
                type: "character varying(32)",
                maxLength: 32,
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_users_PosixName",
                table: "users",
                column: "PosixName",
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_users_PosixName",
                table: "users");

            migrationBuilder.DropColumn(
                name: "PosixName",
                table: "users");

            migrationBuilder.DropColumn(
                name: "Uid",
                table: "users");

            migrationBuilder.DropColumn(
                name: "Gid",
                table: "projects");

            migrationBuilder.DropColumn(
                name: "PosixGroup",
                table: "projects");
        }
    }
}
