namespace GpuCommons.Backends.Local.Internal;

/// <summary>
/// The backend's own files: folders 0700, files 0600, whatever the server's umask, so that no job and no other account
/// reads a job's state, its exit code or the GPU inventory.
/// </summary>
internal static class PrivateFiles
{
    public const UnixFileMode DirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Creates <paramref name="path"/> (and missing parents) and makes it 0700.</summary>
    public static void CreateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException();
        }

        Directory.CreateDirectory(path, DirectoryMode);
        File.SetUnixFileMode(path, DirectoryMode);
    }

    /// <summary>Sets the permission bits of <paramref name="path"/>.</summary>
    public static void SetMode(string path, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException();
        }

        File.SetUnixFileMode(path, mode);
    }

    /// <summary>Opens <paramref name="path"/> for writing, creating it with <paramref name="createMode"/> (less the umask) when missing.</summary>
    public static FileStream Open(string path, System.IO.FileMode mode, UnixFileMode createMode)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException();
        }

        return new FileStream(path, new FileStreamOptions { Mode = mode, Access = FileAccess.Write, UnixCreateMode = createMode });
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> atomically (a 0600 temporary file renamed over it).</summary>
    public static void WriteAllText(string path, string text)
    {
        var tmp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        WriteNew(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> in place, mode 0600.</summary>
    public static void WriteNew(string path, string text)
    {
        using (var stream = Open(path, System.IO.FileMode.Create, FileMode))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(text);
        }

        SetMode(path, FileMode);
    }
}
