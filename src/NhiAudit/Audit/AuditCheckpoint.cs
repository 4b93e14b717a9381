using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace NhiAudit.Audit;

/// <summary>
/// A signed statement "replica R's chain had record <see cref="Sequence"/> with hash <see cref="Hash"/> at
/// <see cref="Time"/>". The log writes one into its own chain periodically and at every segment end, keeps the newest
/// in <c>checkpoint.json</c> next to the segments, and hands each to the secondary sinks, which publish them. Whoever
/// holds a checkpoint can later prove that the log still contains that record: a log cut after it, or rewritten
/// before it, fails <c>nhiaudit verify --checkpoint</c>.
/// </summary>
public sealed record AuditCheckpoint
{
    /// <summary>The domain separator at the start of the signed bytes, so a checkpoint signature means nothing else.</summary>
    public const string SignatureContext = "nhiaudit-checkpoint-v1";

    /// <summary>The replica whose chain this is (<see cref="AuditOptions.Replica"/>).</summary>
    public required string Replica { get; init; }

    /// <summary>The <c>seq</c> of the last record the checkpoint covers.</summary>
    public required long Sequence { get; init; }

    /// <summary>SHA-256 of that record's line including its newline, 64 lowercase hex digits.</summary>
    public required string Hash { get; init; }

    /// <summary>When the checkpoint was made (UTC).</summary>
    public required DateTimeOffset Time { get; init; }

    /// <summary>The signature algorithm: <c>ES256</c> (ECDSA P-256, SHA-256, IEEE P1363 r‖s) or <c>Ed25519</c>.</summary>
    public required string Algorithm { get; init; }

    /// <summary>The first 16 hex digits of the SHA-256 of the signing key's SubjectPublicKeyInfo (DER).</summary>
    public required string KeyId { get; init; }

    /// <summary>The signature over <see cref="GetSignedBytes()"/>, base64.</summary>
    public required string Signature { get; init; }

    /// <summary>The bytes the signature covers: context, replica, seq, hash and time, one per line.</summary>
    public byte[] GetSignedBytes() => GetSignedBytes(Replica, Sequence, Hash, Time);

    /// <summary>The bytes a signature over these values covers.</summary>
    /// <param name="replica">The replica.</param>
    /// <param name="sequence">The covered seq.</param>
    /// <param name="hash">The covered record's hash.</param>
    /// <param name="time">The checkpoint time.</param>
    public static byte[] GetSignedBytes(string replica, long sequence, string hash, DateTimeOffset time) =>
        Encoding.UTF8.GetBytes(string.Create(
            CultureInfo.InvariantCulture,
            $"{SignatureContext}\n{replica}\n{sequence}\n{hash}\n{FormatTime(time)}"));

    /// <summary>The checkpoint as one JSON object: <c>{"replica","seq","hash","time","alg","keyId","sig"}</c>.</summary>
    public string ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer))
        {
            WriteTo(json);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>Writes the checkpoint as a JSON object (see <see cref="ToJson"/>).</summary>
    /// <param name="json">The writer.</param>
    public void WriteTo(Utf8JsonWriter json)
    {
        ArgumentNullException.ThrowIfNull(json);
        json.WriteStartObject();
        json.WriteString("replica", Replica);
        json.WriteNumber("seq", Sequence);
        json.WriteString("hash", Hash);
        json.WriteString("time", FormatTime(Time));
        json.WriteString("alg", Algorithm);
        json.WriteString("keyId", KeyId);
        json.WriteString("sig", Signature);
        json.WriteEndObject();
    }

    /// <summary>Reads a checkpoint written by <see cref="ToJson"/>, or the <c>checkpoint</c> object of a <c>log.checkpoint</c> record.</summary>
    /// <param name="json">The JSON text.</param>
    /// <exception cref="FormatException">The text is not a checkpoint.</exception>
    public static AuditCheckpoint Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        try
        {
            using var document = JsonDocument.Parse(json);
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("checkpoint", out var inner))
            {
                root = inner;
            }

            return FromJson(root);
        }
        catch (JsonException ex)
        {
            throw new FormatException("not a checkpoint: " + ex.Message, ex);
        }
    }

    /// <summary>Reads a checkpoint from a JSON object element.</summary>
    /// <param name="element">The <c>{"replica",…}</c> object.</param>
    /// <exception cref="FormatException">The element is not a checkpoint.</exception>
    public static AuditCheckpoint FromJson(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("not a checkpoint: not a JSON object");
        }

        try
        {
            var hash = Required(element, "hash");
            Span<byte> decoded = stackalloc byte[32];
            if (hash.Length != 64 || !AuditHex.TryDecodeLower(Encoding.ASCII.GetBytes(hash), decoded))
            {
                throw new FormatException("not a checkpoint: hash is not 64 lowercase hex digits");
            }

            return new AuditCheckpoint
            {
                Replica = Required(element, "replica"),
                Sequence = element.GetProperty("seq").GetInt64(),
                Hash = hash,
                Time = DateTimeOffset.ParseExact(Required(element, "time"), "O", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal),
                Algorithm = Required(element, "alg"),
                KeyId = Required(element, "keyId"),
                Signature = Required(element, "sig"),
            };
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new FormatException("not a checkpoint: " + ex.Message, ex);
        }
    }

    private static string FormatTime(DateTimeOffset time) =>
        time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private static string Required(JsonElement element, string name) =>
        element.GetProperty(name).GetString() is { Length: > 0 } value
            ? value
            : throw new FormatException($"not a checkpoint: {name} is empty");
}
