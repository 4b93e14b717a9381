using System.Security.Cryptography;
using NhiAudit.Ssh.Sftp;

namespace NhiAudit.Ssh.Tests.Sftp;

/// <summary>
/// The real OpenSSH sftp client and sftp-server, relayed through an <see cref="SftpObserver"/>: what the observer
/// reports must match what the client did.
/// </summary>
public sealed class SftpObserverInteropTests
{
    /// <summary>One capture shared by the tests and the re-chunking properties (it is deterministic apart from timing).</summary>
    internal static readonly Lazy<Task<(SftpRelayCapture.Result Result, byte[] Content)>> Session = new(CaptureSessionAsync);

    private static async Task<(SftpRelayCapture.Result, byte[])> CaptureSessionAsync()
    {
        var root = Directory.CreateTempSubdirectory("nhiaudit-sftp-");
        var local = Directory.CreateDirectory(Path.Combine(root.FullName, "local")).FullName;
        var remote = Directory.CreateDirectory(Path.Combine(root.FullName, "remote")).FullName;
        var content = new byte[300 * 1024 + 123];
        new Random(20261128).NextBytes(content);
        await File.WriteAllBytesAsync(Path.Combine(local, "upload.bin"), content);
        var batch = string.Join('\n',
            "put upload.bin up.bin",
            "get up.bin down.bin",
            "mkdir dir",
            "rename up.bin dir/moved.bin",
            "chmod 600 dir/moved.bin",
            "ln dir/moved.bin hard.bin",
            "ln -s hard.bin sym.bin",
            "ls dir",
            "rm dir/moved.bin",
            "rmdir dir",
            string.Empty);
        var result = await SftpRelayCapture.RunAsync(local, remote, batch);
        Assert.True(result.ExitCode == 0, result.StandardError);
        Assert.Equal(content, await File.ReadAllBytesAsync(Path.Combine(local, "down.bin")));
        root.Delete(recursive: true);
        return (result, content);
    }

    [Fact]
    public async Task Put_and_get_report_path_bytes_and_sha256_of_the_file()
    {
        var (result, content) = await Session.Value;
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(content));
        Assert.DoesNotContain(result.Events, e => e.Kind == SftpEventKind.ProtocolProblem);

        var version = Assert.Single(result.Events, e => e.Kind == SftpEventKind.Version);
        Assert.Contains("posix-rename@openssh.com", version.Detail, StringComparison.Ordinal);

        var files = result.Events.Where(e => e.Kind == SftpEventKind.FileClosed).ToList();
        var put = Assert.Single(files, e => e.Path!.EndsWith("/up.bin", StringComparison.Ordinal) && e.Transfer!.Mode == "write");
        Assert.Equal(SftpStatusCode.Ok, put.Status);
        Assert.Equal(content.Length, put.Transfer!.BytesWritten);
        Assert.Equal(0, put.Transfer.BytesRead);
        Assert.Equal(sha256, put.Transfer.Sha256);
        Assert.True(put.OpenModes.HasFlag(SftpOpenModes.Write | SftpOpenModes.Create | SftpOpenModes.Truncate));

