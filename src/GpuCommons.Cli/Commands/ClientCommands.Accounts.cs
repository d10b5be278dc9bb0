using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace GpuCommons.Cli.Commands;

/// <summary>Users, projects and the POSIX accounts their jobs run as (<c>gpuc users</c>, <c>gpuc projects</c>, <c>gpuc whoami</c>).</summary>
internal static partial class ClientCommands
{
    private static Command Whoami()
    {
        var c = new Command("whoami", "Who your token belongs to, your projects, and the account your jobs run as");
        var common = AddCommon(c);
        c.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(common.Server), parse.GetValue(common.Token));
            var me = await api.SendAsync(HttpMethod.Get, "/api/me", null, ct);
            if (parse.GetValue(common.Json))
            {
                Print(me);
                return 0;
            }

            var projects = me?["projects"]?.AsObject().Select(p => $"{p.Key} ({S(p.Value)})") ?? [];
            var mode = S(me?["accounts"]?["mode"]);
            Console.WriteLine($"user:      {Display.Safe(S(me?["name"]))} ({S(me?["role"])})");
            Console.WriteLine($"projects:  {Display.Safe(string.Join(", ", projects))}");
            Console.WriteLine(mode == "single-user"
                ? $"jobs run as: {Display.Safe(S(me?["posixName"]))} (uid {S(me?["uid"])}), the server's own account: single-user mode"
                : $"jobs run as: {Display.Safe(S(me?["posixName"]))}{(me?["uid"] is null ? "" : $" (uid {S(me["uid"])})")}, with each project's group");
            return 0;
        });
        return c;
    }

    private static Command Users()
    {
        var users = new Command("users", "Users and the POSIX accounts their jobs run as (admin)");

        var list = new Command("list", "Every user, their role and account");
        var c1 = AddCommon(list);
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c1.Server), parse.GetValue(c1.Token));
            var all = new JsonArray();
            string? after = null;
            do
            {
                var page = await api.SendAsync(HttpMethod.Get, "/api/users?limit=1000" + (after is null ? "" : "&after=" + Uri.EscapeDataString(after)), null, ct);
                foreach (var u in page?["items"]?.AsArray() ?? [])
                {
                    all.Add(u!.DeepClone());
                }

                after = page?["next"]?.ToString();
            }
            while (after is not null);

            if (parse.GetValue(c1.Json))
            {
                Print(all);
                return 0;
            }

            var t = new Table().AddColumns("USER", "ROLE", "ACCOUNT", "UID");
            foreach (var u in all)
            {
                t.AddRow(Display.Cell(S(u!["name"])), S(u["role"]), Display.Cell((S(u["posixName"]) is { Length: > 0 } n ? n : "(default rule)")), S(u["uid"]));
            }

            AnsiConsole.Write(t);
            return 0;
        });

        var name = new Argument<string>("user") { Description = "The user" };
        var posixName = new Option<string>("--posix-name") { Description = "POSIX login their jobs run as (must exist, or the server provisions it)", Required = true };
        var set = new Command("set", "Map a user to the POSIX account their jobs run as") { name, posixName };
        var c2 = AddCommon(set);
        set.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c2.Server), parse.GetValue(c2.Token));
            var u = await api.SendAsync(HttpMethod.Patch, $"/api/users/{Uri.EscapeDataString(parse.GetValue(name)!)}",
                new JsonObject { ["posixName"] = parse.GetValue(posixName) }, ct);
            if (parse.GetValue(c2.Json))
            {
                Print(u);
                return 0;
            }

            Console.WriteLine($"{Display.Safe(S(u?["name"]))}: jobs run as {Display.Safe(S(u?["posixName"]))} (uid {S(u?["uid"])})");
            return 0;
        });

        var showName = new Argument<string>("user") { Description = "The user" };
        var show = new Command("show", "A user and their account") { showName };
        var c3 = AddCommon(show);
        show.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c3.Server), parse.GetValue(c3.Token));
            var u = await api.SendAsync(HttpMethod.Get, $"/api/users/{Uri.EscapeDataString(parse.GetValue(showName)!)}", null, ct);
            if (parse.GetValue(c3.Json))
            {
                Print(u);
                return 0;
            }

            Console.WriteLine($"user:     {Display.Safe(S(u?["name"]))} ({S(u?["role"])})");
            Console.WriteLine($"account:  {(u?["posixName"] is null ? "(default rule: see docs/accounts.md)" : $"{Display.Safe(S(u["posixName"]))} (uid {S(u["uid"])})")}");
            return 0;
        });

        users.Subcommands.Add(list);
        users.Subcommands.Add(show);
        users.Subcommands.Add(set);
        return users;
    }

    private static Command Projects()
    {
        var projects = new Command("projects", "Projects and the POSIX groups their jobs run with");
        var name = new Argument<string>("project") { Description = "The project" };
        var group = new Option<string>("--posix-group") { Description = "POSIX group the project's jobs run with (must exist, or the server provisions it)", Required = true };
        var set = new Command("set", "Map a project to the POSIX group its jobs run with (admin)") { name, group };
        var c1 = AddCommon(set);
        set.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c1.Server), parse.GetValue(c1.Token));
            var p = await api.SendAsync(HttpMethod.Patch, $"/api/projects/{Uri.EscapeDataString(parse.GetValue(name)!)}",
                new JsonObject { ["posixGroup"] = parse.GetValue(group) }, ct);
            if (parse.GetValue(c1.Json))
            {
                Print(p);
                return 0;
            }

            Console.WriteLine($"{Display.Safe(S(p?["name"]))}: jobs run with group {Display.Safe(S(p?["posixGroup"]))} (gid {S(p?["gid"])})");
            return 0;
        });

        var list = new Command("list", "The projects you can see, with their organisation and group");
        var c2 = AddCommon(list);
        list.SetAction(async (parse, ct) =>
        {
            using var api = Api.From(parse.GetValue(c2.Server), parse.GetValue(c2.Token));
            var page = await api.SendAsync(HttpMethod.Get, "/api/projects?limit=1000", null, ct);
            if (parse.GetValue(c2.Json))
            {
                Print(page?["items"]);
                return 0;
            }

            var t = new Table().AddColumns("PROJECT", "ORGANISATION", "GROUP", "GID");
            foreach (var p in page?["items"]?.AsArray() ?? [])
            {
                t.AddRow(Display.Cell(S(p!["name"])), Display.Cell(S(p["organisation"])),
                    Display.Cell((S(p["posixGroup"]) is { Length: > 0 } g ? g : "(default rule)")), S(p["gid"]));
            }

            AnsiConsole.Write(t);
            return 0;
        });

        projects.Subcommands.Add(list);
        projects.Subcommands.Add(set);
        return projects;
    }
}
