// The local backend runs jobs with Linux process groups and /proc; so do its tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
