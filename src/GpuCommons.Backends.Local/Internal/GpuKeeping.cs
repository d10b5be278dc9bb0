using System.Text.Json;

namespace GpuCommons.Backends.Local.Internal;

/// <summary>The real GPUs a node was found with, kept in the state folder across restarts.</summary>
internal static class GpuKeeping
{
    public static List<DiscoveredGpu>? Load(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), JobFileJson.Default.ListDiscoveredGpu);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Local backend GPU inventory '{path}' is not valid ({e.Message}); delete it to discover the GPUs again.", e);
        }
    }

    public static void Save(string path, IReadOnlyList<DiscoveredGpu> gpus)
    {
        PrivateFiles.WriteAllText(path, JsonSerializer.Serialize(gpus.ToList(), JobFileJson.Default.ListDiscoveredGpu));
    }
}
