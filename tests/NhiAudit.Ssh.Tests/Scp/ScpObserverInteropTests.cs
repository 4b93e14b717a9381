using System.Security.Cryptography;
using NhiAudit.Ssh.Scp;

namespace NhiAudit.Ssh.Tests.Scp;

/// <summary>
/// The real OpenSSH <c>scp -O</c> client and the real remote <c>scp -t</c>/<c>scp -f</c>, relayed through an
/// <see cref="ScpObserver"/>: what the observer reports must match what scp copied.
/// </summary>
public sealed class ScpObserverInteropTests
{
    internal sealed record Sessions(
        string Local,
        string Remote,
        ScpRelayCapture.Result UploadFile,
        ScpRelayCapture.Result UploadTree,
        ScpRelayCapture.Result UploadRefused,
        ScpRelayCapture.Result DownloadFile,
        ScpRelayCapture.Result DownloadTree,
        ScpRelayCapture.Result DownloadMissing);

    /// <summary>One set of captures shared by the tests and the re-chunking properties.</summary>
    internal static readonly Lazy<Task<Sessions>> Captured = new(CaptureAsync);

    /// <summary>Relative paths of the files of the tree copied both ways.</summary>
    private static readonly string[] TreeFiles = ["a.bin", "with space.txt", "sub/b.txt", "sub/deeper/empty.bin"];

    private static async Task<Sessions> CaptureAsync()
    {
        var root = Directory.CreateTempSubdirectory("nhiaudit-scp-").FullName;

        // The tests compare the copies on disk, so the files stay until the test process ends.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Directory.Delete(root, recursive: true);
        var local = Directory.CreateDirectory(Path.Combine(root, "local")).FullName;

        // A space in the remote path: the client sends it quoted as the user wrote it, the remote shell unquotes it.
        var remote = Directory.CreateDirectory(Path.Combine(root, "remote side")).FullName;
        var random = new Random(20261128);
        byte[] Bytes(int length)
        {
            var bytes = new byte[length];
            random.NextBytes(bytes);
            return bytes;
        }

        await File.WriteAllBytesAsync(Path.Combine(local, "one.bin"), Bytes((100 * 1024) + 7));
        await File.WriteAllBytesAsync(Path.Combine(remote, "source.bin"), Bytes((200 * 1024) + 11));
        foreach (var tree in new[] { Path.Combine(local, "tree"), Path.Combine(remote, "srctree") })
        {
            Directory.CreateDirectory(Path.Combine(tree, "sub", "deeper"));
            await File.WriteAllBytesAsync(Path.Combine(tree, "a.bin"), Bytes((300 * 1024) + 123));
            await File.WriteAllTextAsync(Path.Combine(tree, "with space.txt"), "hello, scp\n");
            await File.WriteAllBytesAsync(Path.Combine(tree, "sub", "b.txt"), Bytes(4097));
            await File.WriteAllBytesAsync(Path.Combine(tree, "sub", "deeper", "empty.bin"), []);
        }

        Directory.CreateDirectory(Path.Combine(remote, "upload"));
        var uploadFile = await ScpRelayCapture.RunAsync(local, remote, "one.bin", $"relay:'{remote}/one-copy.bin'");
        var uploadTree = await ScpRelayCapture.RunAsync(local, remote, "-r", "-p", "tree", $"relay:'{remote}/upload'");
        // scp checks that the name sent matches the last component of what it asked for, quotes included: a backslash
        // keeps that component clean.
        var escaped = remote.Replace(" ", "\\ ", StringComparison.Ordinal);
        var uploadRefused = await ScpRelayCapture.RunAsync(local, remote, "one.bin", $"relay:'{remote}/no such directory/one.bin'");
        var downloadFile = await ScpRelayCapture.RunAsync(local, remote, $"relay:{escaped}/source.bin", "downloaded.bin");
        var downloadTree = await ScpRelayCapture.RunAsync(local, remote, "-r", $"relay:'{remote}/srctree'", "tree-back");
        var downloadMissing = await ScpRelayCapture.RunAsync(local, remote, $"relay:'{remote}/missing.bin'", "missing.bin");
        return new Sessions(local, remote, uploadFile, uploadTree, uploadRefused, downloadFile, downloadTree, downloadMissing);
    }

