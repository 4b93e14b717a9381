using Microsoft.Win32.SafeHandles;

namespace NhiAudit.Audit;

/// <summary>The real disk: <see cref="RandomAccess"/> on the segment's handle.</summary>
internal sealed class RandomAccessAuditFileWriter : IAuditFileWriter
{
    /// <summary>The shared instance; it holds no state.</summary>
    public static readonly RandomAccessAuditFileWriter Instance = new();

    private RandomAccessAuditFileWriter()
    {
    }

    /// <inheritdoc />
    public void Write(SafeFileHandle file, ReadOnlySpan<byte> bytes, long fileOffset) => RandomAccess.Write(file, bytes, fileOffset);

    /// <inheritdoc />
    public void FlushToDisk(SafeFileHandle file) => RandomAccess.FlushToDisk(file);

    /// <inheritdoc />
    public void SetLength(SafeFileHandle file, long length) => RandomAccess.SetLength(file, length);
}