        var get = Assert.Single(files, e => e.Path!.EndsWith("/up.bin", StringComparison.Ordinal) && e.Transfer!.Mode == "read");
        Assert.Equal(SftpStatusCode.Ok, get.Status);
        Assert.Equal(content.Length, get.Transfer!.BytesRead);
        Assert.Equal(sha256, get.Transfer.Sha256);
        Assert.Null(get.Transfer.NotHashedReason);
    }

    [Fact]
    public async Task Mkdir_rename_chmod_ls_rm_and_rmdir_are_reported_with_their_status()
    {
        var (result, _) = await Session.Value;
        var events = result.Events;

        var mkdir = Assert.Single(events, e => e.Kind == SftpEventKind.MakeDirectory);
        Assert.EndsWith("/dir", mkdir.Path, StringComparison.Ordinal);
        Assert.Equal(SftpStatusCode.Ok, mkdir.Status);

        var rename = Assert.Single(events, e => e.Kind == SftpEventKind.Rename);
        Assert.EndsWith("/up.bin", rename.Path, StringComparison.Ordinal);
        Assert.EndsWith("/dir/moved.bin", rename.TargetPath, StringComparison.Ordinal);
        Assert.True(rename.Succeeded);

        var chmod = Assert.Single(events, e => e.Kind == SftpEventKind.SetStat);
        Assert.EndsWith("/dir/moved.bin", chmod.Path, StringComparison.Ordinal);
        Assert.Equal(0x180u, chmod.Attributes!.Permissions & 0x1FF);
        Assert.Contains("mode=0600", chmod.Attributes.Describe(), StringComparison.Ordinal);
        Assert.True(chmod.Succeeded);

        // sftp's `ls dir` opens "dir/"; the listing holds ., .. and moved.bin.
        var listing = Assert.Single(events, e => e.Kind == SftpEventKind.DirectoryClosed && e.Path!.TrimEnd('/').EndsWith("/dir", StringComparison.Ordinal));
        Assert.Equal(3, listing.EntryCount);
        Assert.Equal(SftpStatusCode.Ok, listing.Status);

        var remove = Assert.Single(events, e => e.Kind == SftpEventKind.Remove);
        Assert.EndsWith("/dir/moved.bin", remove.Path, StringComparison.Ordinal);
        Assert.Equal(SftpStatusCode.Ok, remove.Status);

        var rmdir = Assert.Single(events, e => e.Kind == SftpEventKind.RemoveDirectory);
        Assert.EndsWith("/dir", rmdir.Path, StringComparison.Ordinal);
        Assert.True(rmdir.Succeeded);

        var hardlink = Assert.Single(events, e => e.Kind == SftpEventKind.Hardlink);
        Assert.EndsWith("/dir/moved.bin", hardlink.Path, StringComparison.Ordinal);
        Assert.EndsWith("/hard.bin", hardlink.TargetPath, StringComparison.Ordinal);
        Assert.Equal(SftpStatusCode.Ok, hardlink.Status);

        var symlink = Assert.Single(events, e => e.Kind == SftpEventKind.Symlink);
        Assert.EndsWith("/sym.bin", symlink.Path, StringComparison.Ordinal);
        Assert.Equal("hard.bin", symlink.TargetPath);
        Assert.True(symlink.Succeeded);

        Assert.Contains(events, e => e.Kind == SftpEventKind.RealPath && e.TargetPath is not null);
        Assert.Contains(events, e => e.Kind == SftpEventKind.Stat);
    }

    [Fact]
    public async Task A_denied_write_is_answered_permission_denied_and_the_session_goes_on()
    {
        var root = Directory.CreateTempSubdirectory("nhiaudit-sftp-deny-");
        try
        {
            var local = Directory.CreateDirectory(Path.Combine(root.FullName, "local")).FullName;
            var remote = Directory.CreateDirectory(Path.Combine(root.FullName, "remote")).FullName;
            await File.WriteAllTextAsync(Path.Combine(local, "config"), "secret=1\n");
            var batch = "-put config protected.conf\nmkdir after\n";
            var result = await SftpRelayCapture.RunAsync(local, remote, batch, operation =>
                operation.Kind == SftpOperationKind.OpenWrite && operation.Path!.EndsWith("/protected.conf", StringComparison.Ordinal)
                    ? "writes to protected.conf are not allowed"
                    : null);

            Assert.True(result.ExitCode == 0, result.StandardError);
            Assert.Contains("Permission denied", result.StandardError, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(remote, "protected.conf")));
            Assert.True(Directory.Exists(Path.Combine(remote, "after")));

            var denied = Assert.Single(result.Events, e => e.Denied);
            Assert.Equal(SftpEventKind.OpenFailed, denied.Kind);
            Assert.EndsWith("/protected.conf", denied.Path, StringComparison.Ordinal);
            Assert.Equal(SftpStatusCode.PermissionDenied, denied.Status);
            Assert.Equal("writes to protected.conf are not allowed", denied.StatusMessage);
            Assert.Contains(result.Events, e => e.Kind == SftpEventKind.MakeDirectory && e.Succeeded);
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }
}
