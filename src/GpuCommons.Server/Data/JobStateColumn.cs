using GpuCommons.Contracts;
using GpuCommons.Core.Jobs;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace GpuCommons.Server.Data;

/// <summary>
/// <c>jobs.State</c> holds a <see cref="JobState"/> as its wire name (<c>pending</c>, …), the text every release has
/// stored, so rows written by this server and by the previous release read the same, and queries compare with the
/// same strings.
/// </summary>
internal static class JobStateColumn
{
    public static readonly ValueConverter<JobState, string> Converter = new(s => s.ToWire(), text => JobStateNames.Parse(text));
}
