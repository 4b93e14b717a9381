using NhiAudit.Ssh.Scp;

namespace NhiAudit.Ssh.Tests.Scp;

/// <summary>Recognising the remote command of a legacy scp copy, with the shell's quoting.</summary>
public sealed class ScpCommandTests
{
    [Theory]
    [InlineData("scp -t /tmp/x", ScpDirection.Upload, "/tmp/x", false, false)]
    [InlineData("scp -v -r -p -t -- /dir", ScpDirection.Upload, "/dir", true, true)]
    [InlineData("scp -f 'file name'", ScpDirection.Download, "file name", false, false)]
    [InlineData("scp -f '/tmp/it'\\''s here'", ScpDirection.Download, "/tmp/it's here", false, false)]
    [InlineData("scp -t a\\ b", ScpDirection.Upload, "a b", false, false)]
    [InlineData("scp -t \"x \\\"y\\\" \\\\z \\a\"", ScpDirection.Upload, "x \"y\" \\z \\a", false, false)]
    [InlineData("scp -t 'a'\"b\"c", ScpDirection.Upload, "abc", false, false)]
    [InlineData("scp -t ''\\''-x'", ScpDirection.Upload, "'-x", false, false)]
    [InlineData("scp -prt /x", ScpDirection.Upload, "/x", true, true)]
    [InlineData("scp -q -f /x -r", ScpDirection.Download, "/x", true, false)]
    [InlineData("  /usr/bin/scp\t-f   /srv/*.log  ", ScpDirection.Download, "/srv/*.log", false, false)]
    [InlineData("scp -t -- -weird", ScpDirection.Upload, "-weird", false, false)]
    [InlineData("scp -t -- -r", ScpDirection.Upload, "-r", false, false)]
    [InlineData("scp -t -", ScpDirection.Upload, "-", false, false)]
    [InlineData("scp -t di\\\nr", ScpDirection.Upload, "dir", false, false)]
    [InlineData("scp -t ~/file#1", ScpDirection.Upload, "~/file#1", false, false)]
    public void Recognises_what_openssh_sends(string commandLine, ScpDirection direction, string path, bool recursive, bool preserve)
    {
        Assert.True(ScpCommand.TryParse(commandLine, out var command));
        Assert.Equal(new ScpCommand(direction, path, recursive, preserve), command);
    }

    [Fact]
    public void Records_that_the_target_should_be_a_directory()
    {
        Assert.True(ScpCommand.TryParse("scp -d -t /dest", out var command));
        Assert.True(command.TargetShouldBeDirectory);
        Assert.True(ScpCommand.TryParse("scp -t /dest", out command));
        Assert.False(command.TargetShouldBeDirectory);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("sftp -t /x")]
    [InlineData("scpx -t /x")]
    [InlineData("scp /x")]
    [InlineData("scp -r /x")]
    [InlineData("scp -t -f /x")]
    [InlineData("scp -tf /x")]
    [InlineData("scp -t")]
    [InlineData("scp -t ''")]
    [InlineData("scp -t a b")]
    [InlineData("scp -f a -- b")]
    [InlineData("scp -P 22 -t /x")]
    [InlineData("scp -3 -t /x")]
    [InlineData("scp -t /x; rm -rf /")]
    [InlineData("scp -t /x && id")]
    [InlineData("scp -t /x | cat")]
    [InlineData("scp -t /x > /dev/null")]
    [InlineData("scp -t $HOME")]
    [InlineData("scp -t \"$HOME\"")]
    [InlineData("scp -t `id`")]
    [InlineData("scp -t $(id)")]
    [InlineData("scp -t /x # comment")]
    [InlineData("scp -t 'unterminated")]
    [InlineData("scp -t \"unterminated")]
    [InlineData("scp -t /x\\")]
    [InlineData("scp -t /x\r")]
    [InlineData("scp -t /x\nrm -rf /")]
    public void Rejects_anything_else(string commandLine)
    {
        Assert.False(ScpCommand.TryParse(commandLine, out var command));
        Assert.Null(command);
    }
}
