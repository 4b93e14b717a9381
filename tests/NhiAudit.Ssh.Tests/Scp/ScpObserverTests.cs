using System.Security.Cryptography;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NhiAudit.Ssh.Scp;

namespace NhiAudit.Ssh.Tests.Scp;

/// <summary>Control lines, content hashing, answers, paths and hostile input, on sessions scripted here and recorded from real scp.</summary>
public sealed class ScpObserverTests
{
    private static readonly ScpCommand UploadFile = new(ScpDirection.Upload, "/tmp/x", false, false);
    private static readonly ScpCommand UploadTree = new(ScpDirection.Upload, "/dst", true, true);
    private static readonly ScpCommand DownloadTree = new(ScpDirection.Download, "/src/top", true, false);

    /// <summary>One scripted step: bytes of the source stream (true) or the sink stream (false).</summary>
    private static (bool FromSource, byte[] Data) Source(string text) => (true, Encoding.UTF8.GetBytes(text));

    private static (bool FromSource, byte[] Data) Sink(string text) => (false, Encoding.UTF8.GetBytes(text));

    private static (bool FromSource, byte[] Data) Content(byte[] content) => (true, [.. content, 0]);

    private static string Sha256(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    private static readonly byte[] Hello = "hello"u8.ToArray();
    private static readonly byte[] Big = Enumerable.Range(0, 10_000).Select(i => (byte)(i * 7)).ToArray();

    /// <summary>What <c>scp -r -p</c> sends for <c>top/{a, sub/b, empty}</c>, with the sink's answers.</summary>
    private static readonly (bool FromSource, byte[] Data)[] TreeSession =
    [
        Sink("\0"),
        Source("T1700000000 0 1700000001 0\n"), Sink("\0"),
        Source("D0755 0 top\n"), Sink("\0"),
        Source("T1700000002 0 1700000003 0\n"), Sink("\0"),
        Source("C0644 5 a\n"), Sink("\0"), Content(Hello), Sink("\0"),
        Source("D0700 0 sub\n"), Sink("\0"),
        Source("C0600 10000 b\n"), Sink("\0"), Content(Big), Sink("\0"),
        Source("E\n"), Sink("\0"),
        Source("C0644 0 empty\n"), Sink("\0"), Content([]), Sink("\0"),
        Source("E\n"), Sink("\0"),
    ];

    private static List<ScpFileEvent> Run(ScpCommand command, IEnumerable<(bool FromSource, byte[] Data)> steps, Func<int, int>? chunk = null, ScpObserverOptions? options = null)
    {
        var events = new List<ScpFileEvent>();
        var observer = new ScpObserver(command, events.Add, options);
        foreach (var (fromSource, data) in steps)
        {
            var position = 0;
            while (position < data.Length)
            {
                var size = Math.Min(chunk?.Invoke(position) ?? data.Length, data.Length - position);
                Feed(observer, command, fromSource, data.AsSpan(position, size));
                position += size;
            }
        }

        observer.Complete();
        return events;
    }

    private static void Feed(ScpObserver observer, ScpCommand command, bool fromSource, ReadOnlySpan<byte> data)
    {
        if (fromSource == (command.Direction == ScpDirection.Upload))
        {
            observer.ObserveClientData(data);
        }
        else
        {
            observer.ObserveServerData(data);
        }
    }

    [Fact]
    public void A_single_upload_names_the_target_and_the_sent_name_with_size_mode_and_sha256()
    {
        var events = Run(UploadFile, [Sink("\0"), Source("C0640 5 a.txt\n"), Sink("\0"), Content(Hello), Sink("\0")]);
        var file = Assert.Single(events);
        Assert.Equal(new ScpFileEvent(ScpFileEventKind.FileTransferred, "/tmp/x", 5, "0640", Sha256(Hello), null) { Name = "a.txt", TransferredBytes = 5 }, file);
    }

    [Theory]
    [InlineData(".", "./a.txt")]
    [InlineData("/in/", "/in/a.txt")]
    [InlineData("/in/..", "/in/../a.txt")]
    public void An_upload_to_a_target_that_is_surely_a_directory_joins_the_name(string target, string path)
    {
        var events = Run(new ScpCommand(ScpDirection.Upload, target, false, false), [Sink("\0"), Source("C0644 5 a.txt\n"), Sink("\0"), Content(Hello), Sink("\0")]);
        Assert.Equal(path, Assert.Single(events).Path);
    }

    [Fact]
    public void Several_files_to_a_directory_target_join_their_names()
    {
        var command = new ScpCommand(ScpDirection.Upload, "/in", false, false) { TargetShouldBeDirectory = true };
        var events = Run(command, [Sink("\0"), Source("C0644 5 a\n"), Sink("\0"), Content(Hello), Sink("\0"), Source("C0644 5 b\n"), Sink("\0"), Content(Hello), Sink("\0")]);
        Assert.Equal(["/in/a", "/in/b"], events.Select(e => e.Path));
    }

    [Fact]
    public void A_recursive_upload_reports_nested_directories_and_files_with_their_times()
    {
        var events = Run(UploadTree, TreeSession);
        Assert.Equal(
            [
                new ScpFileEvent(ScpFileEventKind.DirectoryEntered, "/dst/top", 0, "0755", null, null) { Name = "top", ModifyTime = 1700000000, AccessTime = 1700000001 },
                new ScpFileEvent(ScpFileEventKind.FileTransferred, "/dst/top/a", 5, "0644", Sha256(Hello), null) { Name = "a", TransferredBytes = 5, ModifyTime = 1700000002, AccessTime = 1700000003 },
                new ScpFileEvent(ScpFileEventKind.DirectoryEntered, "/dst/top/sub", 0, "0700", null, null) { Name = "sub" },
                new ScpFileEvent(ScpFileEventKind.FileTransferred, "/dst/top/sub/b", 10_000, "0600", Sha256(Big), null) { Name = "b", TransferredBytes = 10_000 },
                new ScpFileEvent(ScpFileEventKind.FileTransferred, "/dst/top/empty", 0, "0644", Sha256([]), null) { Name = "empty" },
            ],
            events);
    }

    [Fact]
    public void A_recursive_download_reports_the_paths_the_source_reads()
    {
        var events = Run(DownloadTree, TreeSession);
        Assert.Equal(["/src/top", "/src/top/a", "/src/top/sub", "/src/top/sub/b", "/src/top/empty"], events.Select(e => e.Path));
    }

    [Fact]
    public void Every_cut_of_every_step_gives_the_same_events()
    {
        var whole = Run(UploadTree, TreeSession);
        Assert.Equal(whole, Run(UploadTree, TreeSession, _ => 1));
        for (var cut = 1; cut < 64; cut++)
        {
            Assert.Equal(whole, Run(UploadTree, TreeSession, position => position == 0 ? cut : int.MaxValue));
        }
    }

    [Fact]
    public void A_file_the_sink_refuses_fails_and_the_next_file_is_followed()
    {
        var events = Run(UploadFile,
        [
            Sink("\0"),
            Source("C0644 5 a\n"), Sink("\u0001scp: /tmp/x: Permission denied\n"),
            Source("C0644 5 b\n"), Sink("\0"), Content(Hello), Sink("\0"),
        ]);
        Assert.Equal(2, events.Count);
        Assert.Equal(new ScpFileEvent(ScpFileEventKind.FileFailed, "/tmp/x", 5, "0644", null, "scp: /tmp/x: Permission denied") { Name = "a" }, events[0]);
        Assert.Equal(ScpFileEventKind.FileTransferred, events[1].Kind);
        Assert.Equal("b", events[1].Name);
    }

    [Fact]
    public void A_file_the_sink_fails_to_write_keeps_the_hash_of_what_passed()
    {
        var events = Run(UploadFile, [Sink("\0"), Source("C0644 5 a\n"), Sink("\0"), Content(Hello), Sink("\u0001scp: /tmp/x: No space left on device\n")]);
        var file = Assert.Single(events);
        Assert.Equal(ScpFileEventKind.FileFailed, file.Kind);
        Assert.Equal(Sha256(Hello), file.Sha256);
        Assert.Equal("scp: /tmp/x: No space left on device", file.Error);
    }

    [Fact]
    public void A_file_the_source_cannot_read_fails_without_a_hash()
    {
        var events = Run(DownloadTree,
        [
            Sink("\0"),
            Source("D0755 0 top\n"), Sink("\0"),
            Source("C0644 5 a\n"), Sink("\0"), Source("\0\0\0\0\0\u0001scp: /src/top/a: Input/output error\n"), Sink("\0"),
            Source("\u0001scp: /src/top/gone: No such file or directory\n"),
            Source("E\n"), Sink("\0"),
        ]);
        Assert.Equal(
            [
                new ScpFileEvent(ScpFileEventKind.DirectoryEntered, "/src/top", 0, "0755", null, null) { Name = "top" },
                new ScpFileEvent(ScpFileEventKind.FileFailed, "/src/top/a", 5, "0644", null, "scp: /src/top/a: Input/output error") { Name = "a", TransferredBytes = 5 },
                new ScpFileEvent(ScpFileEventKind.Error, "/src/top", 0, null, null, "scp: /src/top/gone: No such file or directory"),
            ],
            events);
    }

    [Fact]
    public void A_refused_directory_is_skipped()
    {
        var events = Run(UploadTree,
        [
            Sink("\0"),
            Source("D0755 0 top\n"), Sink("\u0001scp: /dst/top: Not a directory\n"),
            Source("C0644 5 a\n"), Sink("\0"), Content(Hello), Sink("\0"),
        ]);
        Assert.Equal([ScpFileEventKind.DirectoryFailed, ScpFileEventKind.FileTransferred], events.Select(e => e.Kind));
        Assert.Equal("scp: /dst/top: Not a directory", events[0].Error);
        Assert.Equal("/dst/a", events[1].Path);
    }

    [Fact]
    public void A_sink_that_is_not_ready_reports_an_error()
    {
        var events = Run(UploadFile, [Sink("\u0001scp: /tmp/x: Not a directory\n")]);
        Assert.Equal([new ScpFileEvent(ScpFileEventKind.Error, "/tmp/x", 0, null, null, "scp: /tmp/x: Not a directory")], events);
    }

    [Fact]
    public void A_fatal_source_error_after_the_content_fails_the_file_at_once()
    {
        var events = Run(UploadFile, [Sink("\0"), Source("C0644 5 a\n"), Sink("\0"), Source("hello\u0002scp: lost\n")]);
        var file = Assert.Single(events);
        Assert.Equal(ScpFileEventKind.FileFailed, file.Kind);
        Assert.Equal("scp: lost", file.Error);
    }

    [Theory]
    [InlineData("C0644 5 a\n", "", "channel closed after 0 of 5 content bytes")]
    [InlineData("C0644 5 a\n", "\0he", "channel closed after 2 of 5 content bytes")]
    [InlineData("C0644 5 a\n", "\0hello", "channel closed after 5 of 5 content bytes")]
    public void A_channel_closed_mid_file_reports_the_file_incomplete(string header, string answerAndContent, string error)
    {
        var steps = new List<(bool, byte[])> { Sink("\0"), Source(header) };
        if (answerAndContent.Length > 0)
        {
            steps.Add(Sink("\0"));
            steps.Add(Source(answerAndContent[1..]));
        }

        var file = Assert.Single(Run(UploadFile, steps));
        Assert.Equal(ScpFileEventKind.FileFailed, file.Kind);
        Assert.Equal(error, file.Error);
        Assert.Null(file.Sha256);
    }

    [Fact]
    public void A_channel_closed_before_the_last_answer_reports_the_file_with_its_hash()
    {
        var file = Assert.Single(Run(UploadFile, [Sink("\0"), Source("C0644 5 a\n"), Sink("\0"), Content(Hello)]));
        Assert.Equal(ScpFileEventKind.FileFailed, file.Kind);
        Assert.Equal("channel closed before the sink acknowledged the file", file.Error);
        Assert.Equal(Sha256(Hello), file.Sha256);
    }

    [Fact]
    public void A_source_that_runs_ahead_of_the_answers_is_followed()
    {
        var events = Run(UploadFile,
        [
            Source("C0644 5 a\nhello\0C0644 0 b\n\0"),
            Sink("\0\0\0\0\0"),
        ], options: new ScpObserverOptions { MaxUnacknowledged = 5 });
        Assert.Equal([("a", ScpFileEventKind.FileTransferred), ("b", ScpFileEventKind.FileTransferred)], events.Select(e => (e.Name!, e.Kind)));
    }

    [Theory]
    [InlineData("X\n", "source: unknown control line type 0x58")]
    [InlineData("\n", "source: empty control line")]
    [InlineData("C0644 abc name\n", "source: C line: size not a non-negative number")]
    [InlineData("C0644 -5 name\n", "source: C line: size not a non-negative number")]
    [InlineData("C0644 99999999999999999999 name\n", "source: C line: size not a non-negative number")]
    [InlineData("C0644 5 a/b\n", "source: C line: unacceptable name")]
    [InlineData("C0644 5 ..\n", "source: C line: unacceptable name")]
    [InlineData("C0644 5 .\n", "source: C line: unacceptable name")]
    [InlineData("C0644 5 \n", "source: C line: unacceptable name")]
    [InlineData("C064 5 a\n", "source: C line: bad mode")]
    [InlineData("C0648 5 a\n", "source: C line: bad mode")]
    [InlineData("D0755 0 ..\n", "source: D line: unacceptable name")]
    [InlineData("E\n", "source: E line outside any directory")]
    [InlineData("T1 0 2\n", "source: malformed T line")]
    [InlineData("T1 1000000 2 0\n", "source: malformed T line")]
    public void Malformed_control_lines_are_one_protocol_problem(string line, string problem)
    {
        var events = new List<ScpFileEvent>();
        var observer = new ScpObserver(UploadTree, events.Add);
        observer.ObserveServerData("\0"u8);
        observer.ObserveClientData(Encoding.UTF8.GetBytes(line));
        observer.ObserveClientData("C0644 5 a\n"u8);
        observer.ObserveServerData("\0"u8);
        observer.Complete();
        Assert.Equal([new ScpFileEvent(ScpFileEventKind.ProtocolProblem, string.Empty, 0, null, null, problem)], events);
        Assert.False(observer.IsInspecting);
        Assert.Equal(problem, observer.Problem);
    }

    [Fact]
    public void A_line_longer_than_the_bound_is_a_protocol_problem_even_in_small_chunks()
    {
        var events = Run(UploadFile, [Sink("\0"), Source("C0644 5 " + new string('n', 5000) + "\n")], _ => 7);
        Assert.Equal("source: line longer than 4096 bytes", Assert.Single(events).Error);
    }

    [Fact]
    public void A_line_at_the_bound_is_accepted()
    {
        var name = new string('n', 4096 - "C0644 5 ".Length);
        var events = Run(UploadFile, [Sink("\0"), Source("C0644 5 " + name + "\n"), Sink("\0"), Content(Hello), Sink("\0")], _ => 100);
        Assert.Equal(name, Assert.Single(events).Name);
    }

    [Fact]
    public void Nesting_deeper_than_the_bound_is_a_protocol_problem()
    {
        var steps = new List<(bool, byte[])> { Sink("\0") };
        for (var depth = 0; depth < 4; depth++)
        {
            steps.Add(Source("D0755 0 d\n"));
            steps.Add(Sink("\0"));
        }

        var events = Run(UploadTree, steps, options: new ScpObserverOptions { MaxDepth = 3 });
        Assert.Equal([ScpFileEventKind.DirectoryEntered, ScpFileEventKind.DirectoryEntered, ScpFileEventKind.DirectoryEntered, ScpFileEventKind.ProtocolProblem], events.Select(e => e.Kind));
        Assert.Equal("/dst/d/d/d", events[2].Path);
    }

    [Theory]
    [InlineData("\u0003")]
    [InlineData("x")]
    public void An_unexpected_sink_byte_is_a_protocol_problem(string answer)
    {
        var events = Run(UploadFile, [Sink("\0"), Source("C0644 5 a\n"), Sink(answer)]);
        Assert.Equal([ScpFileEventKind.ProtocolProblem], events.Select(e => e.Kind));
    }

    [Fact]
    public void A_status_with_nothing_to_answer_is_a_protocol_problem()
    {
        var events = Run(UploadFile, [Sink("\0\0")]);
        Assert.Equal("sink: status 0 with nothing to answer", Assert.Single(events).Error);
    }

    [Fact]
    public void Content_sent_for_a_refused_file_is_a_protocol_problem()
    {
        var events = Run(UploadFile, [Sink("\0"), Source("C0644 5 a\nhel"), Sink("\u0001no\n")]);
        Assert.Equal([ScpFileEventKind.FileFailed, ScpFileEventKind.ProtocolProblem], events.Select(e => e.Kind));
    }

    [Fact]
    public void A_source_too_far_ahead_is_a_protocol_problem()
    {
        var events = Run(UploadFile, [Sink("\0"), Source(string.Concat(Enumerable.Repeat("C0644 0 a\n\0", 40)))]);
        Assert.Equal("source: more than 64 messages await the sink's answer", Assert.Single(events).Error);
    }

    private static List<ScpFileEvent> Replay(ScpCommand command, IReadOnlyList<(bool FromClient, byte[] Data)> segments, int[] cuts, bool merge)
    {
        var chunks = new List<(bool FromClient, byte[] Data)>();
        foreach (var (fromClient, data) in segments)
        {
            if (merge && chunks.Count > 0 && chunks[^1].FromClient == fromClient)
            {
                chunks[^1] = (fromClient, [.. chunks[^1].Data, .. data]);
            }
            else
            {
                chunks.Add((fromClient, data));
            }
        }

        var events = new List<ScpFileEvent>();
        var observer = new ScpObserver(command, events.Add);
        var cut = 0;
        foreach (var (fromClient, data) in chunks)
        {
            var position = 0;
            while (position < data.Length)
            {
                var size = cuts.Length == 0 ? data.Length : 1 + Math.Abs(cuts[cut++ % cuts.Length] % 70_000);
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

    [Property(MaxTest = 30)]
    public void Any_chunking_of_the_recorded_sessions_gives_the_same_events(int[] cuts, bool merge)
    {
        var sessions = ScpObserverInteropTests.Captured.Value.GetAwaiter().GetResult();
        foreach (var result in new[] { sessions.UploadFile, sessions.UploadTree, sessions.UploadRefused, sessions.DownloadFile, sessions.DownloadTree, sessions.DownloadMissing })
        {
            Assert.NotEmpty(result.Events);
            Assert.Equal(result.Events, Replay(result.Command, result.Segments, cuts ?? [], merge));
        }
    }

    [Property(MaxTest = 300)]
    public void Any_chunking_of_the_scripted_tree_gives_the_same_events(NonEmptyArray<PositiveInt> sizes)
    {
        var cuts = sizes.Get.Select(s => s.Get % 40).ToArray();
        var segments = TreeSession.Select(s => (s.FromSource, s.Data)).ToList();
        Assert.Equal(Run(UploadTree, TreeSession), Replay(UploadTree, segments, cuts, merge: false));
        Assert.Equal(Run(UploadTree, TreeSession), Replay(UploadTree, segments, cuts, merge: true));
    }

    private static void AssertOnlyOwnProblemReports(ScpCommand command, Action<ScpObserver> feed)
    {
        var events = new List<ScpFileEvent>();
        var observer = new ScpObserver(command, events.Add, new ScpObserverOptions { MaxLineLength = 100, MaxDepth = 4, MaxUnacknowledged = 4 });
        feed(observer);
        observer.Complete();
        var problem = events.FindIndex(e => e.Kind == ScpFileEventKind.ProtocolProblem);
        Assert.Equal(problem >= 0, !observer.IsInspecting);
        if (problem >= 0)
        {
            Assert.Equal(events.Count - 1, problem);
        }
    }

    [Property(MaxTest = 500)]
    public void Random_bytes_never_throw(byte[] client, byte[] server, int split, bool upload)
    {
        client ??= [];
        server ??= [];
        var command = upload ? UploadTree : DownloadTree;
        AssertOnlyOwnProblemReports(command, observer =>
        {
            var c = client.Length == 0 ? 0 : Math.Abs(split % client.Length);
            observer.ObserveClientData(client.AsSpan(0, c));
            observer.ObserveServerData(server);
            observer.ObserveClientData(client.AsSpan(c));
        });
    }

    [Property(MaxTest = 500)]
    public void Random_lines_never_throw(string[] sourceLines, byte[] answers, bool upload)
    {
        var command = upload ? UploadTree : DownloadTree;
        AssertOnlyOwnProblemReports(command, observer =>
        {
            var lines = sourceLines ?? [];
            answers ??= [];
            for (var i = 0; i < Math.Max(lines.Length, answers.Length); i++)
            {
                if (i < lines.Length && lines[i] is { } line)
                {
                    Feed(observer, command, fromSource: true, Encoding.UTF8.GetBytes(line + "\n"));
                }

                if (i < answers.Length)
                {
                    var status = (byte)(answers[i] % 3);
                    Feed(observer, command, fromSource: false, status == 0 ? [status] : [status, (byte)'x', (byte)'\n']);
                }
            }
        });
    }

    [Property(MaxTest = 200)]
    public void Mutated_recorded_sessions_never_throw(int seed)
    {
        var sessions = ScpObserverInteropTests.Captured.Value.GetAwaiter().GetResult();
        var random = new Random(seed);
        var result = seed % 2 == 0 ? sessions.UploadTree : sessions.DownloadTree;
        AssertOnlyOwnProblemReports(result.Command, observer =>
        {
            foreach (var (fromClient, original) in result.Segments)
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
