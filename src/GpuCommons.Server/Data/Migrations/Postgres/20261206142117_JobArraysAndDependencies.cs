using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class JobArraysAndDependencies : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "ArrayExpanded",
                table: "jobs",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);

            migrationBuilder.AddColumn<string>(
                name: "ArrayIndices",
                table: "jobs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "ArrayJobId",
                table: "jobs",
                type: "bigint",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "ArrayMaxRunning",
                table: "jobs",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "ArrayTaskId",
                table: "jobs",
                type: "bigint",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Dependency",
                table: "jobs",
                type: "text",
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_jobs_ArrayJobId_ArrayTaskId",
                table: "jobs",
                columns: new[] { "ArrayJobId", "ArrayTaskId" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_jobs_ArrayJobId_ArrayTaskId",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "ArrayExpanded",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "ArrayIndices",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "ArrayJobId",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "ArrayMaxRunning",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "ArrayTaskId",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "Dependency",
                table: "jobs");
        }
    }
}
