using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class JobPageIndexes : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_jobs_State",
                table: "jobs");

            migrationBuilder.CreateIndex(
                name: "IX_jobs_Project_State_Id",
                table: "jobs",
                columns: new[] { "Project", "State", "Id" });

            migrationBuilder.CreateIndex(
                name: "IX_jobs_State_Id",
                table: "jobs",
                columns: new[] { "State", "Id" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_jobs_Project_State_Id",
                table: "jobs");

            migrationBuilder.DropIndex(
                name: "IX_jobs_State_Id",
                table: "jobs");

            migrationBuilder.CreateIndex(
                name: "IX_jobs_State",
                table: "jobs",
                column: "State");
        }
    }
}
