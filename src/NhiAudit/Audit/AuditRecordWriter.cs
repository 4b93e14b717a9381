using System.Buffers;
using System.Text.Json;

namespace NhiAudit.Audit;

/// <summary>
/// Builds audit record bodies for <see cref="IAuditLog.AppendAsync"/> without allocating per record. Keep one per
/// session (it is not thread-safe); <see cref="Begin(string)"/> reuses the same buffer and JSON writer every time.
/// </summary>
/// <remarks>
/// Strings are escaped by the default <see cref="System.Text.Encodings.Web.JavaScriptEncoder"/>, so SQL text shows
/// <c>'</c>, <c>&lt;</c>, <c>&gt;</c>, <c>&amp;</c>, <c>+</c> and non-ASCII as <c>\uXXXX</c> escapes. That costs
/// readability in a raw line, never fidelity, and no record can smuggle markup into a viewer.
/// </remarks>
/// <example>
/// <code>
/// var w = records.Begin("pg.request");
/// AuditRecordWriter.WriteRawIdentity(w, sessionIdentityJson);
/// w.WriteString("sql", sql);
/// await log.AppendAsync(records.End());
/// </code>
/// </example>
public sealed class AuditRecordWriter : IDisposable
{
    // Past this, a buffer grown by one huge statement is dropped rather than kept for the whole session.
    private const int MaxRetainedCapacity = 1024 * 1024;

    private static readonly JsonEncodedText TypeName = JsonEncodedText.Encode("type");
    private static readonly JsonEncodedText IdentityName = JsonEncodedText.Encode("identity");
    private static readonly JsonEncodedText KindName = JsonEncodedText.Encode("kind");
    private static readonly JsonEncodedText SubjectName = JsonEncodedText.Encode("subject");
    private static readonly JsonEncodedText IssuerName = JsonEncodedText.Encode("issuer");
    private static readonly JsonEncodedText DisplayNameName = JsonEncodedText.Encode("name");
    private static readonly JsonEncodedText TenantName = JsonEncodedText.Encode("tenant");
    private static readonly JsonEncodedText AppName = JsonEncodedText.Encode("app");
    private static readonly JsonEncodedText MiridName = JsonEncodedText.Encode("mirid");
    private static readonly JsonEncodedText RepositoryName = JsonEncodedText.Encode("repository");
    private static readonly JsonEncodedText WorkflowName = JsonEncodedText.Encode("workflow");
    private static readonly JsonEncodedText RunIdName = JsonEncodedText.Encode("runId");
    private static readonly JsonEncodedText ShaName = JsonEncodedText.Encode("sha");

    private readonly int _initialCapacity;
    private readonly Utf8JsonWriter _writer;
    private ArrayBufferWriter<byte> _buffer;
    private bool _inRecord;

    /// <summary>Creates a writer whose buffer starts at <paramref name="initialCapacity"/> bytes and grows as records need.</summary>
    /// <param name="initialCapacity">The starting buffer size in bytes.</param>
    public AuditRecordWriter(int initialCapacity = 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(initialCapacity);
        _initialCapacity = initialCapacity;
        _buffer = new ArrayBufferWriter<byte>(initialCapacity);
        _writer = new Utf8JsonWriter(_buffer);
    }

    /// <summary>
    /// Starts a record: writes <c>{"type":<paramref name="type"/></c> and returns the JSON writer for the record's
    /// other properties. Discards any record begun and not ended.
    /// </summary>
    /// <param name="type">The record type, e.g. <c>pg.request</c>.</param>
    public Utf8JsonWriter Begin(string type)
    {
        ArgumentNullException.ThrowIfNull(type);
        StartObject();
        _writer.WriteString(TypeName, type);
        return _writer;
    }

    /// <summary>Starts a record with a pre-encoded type, which skips escaping it on every record.</summary>
    /// <param name="type">The record type, e.g. <c>JsonEncodedText.Encode("pg.request")</c> kept in a static field.</param>
    public Utf8JsonWriter Begin(JsonEncodedText type)
    {
        StartObject();
        _writer.WriteString(TypeName, type);
        return _writer;
    }

    /// <summary>Closes the record and returns its body, valid until the next <see cref="Begin(string)"/>.</summary>
    /// <exception cref="InvalidOperationException">No record was begun, or an object or array inside it is still open.</exception>
    public ReadOnlyMemory<byte> End()
    {
        if (!_inRecord)
        {
            throw new InvalidOperationException("End() without Begin()");
        }

        _writer.WriteEndObject();
        _writer.Flush();
        if (_writer.CurrentDepth != 0)
        {
            throw new InvalidOperationException("the record has an unclosed object or array");
        }

        _inRecord = false;
        return _buffer.WrittenMemory;
    }

    /// <summary>
    /// Writes property <c>identity</c>: <c>{kind, subject, issuer, name, tenant, app, mirid, repository, workflow,
    /// runId, sha}</c>, leaving out absent values. Roles and expiry are not part of it: records say who acted, the
    /// token's details stay with the session start.
    /// </summary>
    /// <param name="writer">The record's JSON writer, positioned inside an object.</param>
    /// <param name="identity">The caller's identity.</param>
    public static void WriteIdentity(Utf8JsonWriter writer, WorkloadIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WritePropertyName(IdentityName);
        WriteIdentityObject(writer, identity);
    }

