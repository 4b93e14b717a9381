using Microsoft.Win32.SafeHandles;

namespace NhiAudit.Audit;

/// <summary>
/// The file operations the log performs on its segment. A seam so tests can make the disk fail (ENOSPC, EIO)
/// and show the log refuses records and then recovers.
/// </summary>
internal interface IAuditFileWriter
{
    /// <summary>Writes all of <paramref name="bytes"/> at <paramref name="fileOffset"/> (pwrite).</summary>
    void Write(SafeFileHandle file, ReadOnlySpan<byte> bytes, long fileOffset);

    /// <summary>Makes everything written so far survive a host crash (fsync).</summary>
    void FlushToDisk(SafeFileHandle file);

    /// <summary>Cuts the file to <paramref name="length"/> bytes (ftruncate).</summary>
    void SetLength(SafeFileHandle file, long length);
}
