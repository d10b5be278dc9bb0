using System.Text.Json;
using System.Text.Json.Serialization;

namespace GpuCommons.Contracts;

/// <summary>
/// Source-generated JSON for the contracts, with the API's conventions (camelCase names, nulls left out). Clients read
/// answers with it: <c>JsonSerializer.Deserialize(text, ContractsJson.Default.JobDto)</c>.
/// </summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JobDto))]
[JsonSerializable(typeof(Page<JobDto>))]
[JsonSerializable(typeof(List<JobDto>))]
[JsonSerializable(typeof(SubmitJobRequest))]
[JsonSerializable(typeof(SubmitReply))]
[JsonSerializable(typeof(SubmitAccepted))]
[JsonSerializable(typeof(SessionDto))]
[JsonSerializable(typeof(List<SessionDto>))]
[JsonSerializable(typeof(StartSessionRequest))]
public sealed partial class ContractsJson : JsonSerializerContext;
