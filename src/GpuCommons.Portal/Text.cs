namespace GpuCommons.Portal;

/// <summary>Marker for the portal's strings: <c>Resources/Text.resx</c> (English) and <c>Resources/Text.ko.resx</c> (Korean).</summary>
public sealed class Text;
