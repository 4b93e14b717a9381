using System.Buffers.Binary;
using System.Security.Cryptography;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Ssh.Sftp;
using NhiAudit.Ssh.Transport;

namespace NhiAudit.Ssh.Tests.Sftp;

/// <summary>Framing, matching, hashing, caps and hostile input, on packets built here and on a real recorded session.</summary>
public sealed class SftpObserverTests
{
    private static byte[] Packet(SftpTestType type, uint? id, Action<SshWriter>? body = null)
    {
        var writer = new SshWriter();
        writer.WriteUInt32(0).WriteByte((byte)type);
        if (id is { } requestId)
        {
            writer.WriteUInt32(requestId);
        }

        body?.Invoke(writer);
        var packet = writer.ToArray();
        BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)(packet.Length - 4));
        return packet;
    }

    private enum SftpTestType : byte
    {
        Init = 1,
        Version = 2,
        Open = 3,
        Close = 4,
        Read = 5,
        Write = 6,
        Remove = 13,
        Status = 101,
        Handle = 102,
        Data = 103,
    }

    private static byte[] Open(uint id, string path, SftpOpenModes modes) =>
        Packet(SftpTestType.Open, id, w => w.WriteString(path).WriteUInt32((uint)modes).WriteUInt32(0));

    private static byte[] Handle(uint id, string handle) => Packet(SftpTestType.Handle, id, w => w.WriteString(handle));

    private static byte[] Write(uint id, string handle, ulong offset, byte[] data) =>
        Packet(SftpTestType.Write, id, w => w.WriteString(handle).WriteUInt64(offset).WriteString(data));

    private static byte[] Close(uint id, string handle) => Packet(SftpTestType.Close, id, w => w.WriteString(handle));

    private static byte[] Status(uint id, SftpStatusCode code) =>
        Packet(SftpTestType.Status, id, w => w.WriteUInt32((uint)code).WriteString(code.ToString()).WriteString(string.Empty));

    private static byte[] Version() => Packet(SftpTestType.Version, 3, w => w.WriteString("posix-rename@openssh.com").WriteString("1"));

    [Fact]
    public void Writes_out_of_order_are_counted_but_not_hashed()
    {
        var events = new List<SftpEvent>();
        var observer = new SftpObserver(events.Add);
        observer.ObserveClientData(Packet(SftpTestType.Init, 3));
        observer.ObserveServerData(Version());
        var operations = observer.ObserveClientData(Open(1, "/srv/a.txt", SftpOpenModes.Write | SftpOpenModes.Create));
        var operation = Assert.Single(operations);
        Assert.Equal(new SftpOperation(1, SftpOperationKind.OpenWrite, "/srv/a.txt", null, 9, Open(1, "/srv/a.txt", SftpOpenModes.Write).Length), operation);
        observer.ObserveServerData(Handle(1, "h1"));
        observer.ObserveClientData(Write(2, "h1", 10, new byte[5]));
        observer.ObserveClientData(Write(3, "h1", 0, new byte[10]));
        observer.ObserveServerData([.. Status(2, SftpStatusCode.Ok), .. Status(3, SftpStatusCode.Ok)]);
        observer.ObserveClientData(Close(4, "h1"));
        observer.ObserveServerData(Status(4, SftpStatusCode.Ok));

        var file = Assert.Single(events, e => e.Kind == SftpEventKind.FileClosed);
        Assert.Equal("/srv/a.txt", file.Path);
        Assert.Equal(15, file.Transfer!.BytesWritten);
        Assert.Null(file.Transfer.Sha256);
        Assert.Equal("not hashed: non-sequential", file.Transfer.NotHashedReason);
        Assert.Equal("write", file.Transfer.Mode);
        Assert.Equal(0, observer.TrackedHandleCount);
        Assert.Equal(0, observer.PendingRequestCount);
    }

    [Fact]
    public void Sequential_writes_are_hashed()
    {
        var events = new List<SftpEvent>();
        var observer = new SftpObserver(events.Add);
        var data = RandomNumberGenerator.GetBytes(1000);
        observer.ObserveClientData(Open(1, "f", SftpOpenModes.Write));
        observer.ObserveServerData(Handle(1, "h"));
        observer.ObserveClientData([.. Write(2, "h", 0, data[..400]), .. Write(3, "h", 400, data[400..])]);
        observer.ObserveClientData(Close(4, "h"));
        observer.ObserveServerData([.. Status(2, SftpStatusCode.Ok), .. Status(3, SftpStatusCode.Ok), .. Status(4, SftpStatusCode.Ok)]);
        var file = Assert.Single(events);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), file.Transfer!.Sha256);
    }

    [Fact]
    public void Deny_answers_permission_denied_and_forgets_the_request()
    {
        var events = new List<SftpEvent>();
        var observer = new SftpObserver(events.Add);
        var operation = Assert.Single(observer.ObserveClientData(Packet(SftpTestType.Remove, 7, w => w.WriteString("/etc/app.conf"))));
        Assert.Equal(SftpOperationKind.Remove, operation.Kind);
        Assert.Equal("/etc/app.conf", operation.Path);

        var answer = observer.Deny(7, "policy: no removals");
        var reader = new SshReader(answer);
        Assert.Equal((uint)answer.Length - 4, reader.ReadUInt32());
        Assert.Equal(101, reader.ReadByte());
        Assert.Equal(7u, reader.ReadUInt32());
        Assert.Equal((uint)SftpStatusCode.PermissionDenied, reader.ReadUInt32());
        Assert.Equal("policy: no removals", reader.ReadUtf8String());
        Assert.Equal(string.Empty, reader.ReadUtf8String());
        reader.EnsureEnd();

        Assert.Equal(0, observer.PendingRequestCount);
        var denied = Assert.Single(events);
        Assert.True(denied.Denied);
        Assert.Equal(SftpEventKind.Remove, denied.Kind);

        // A late answer with that id (it never reached the server) matches nothing.
        observer.ObserveServerData(Status(7, SftpStatusCode.Ok));
        Assert.Single(events);
    }

    [Fact]
    public void Handles_beyond_the_cap_are_reported_untracked()
    {
        var events = new List<SftpEvent>();
        var observer = new SftpObserver(events.Add, new SftpObserverOptions { MaxTrackedHandles = 2 });
        for (var i = 1u; i <= 3; i++)
        {
            observer.ObserveClientData(Open(i, "file" + i, SftpOpenModes.Read));
            observer.ObserveServerData(Handle(i, "h" + i));
        }

        Assert.Equal(2, observer.TrackedHandleCount);
        var untracked = Assert.Single(events);
        Assert.Equal(SftpEventKind.Untracked, untracked.Kind);
        Assert.Equal("file3", untracked.Path);

        observer.Complete();
        Assert.Equal(2, events.Count(e => e.Kind == SftpEventKind.FileClosed && e.Status is null));
    }

    [Theory]
    [InlineData(0xFFFFFFF0u)]
    [InlineData((256u * 1024) + 1025)]
    [InlineData(2u)]
    public void A_bad_length_is_reported_without_allocating_it(uint length)
    {
        var events = new List<SftpEvent>();
        var observer = new SftpObserver(events.Add);
        var header = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(header, length);
        var before = GC.GetAllocatedBytesForCurrentThread();
        observer.ObserveServerData(header.AsSpan(0, 2));
        observer.ObserveServerData(header.AsSpan(2));
        observer.ObserveServerData(new byte[100]);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.False(observer.IsInspecting);
        var problem = Assert.Single(events);
        Assert.Equal(SftpEventKind.ProtocolProblem, problem.Kind);
        Assert.True(allocated < 64 * 1024, $"allocated {allocated} bytes");
    }

    /// <summary>Splits each recorded segment at the given cut points (mod its length) and merges neighbours of one direction.</summary>
    private static List<SftpEvent> Replay(IReadOnlyList<(bool FromClient, byte[] Data)> segments, int[] cuts, bool merge)
    {
        var events = new List<SftpEvent>();
        var observer = new SftpObserver(events.Add);
        var chunks = new List<(bool, byte[])>();
        foreach (var (fromClient, data) in segments)
        {
            if (merge && chunks.Count > 0 && chunks[^1].Item1 == fromClient)
            {
                chunks[^1] = (fromClient, [.. chunks[^1].Item2, .. data]);
            }
            else
            {
                chunks.Add((fromClient, data));
            }
        }

        var cut = 0;
        foreach (var (fromClient, data) in chunks)
        {
            var position = 0;
            while (position < data.Length)
            {
                var size = cuts.Length == 0 ? data.Length : 1 + (Math.Abs(cuts[cut++ % cuts.Length] % 70_000));
                var piece = data.AsSpan(position, Math.Min(size, data.Length - position));
                if (fromClient)
                {
                    observer.ObserveClientData(piece);
                }
                else
                {
                    observer.ObserveServerData(piece);
                }

                position += piece.Length;
            }
        }

        observer.Complete();
        return events;
    }

    [Fact]
    public async Task Replaying_the_recorded_session_gives_the_relay_events()
    {
        var (result, _) = await SftpObserverInteropTests.Session.Value;
        Assert.Equal(result.Events, Replay(result.Segments, [], merge: false));
        Assert.Equal(result.Events, Replay(result.Segments, [1], merge: true));
    }

    [Property(MaxTest = 40)]
    public void Any_chunking_of_the_recorded_session_gives_the_same_events(int[] cuts, bool merge)
    {
        var (result, _) = SftpObserverInteropTests.Session.Value.GetAwaiter().GetResult();
        Assert.Equal(result.Events, Replay(result.Segments, cuts ?? [], merge));
    }

    private static void AssertOnlyOwnProblemReports(Action<SftpObserver> feed)
    {
        var events = new List<SftpEvent>();
        var observer = new SftpObserver(events.Add, new SftpObserverOptions { MaxTrackedHandles = 4, MaxPendingRequests = 8 });
        feed(observer);
        observer.Complete();
        var problem = events.FindIndex(e => e.Kind == SftpEventKind.ProtocolProblem);
        Assert.Equal(problem >= 0, !observer.IsInspecting);
        if (problem >= 0)
        {
            // After the report only Complete's account of the handles still open may follow.
            Assert.All(events.Skip(problem + 1), e => Assert.Equal("session ended with the handle open", e.Detail));
        }
    }

    [Property(MaxTest = 500)]
    public void Random_bytes_never_throw(byte[] client, byte[] server, int split)
    {
        client ??= [];
        server ??= [];
        AssertOnlyOwnProblemReports(observer =>
        {
            var c = client.Length == 0 ? 0 : Math.Abs(split % client.Length);
            observer.ObserveClientData(client.AsSpan(0, c));
            observer.ObserveServerData(server);
            observer.ObserveClientData(client.AsSpan(c));
        });
    }

    [Property(MaxTest = 500)]
    public void Random_packets_with_valid_framing_never_throw(byte[][] clientBodies, byte[][] serverBodies)
    {
        static byte[] Frame(byte[] body)
        {
            var packet = new byte[body.Length + 4];
            BinaryPrimitives.WriteUInt32BigEndian(packet, (uint)body.Length);
            body.CopyTo(packet, 4);
            return packet;
        }

        AssertOnlyOwnProblemReports(observer =>
        {
            var count = Math.Max(clientBodies?.Length ?? 0, serverBodies?.Length ?? 0);
            for (var i = 0; i < count; i++)
            {
                if (clientBodies is not null && i < clientBodies.Length && clientBodies[i] is { } c)
                {
                    observer.ObserveClientData(Frame(c));
                }

                if (serverBodies is not null && i < serverBodies.Length && serverBodies[i] is { } s)
                {
                    observer.ObserveServerData(Frame(s));
                }
            }
        });
    }

    [Property(MaxTest = 200)]
    public void Mutated_recorded_sessions_never_throw(int seed)
    {
        var (result, _) = SftpObserverInteropTests.Session.Value.GetAwaiter().GetResult();
        var random = new Random(seed);
        AssertOnlyOwnProblemReports(observer =>
        {
            // Only the first part of the session: enough to reach every request type, cheap enough for many runs.
            foreach (var (fromClient, original) in result.Segments.Take(40))
            {
                var data = (byte[])original.Clone();
                if (random.Next(4) == 0 && data.Length > 0)
                {
                    for (var flips = random.Next(1, 4); flips > 0; flips--)
                    {
                        data[random.Next(data.Length)] = (byte)random.Next(256);
                    }
                }

                if (fromClient)
                {
                    observer.ObserveClientData(data);
                }
                else
                {
                    observer.ObserveServerData(data);
                }
            }
        });
    }
}
