using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace NhiAudit.Ssh.Transport;

/// <summary>
/// The identification string exchange of RFC 4253 §4.2: <c>SSH-2.0-softwareversion SP comments CR LF</c>, at most
/// 255 bytes with CR LF. Lines not starting with "SSH-" may come first (a server may send a banner before its
/// version); they are skipped up to a bound so a peer cannot keep us reading forever.
/// </summary>
internal static class VersionExchange
{
    public const int MaxLineLength = 255;
    public const int MaxPrecedingLines = 64;

    /// <summary>Reads the peer's version line and returns it without CR LF (the V_C or V_S of the exchange hash).</summary>
    public static async ValueTask<string> ReadVersionAsync(PipeReader input, CancellationToken cancellationToken)
    {
        var skippedLines = 0;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            while (TryReadLine(ref buffer, out var line))
            {
                if (line.StartsWith("SSH-", StringComparison.Ordinal))
                {
                    input.AdvanceTo(buffer.Start);
                    if (!line.StartsWith("SSH-2.0-", StringComparison.Ordinal) && !line.StartsWith("SSH-1.99-", StringComparison.Ordinal))
                    {
                        throw new SshProtocolException(SshDisconnectReason.ProtocolVersionNotSupported, "peer does not speak SSH 2.0: " + line);
                    }

                    return line;
                }

                if (++skippedLines > MaxPrecedingLines)
                {
                    throw new SshProtocolException($"more than {MaxPrecedingLines} lines before the SSH version line");
                }
            }

            if (buffer.Length > MaxLineLength)
            {
                throw new SshProtocolException($"identification line longer than {MaxLineLength} bytes");
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                throw new SshConnectionClosedException("connection closed before the SSH version line");
            }
        }
    }

    public static void WriteVersion(PipeWriter output, string version)
    {
        var bytes = Encoding.ASCII.GetBytes(version + "\r\n");
        if (bytes.Length > MaxLineLength)
        {
            throw new ArgumentException("version line too long", nameof(version));
        }

        output.Write(bytes);
    }

    private static bool TryReadLine(ref ReadOnlySequence<byte> buffer, out string line)
    {
        var newline = buffer.PositionOf((byte)'\n');
        if (newline is null)
        {
            line = "";
            return false;
        }

        var lineBytes = buffer.Slice(0, newline.Value);
        if (lineBytes.Length + 1 > MaxLineLength)
        {
            throw new SshProtocolException($"identification line longer than {MaxLineLength} bytes");
        }

        Span<byte> span = stackalloc byte[MaxLineLength];
        lineBytes.CopyTo(span);
        var length = (int)lineBytes.Length;
        if (length > 0 && span[length - 1] == '\r')
        {
            length--;
        }

        foreach (var b in span[..length])
        {
            // RFC 4253 §4.2: the version line is US-ASCII; a NUL or control byte means garbage, not a banner.
            if (b is < 0x20 or > 0x7E)
            {
                throw new SshProtocolException("identification line holds a non-printable byte");
            }
        }

        line = Encoding.ASCII.GetString(span[..length]);
        buffer = buffer.Slice(buffer.GetPosition(1, newline.Value));
        return true;
    }
}
