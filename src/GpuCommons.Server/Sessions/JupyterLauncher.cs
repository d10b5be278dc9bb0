namespace GpuCommons.Server.Sessions;

/// <summary>
/// The command of a Jupyter session job: a small Python program (Debian's python3-notebook on the node, or the image's
/// python3 in a container) that picks a free port, starts Jupyter there with the session's secret as its token and
/// <c>/sessions/ID/</c> as its base URL, waits until it answers, reports host and port back to the server
/// (<c>POST GPUC_SESSION_URL</c> with the secret as bearer), and then waits for it, passing signals on. The token travels
/// in Jupyter's environment (JUPYTER_TOKEN), never on a command line other users can read.
/// </summary>
public static class JupyterLauncher
{
    public const string Kind = "jupyter";

    internal const string Script =
        """
        import json, os, signal, socket, subprocess, sys, time, urllib.request
        job = os.environ["GPUC_JOB_ID"]
        secret = os.environ.pop("GPUC_SESSION_SECRET")
        url = os.environ.pop("GPUC_SESSION_URL")
        bind = os.environ.pop("GPUC_SESSION_BIND", "127.0.0.1")
        s = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
        s.bind((bind, 0)); port = s.getsockname()[1]; s.close()
        host = bind if bind in ("127.0.0.1", "::1") else socket.getfqdn()
        env = dict(os.environ, JUPYTER_TOKEN=secret)
        cmd = [sys.executable, "-m", "notebook", "--no-browser", "--ip=" + bind, "--port=%d" % port, "--port-retries=0",
               "--NotebookApp.base_url=/sessions/%s/" % job, "--NotebookApp.allow_remote_access=True",
               "--NotebookApp.notebook_dir=" + os.getcwd(), "--NotebookApp.quit_button=False"]
        if os.getuid() == 0:
            cmd.append("--allow-root")
        p = subprocess.Popen(cmd, env=env)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, lambda n, f: p.send_signal(signal.SIGTERM))
        deadline = time.time() + 300
        while True:
            if p.poll() is not None:
                sys.exit("gpuc: jupyter exited with %d before it listened" % p.returncode)
            try:
                socket.create_connection((bind, port), 1).close(); break
            except OSError:
                if time.time() > deadline:
                    p.terminate(); sys.exit("gpuc: jupyter did not listen within 300 s")
                time.sleep(0.2)
        body = json.dumps({"host": host, "port": port}).encode()
        req = urllib.request.Request(url, body, {"Content-Type": "application/json", "Authorization": "Bearer " + secret})
        for attempt in range(10):
            try:
                urllib.request.urlopen(req, timeout=30).read(); print("gpuc: session ready on %s:%d" % (host, port), flush=True); break
            except Exception as e:
                print("gpuc: could not report the session (%s), retrying" % e, file=sys.stderr, flush=True); time.sleep(2)
        else:
            p.terminate(); sys.exit("gpuc: could not report the session to the server")
        sys.exit(p.wait())
        """;

    /// <summary>The job's command.</summary>
    public static List<string> Command() => ["python3", "-c", Script];

    /// <summary>Whether a job's command is the session launcher's.</summary>
    public static bool IsLauncher(IReadOnlyList<string> command) =>
        command is { Count: 3 } && command[0] == "python3" && command[1] == "-c" && string.Equals(command[2], Script, StringComparison.Ordinal);
}