    /// <summary>Writes property <c>policy</c>: <c>{effect, rule, version}</c> of the decision a request record carries.</summary>
    /// <param name="writer">The record's JSON writer, positioned inside an object.</param>
    /// <param name="decision">The policy's decision.</param>
    public static void WritePolicyDecision(Utf8JsonWriter writer, PolicyDecision decision)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(decision);
        writer.WriteStartObject("policy"u8);
        writer.WriteString("effect"u8, decision.Effect.ToString());
        writer.WriteString("rule"u8, decision.Rule);
        writer.WriteNumber("version"u8, decision.PolicyVersion);
        if (decision.EffectIndex is { } effectIndex)
        {
            writer.WriteNumber("effectIndex"u8, effectIndex);
            writer.WriteString("via"u8, decision.Via);
        }

        writer.WriteEndObject();
    }

    /// <summary>
    /// Writes <c>"effects": [{action, via, objectKind, resources, hasWhere, text}]</c>: what the request may execute
    /// besides its own verb, as the policy decided it. Nothing is written when the list is empty.
    /// </summary>
    /// <param name="writer">The record's writer, inside the record object.</param>
    /// <param name="effects">The request's effects.</param>
    public static void WriteEffects(Utf8JsonWriter writer, IReadOnlyList<AccessEffect> effects)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(effects);
        if (effects.Count == 0)
        {
            return;
        }

        writer.WriteStartArray("effects"u8);
        foreach (var effect in effects)
        {
            writer.WriteStartObject();
            writer.WriteString("action"u8, effect.Action);
            writer.WriteString("via"u8, effect.Via);
            if (effect.ObjectKind is { } objectKind)
            {
                writer.WriteString("objectKind"u8, objectKind);
            }

            if (effect.Resources.Count > 0)
            {
                writer.WriteStartArray("resources"u8);
                foreach (var resource in effect.Resources)
                {
                    writer.WriteStringValue(resource);
                }

                writer.WriteEndArray();
            }

            if (effect.HasWhere is { } hasWhere)
            {
                writer.WriteBoolean("hasWhere"u8, hasWhere);
            }

            if (effect.Text is { } text)
            {
                writer.WriteString("text"u8, text);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }

    /// <summary>
    /// Encodes the identity object once per session, for <see cref="WriteRawIdentity"/> to copy into every record.
    /// </summary>
    /// <param name="identity">The caller's identity.</param>
    /// <returns>The UTF-8 JSON of the value of <c>identity</c> (an object, without the property name).</returns>
    public static byte[] EncodeIdentity(WorkloadIdentity identity)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WriteIdentityObject(writer, identity);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Writes property <c>identity</c> from the output of <see cref="EncodeIdentity"/>.</summary>
    /// <remarks>The bytes are validated as one JSON value, so a wrong buffer fails here instead of corrupting the log.</remarks>
    /// <param name="writer">The record's JSON writer, positioned inside an object.</param>
    /// <param name="encodedIdentity">The bytes returned by <see cref="EncodeIdentity"/>.</param>
    public static void WriteRawIdentity(Utf8JsonWriter writer, ReadOnlySpan<byte> encodedIdentity)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.WritePropertyName(IdentityName);
        writer.WriteRawValue(encodedIdentity);
    }

    /// <inheritdoc />
    public void Dispose() => _writer.Dispose();

    private static void WriteIdentityObject(Utf8JsonWriter writer, WorkloadIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        writer.WriteStartObject();
        writer.WriteString(KindName, identity.Kind switch
        {
            WorkloadKind.ManagedIdentity => nameof(WorkloadKind.ManagedIdentity),
            WorkloadKind.ServicePrincipal => nameof(WorkloadKind.ServicePrincipal),
            WorkloadKind.FederatedWorkload => nameof(WorkloadKind.FederatedWorkload),
            WorkloadKind.User => nameof(WorkloadKind.User),
            _ => nameof(WorkloadKind.Unknown),
        });
        writer.WriteString(SubjectName, identity.Subject);
        writer.WriteString(IssuerName, identity.Issuer);
        WriteIfPresent(writer, DisplayNameName, identity.DisplayName);
        WriteIfPresent(writer, TenantName, identity.TenantId);
        WriteIfPresent(writer, AppName, identity.ApplicationId);
        WriteIfPresent(writer, MiridName, identity.ManagedIdentityResourceId);
        WriteIfPresent(writer, RepositoryName, identity.Repository);
        WriteIfPresent(writer, WorkflowName, identity.Workflow);
        WriteIfPresent(writer, RunIdName, identity.RunId);
        WriteIfPresent(writer, ShaName, identity.Sha);
        writer.WriteEndObject();
    }

    private static void WriteIfPresent(Utf8JsonWriter writer, JsonEncodedText name, string? value)
    {
        if (!string.IsNullOrEmpty(value))
        {
            writer.WriteString(name, value);
        }
    }

    private void StartObject()
    {
        if (_buffer.Capacity > MaxRetainedCapacity)
        {
            _buffer = new ArrayBufferWriter<byte>(_initialCapacity);
            _writer.Reset(_buffer);
        }
        else
        {
            _buffer.ResetWrittenCount();
            _writer.Reset();
        }

        _writer.WriteStartObject();
        _inRecord = true;
    }
}