    private static string Sha256Of(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    private static void AssertTransferred(ScpFileEvent scpEvent, string path, string name, string contentFile)
    {
        Assert.Equal(ScpFileEventKind.FileTransferred, scpEvent.Kind);
        Assert.Equal(path, scpEvent.Path);
        Assert.Equal(name, scpEvent.Name);
        Assert.Equal(new FileInfo(contentFile).Length, scpEvent.Size);
        Assert.Equal(scpEvent.Size, scpEvent.TransferredBytes);
        Assert.Equal(Sha256Of(contentFile), scpEvent.Sha256);
        Assert.Null(scpEvent.Error);
    }

    [Fact]
    public async Task Upload_of_one_file_reports_the_target_path_name_size_and_sha256()
    {
        var sessions = await Captured.Value;
        var result = sessions.UploadFile;
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal($"scp -t '{sessions.Remote}/one-copy.bin'", result.CommandLine);
        Assert.Equal(new ScpCommand(ScpDirection.Upload, sessions.Remote + "/one-copy.bin", false, false), result.Command);

        var copy = Path.Combine(sessions.Remote, "one-copy.bin");
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(sessions.Local, "one.bin")), await File.ReadAllBytesAsync(copy));
        var file = Assert.Single(result.Events);
        AssertTransferred(file, copy, "one.bin", copy);
        Assert.Equal("0644", file.Mode);
        Assert.Null(file.ModifyTime);
    }

    [Fact]
    public async Task Recursive_upload_reports_every_directory_and_file_of_the_tree()
    {
        var sessions = await Captured.Value;
        var result = sessions.UploadTree;
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.True(result.Command is { Direction: ScpDirection.Upload, Recursive: true, PreserveTimes: true }, result.CommandLine);
        Assert.DoesNotContain(result.Events, e => e.Kind is ScpFileEventKind.ProtocolProblem or ScpFileEventKind.Error or ScpFileEventKind.FileFailed);

        var target = Path.Combine(sessions.Remote, "upload", "tree");
        Assert.Equal(
            new[] { target, target + "/sub", target + "/sub/deeper" }.Order(),
            result.Events.Where(e => e.Kind == ScpFileEventKind.DirectoryEntered).Select(e => e.Path).Order());
        var files = result.Events.Where(e => e.Kind == ScpFileEventKind.FileTransferred).ToList();
        Assert.Equal(TreeFiles.Length, files.Count);
        foreach (var relative in TreeFiles)
        {
            var copy = Path.Combine(target, relative);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(sessions.Local, "tree", relative)), await File.ReadAllBytesAsync(copy));
            AssertTransferred(Assert.Single(files, e => e.Path == copy), copy, Path.GetFileName(relative), copy);
        }

        // -p: every file and directory carries the times the source sent.
        var original = new DateTimeOffset(File.GetLastWriteTimeUtc(Path.Combine(sessions.Local, "tree", "a.bin"))).ToUnixTimeSeconds();
        Assert.Equal(original, Assert.Single(files, e => e.Name == "a.bin").ModifyTime);
        Assert.All(result.Events, e => Assert.NotNull(e.ModifyTime));
    }

    [Fact]
    public async Task Upload_the_sink_cannot_write_reports_the_file_failed_with_the_sinks_message()
    {
        var sessions = await Captured.Value;
        var result = sessions.UploadRefused;
        Assert.NotEqual(0, result.ExitCode);

        var target = sessions.Remote + "/no such directory/one.bin";
        var file = Assert.Single(result.Events);
        Assert.Equal(
            new ScpFileEvent(ScpFileEventKind.FileFailed, target, new FileInfo(Path.Combine(sessions.Local, "one.bin")).Length, "0644", null, $"scp: {target}: No such file or directory") { Name = "one.bin" },
            file);
        Assert.Contains(file.Error!, result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Download_of_a_file_reports_the_source_path_size_and_sha256()
    {
        var sessions = await Captured.Value;
        var result = sessions.DownloadFile;
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal("scp -f " + sessions.Remote.Replace(" ", "\\ ", StringComparison.Ordinal) + "/source.bin", result.CommandLine);
        Assert.Equal(new ScpCommand(ScpDirection.Download, sessions.Remote + "/source.bin", false, false), result.Command);

        var source = Path.Combine(sessions.Remote, "source.bin");
        var downloaded = Path.Combine(sessions.Local, "downloaded.bin");
        Assert.Equal(await File.ReadAllBytesAsync(source), await File.ReadAllBytesAsync(downloaded));
        AssertTransferred(Assert.Single(result.Events), source, "source.bin", downloaded);
    }

    [Fact]
    public async Task Recursive_download_reports_the_remote_paths_of_the_tree()
    {
        var sessions = await Captured.Value;
        var result = sessions.DownloadTree;
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.DoesNotContain(result.Events, e => e.Kind is ScpFileEventKind.ProtocolProblem or ScpFileEventKind.Error or ScpFileEventKind.FileFailed);

        var source = Path.Combine(sessions.Remote, "srctree");
        Assert.Contains(result.Events, e => e.Kind == ScpFileEventKind.DirectoryEntered && e.Path == source);
        foreach (var relative in TreeFiles)
        {
            var back = Path.Combine(sessions.Local, "tree-back", relative);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(source, relative)), await File.ReadAllBytesAsync(back));
            AssertTransferred(Assert.Single(result.Events, e => e.Path == Path.Combine(source, relative)), Path.Combine(source, relative), Path.GetFileName(relative), back);
        }
    }

    [Fact]
    public async Task Download_of_a_missing_file_reports_the_remote_error()
    {
        var sessions = await Captured.Value;
        var result = sessions.DownloadMissing;
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("No such file or directory", result.StandardError, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(sessions.Local, "missing.bin")));

        var error = Assert.Single(result.Events);
        Assert.Equal(ScpFileEventKind.Error, error.Kind);
        Assert.Equal(sessions.Remote + "/missing.bin", error.Path);
        Assert.Equal($"scp: {sessions.Remote}/missing.bin: No such file or directory", error.Error);
    }
}
