using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>Text encoding rules shared by parsers and writers.</summary>
internal static class PgText
{
    /// <summary>
    /// Strict UTF-8: throws on invalid bytes. Used for names (user, database, statement and
    /// portal names) because they are identities and dictionary keys: replacement decoding
    /// would map two different byte strings to the same string, letting a client prepare
    /// "S\xff" and "S\xfe" and have the gateway confuse the two.
    /// </summary>
    public static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Lenient UTF-8 for SQL text and log output: invalid bytes become U+FFFD. ASCII bytes are
    /// never swallowed by an invalid sequence (maximal-subpart replacement), so quotes,
    /// semicolons and comment markers keep their positions for the SQL lexer.
    /// </summary>
    public static readonly UTF8Encoding LenientUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    /// <summary>Decodes a name strictly, turning invalid UTF-8 into a protocol error.</summary>
    /// <param name="bytes">The name's bytes.</param>
    /// <param name="what">What the name is, for the error message.</param>
    public static string DecodeName(ReadOnlySpan<byte> bytes, string what)
    {
        if (bytes.IsEmpty)
        {
            return string.Empty;
        }

        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new PgProtocolException($"invalid UTF-8 in {what}", ex);
        }
    }

    /// <summary>Decodes SQL or log text leniently.</summary>
    public static string DecodeText(ReadOnlySpan<byte> bytes) =>
        bytes.IsEmpty ? string.Empty : LenientUtf8.GetString(bytes);
}
