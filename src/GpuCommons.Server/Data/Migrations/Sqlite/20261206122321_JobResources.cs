using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class JobResources : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<int>(
                name: "CpusPerGpu",
                table: "jobs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "CpusPerNode",
                table: "jobs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Features",
                table: "jobs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "GpuModels",
                table: "jobs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "MemoryMiBPerGpu",
                table: "jobs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<long>(
                name: "MemoryMiBPerNode",
                table: "jobs",
                type: "INTEGER",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "CpusPerGpu",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "CpusPerNode",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "Features",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "GpuModels",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "MemoryMiBPerGpu",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "MemoryMiBPerNode",
                table: "jobs");
        }
    }
}
