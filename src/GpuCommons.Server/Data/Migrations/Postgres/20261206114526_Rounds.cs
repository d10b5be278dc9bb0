using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace GpuCommons.Server.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class Rounds : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "awards",
                columns: table => new
                {
                    Id = table.Column<string>(type: "text", nullable: false),
                    ProposalId = table.Column<long>(type: "bigint", nullable: false),
                    CallId = table.Column<string>(type: "text", nullable: false),
                    Project = table.Column<string>(type: "text", nullable: false),
                    Organisation = table.Column<string>(type: "text", nullable: false),
                    OrgType = table.Column<string>(type: "text", nullable: false),
                    Partition = table.Column<string>(type: "text", nullable: false),
                    Kind = table.Column<string>(type: "text", nullable: false),
                    Gpus = table.Column<int>(type: "integer", nullable: false),
                    GpuHours = table.Column<double>(type: "double precision", nullable: false),
                    Start = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    End = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    CopayShare = table.Column<double>(type: "double precision", nullable: false),
                    State = table.Column<string>(type: "text", nullable: false),
                    AllocationId = table.Column<string>(type: "text", nullable: false),
                    Created = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_awards", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "calls",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TitleEn = table.Column<string>(type: "text", nullable: false),
                    TitleKo = table.Column<string>(type: "text", nullable: false),
                    TextEn = table.Column<string>(type: "text", nullable: false),
                    TextKo = table.Column<string>(type: "text", nullable: false),
                    Opens = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Closes = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Rules = table.Column<string>(type: "text", nullable: false),
                    Capacity = table.Column<string>(type: "text", nullable: true),
                    Phase = table.Column<string>(type: "text", nullable: false),
                    CreatedBy = table.Column<string>(type: "text", nullable: false),
                    Created = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Decided = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_calls", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "proposals",
                columns: table => new
                {
                    Id = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityByDefaultColumn),
                    CallId = table.Column<string>(type: "text", nullable: false),
                    Project = table.Column<string>(type: "text", nullable: false),
                    Organisation = table.Column<string>(type: "text", nullable: false),
                    OrgType = table.Column<string>(type: "text", nullable: false),
                    Title = table.Column<string>(type: "text", nullable: false),
                    Team = table.Column<string>(type: "text", nullable: false),
                    Partition = table.Column<string>(type: "text", nullable: false),
                    Gpus = table.Column<int>(type: "integer", nullable: false),
                    StartMonth = table.Column<int>(type: "integer", nullable: false),
                    Months = table.Column<int>(type: "integer", nullable: false),
                    GpuHours = table.Column<double>(type: "double precision", nullable: false),
                    Justification = table.Column<string>(type: "text", nullable: false),
                    Regional = table.Column<bool>(type: "boolean", nullable: false),
                    Youth = table.Column<bool>(type: "boolean", nullable: false),
                    State = table.Column<string>(type: "text", nullable: false),
                    CreatedBy = table.Column<string>(type: "text", nullable: false),
                    Created = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Submitted = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    Score = table.Column<double>(type: "double precision", nullable: true),
                    Rank = table.Column<int>(type: "integer", nullable: true),
                    AwardedGpus = table.Column<int>(type: "integer", nullable: false),
                    AwardedMonths = table.Column<int>(type: "integer", nullable: false),
                    AwardedGpuHours = table.Column<double>(type: "double precision", nullable: false),
                    Reason = table.Column<string>(type: "text", nullable: true),
                    Decided = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_proposals", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "reviewer_profiles",
                columns: table => new
                {
                    User = table.Column<string>(type: "text", nullable: false),
                    Organisation = table.Column<string>(type: "text", nullable: false),
                    Conflicts = table.Column<string>(type: "text", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_reviewer_profiles", x => x.User);
                });

            migrationBuilder.CreateTable(
                name: "reviews",
                columns: table => new
                {
                    ProposalId = table.Column<long>(type: "bigint", nullable: false),
                    Reviewer = table.Column<string>(type: "text", nullable: false),
                    CallId = table.Column<string>(type: "text", nullable: false),
                    Scores = table.Column<string>(type: "text", nullable: true),
                    Comment = table.Column<string>(type: "text", nullable: true),
                    Assigned = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Submitted = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_reviews", x => new { x.ProposalId, x.Reviewer });
                });

            migrationBuilder.CreateIndex(
                name: "IX_awards_CallId",
                table: "awards",
                column: "CallId");

            migrationBuilder.CreateIndex(
                name: "IX_awards_Project",
                table: "awards",
                column: "Project");

            migrationBuilder.CreateIndex(
                name: "IX_awards_ProposalId",
                table: "awards",
                column: "ProposalId",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_proposals_CallId_State",
                table: "proposals",
                columns: new[] { "CallId", "State" });

            migrationBuilder.CreateIndex(
                name: "IX_proposals_Project",
                table: "proposals",
                column: "Project");

            migrationBuilder.CreateIndex(
                name: "IX_reviews_CallId",
                table: "reviews",
                column: "CallId");

            migrationBuilder.CreateIndex(
                name: "IX_reviews_Reviewer_CallId",
                table: "reviews",
                columns: new[] { "Reviewer", "CallId" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "awards");

            migrationBuilder.DropTable(
                name: "calls");

            migrationBuilder.DropTable(
                name: "proposals");

            migrationBuilder.DropTable(
                name: "reviewer_profiles");

            migrationBuilder.DropTable(
                name: "reviews");
        }
    }
}
