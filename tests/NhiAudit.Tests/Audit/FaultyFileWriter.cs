using Microsoft.Win32.SafeHandles;
using NhiAudit.Audit;

namespace NhiAudit.Tests.Audit;

/// <summary>
/// The real disk, except that writes or fsyncs can be told to fail like a full or broken disk, and it remembers
/// how much of the file the last successful fsync covered.
/// </summary>
internal sealed class FaultyFileWriter : IAuditFileWriter
{
    private readonly Lock _lock = new();
    private long _writtenEnd;
    private long _syncedEnd;

    /// <summary>How many of the next writes fail.</summary>
    public int FailingWrites { get; set; }

    /// <summary>How many bytes a failing write lands before it fails, as a disk filling up mid-write does.</summary>
    public int PartialBytes { get; set; }

    /// <summary>How many of the next fsyncs fail.</summary>
    public int FailingSyncs { get; set; }

    public Exception Failure { get; set; } = new IOException("No space left on device");

    /// <summary>The file length covered by the last successful fsync.</summary>
    public long SyncedEnd
    {
        get
        {
            lock (_lock)
            {
                return _syncedEnd;
            }
        }
    }

    public void Write(SafeFileHandle file, ReadOnlySpan<byte> bytes, long fileOffset)
    {
        lock (_lock)
        {
            if (FailingWrites > 0)
            {
                FailingWrites--;
                var partial = Math.Min(PartialBytes, bytes.Length);
                RandomAccess.Write(file, bytes[..partial], fileOffset);
                throw Failure;
            }

            RandomAccess.Write(file, bytes, fileOffset);
            _writtenEnd = Math.Max(_writtenEnd, fileOffset + bytes.Length);
        }
    }

    public void FlushToDisk(SafeFileHandle file)
    {
        long end;
        lock (_lock)
        {
            if (FailingSyncs > 0)
            {
                FailingSyncs--;
                throw new IOException("Input/output error");
            }

            end = _writtenEnd;
        }

        RandomAccess.FlushToDisk(file);
        lock (_lock)
        {
            _syncedEnd = Math.Max(_syncedEnd, end);
        }
    }

    public void SetLength(SafeFileHandle file, long length)
    {
        RandomAccess.SetLength(file, length);
        lock (_lock)
        {
            _writtenEnd = Math.Min(_writtenEnd, length);
        }
    }
}
