using System.CommandLine;
using System.Text.Json.Nodes;
using GpuCommons.Contracts;

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

            var user = Read(me, ContractsJson.Default.UserDto);
            var projects = user.Projects?.Select(p => $"{p.Key} ({S(p.Value)})") ?? [];
            Console.WriteLine($"user:      {Display.Safe(S(user.Name))} ({S(user.Role)})");
            Console.WriteLine($"projects:  {Display.Safe(string.Join(", ", projects))}");
            Console.WriteLine(user.Accounts?.Mode == AccountsDto.SingleUser
                ? $"jobs run as: {Display.Safe(S(user.PosixName))} (uid {S(user.Uid)}), the server's own account: single-user mode"
                : $"jobs run as: {Display.Safe(S(user.PosixName))}{(user.Uid is null ? "" : $" (uid {S(user.Uid)})")}, with each project's group");
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
            var json = parse.GetValue(c1.Json);
            var raw = new List<JsonNode?>();
            var all = new List<UserDto>();
            string? after = null;
            do
            {
                var page = await api.SendAsync(HttpMethod.Get, "/api/users?limit=1000" + (after is null ? "" : "&after=" + Uri.EscapeDataString(after)), null, ct);
                var users = Read(page, ContractsJson.Default.PageUserDto);
                if (json)
                {
                    raw.AddRange(RawItems(page));
                }
                else
                {
                    all.AddRange(users.Items ?? []);
                }

                after = users.Next;
            }
            while (after is not null);

            if (json)
            {
                PrintAll(raw);
                return 0;
            }

            var t = new Output.Sheet("USER", "ROLE", "ACCOUNT", "UID");
            foreach (var u in all)
            {
                t.Add(Display.Safe(S(u.Name)), S(u.Role), Display.Safe(S(u.PosixName) is { Length: > 0 } n ? n : "(default rule)"), S(u.Uid));
            }

            t.Write();
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
                Body(new UpdateUserRequest { PosixName = parse.GetValue(posixName) }, ContractsJson.Default.UpdateUserRequest), ct);
            if (parse.GetValue(c2.Json))
            {
                Print(u);
                return 0;
            }

            var user = Read(u, ContractsJson.Default.UserDto);
            Console.WriteLine($"{Display.Safe(S(user.Name))}: jobs run as {Display.Safe(S(user.PosixName))} (uid {S(user.Uid)})");
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

            var user = Read(u, ContractsJson.Default.UserDto);
            Console.WriteLine($"user:     {Display.Safe(S(user.Name))} ({S(user.Role)})");
            Console.WriteLine($"account:  {(user.PosixName is null ? "(default rule: see docs/accounts.md)" : $"{Display.Safe(S(user.PosixName))} (uid {S(user.Uid)})")}");
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
                Body(new UpdateProjectRequest { PosixGroup = parse.GetValue(group) }, ContractsJson.Default.UpdateProjectRequest), ct);
            if (parse.GetValue(c1.Json))
            {
                Print(p);
                return 0;
            }

            var project = Read(p, ContractsJson.Default.ProjectDto);
            Console.WriteLine($"{Display.Safe(S(project.Name))}: jobs run with group {Display.Safe(S(project.PosixGroup))} (gid {S(project.Gid)})");
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
                PrintAll(RawItems(page));
                return 0;
            }

            var t = new Output.Sheet("PROJECT", "ORGANISATION", "GROUP", "GID");
            foreach (var p in Read(page, ContractsJson.Default.PageProjectDto).Items ?? [])
            {
                t.Add(Display.Safe(S(p.Name)), Display.Safe(S(p.Organisation)),
                    Display.Safe(S(p.PosixGroup) is { Length: > 0 } g ? g : "(default rule)"), S(p.Gid));
            }

            t.Write();
            return 0;
        });

        projects.Subcommands.Add(list);
        projects.Subcommands.Add(set);
        return projects;
    }
}
