using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using NhiAudit.Recording;

namespace NhiAudit.Tests.Recording;

public sealed class AsciicastWriterTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "nhiaudit-cast-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private string NewPath() => Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".cast");

    [Fact]
    public async Task Writes_header_and_events()
    {
        var time = new ManualTime(DateTimeOffset.FromUnixTimeSeconds(1_790_000_000));
        var path = NewPath();
        var env = new Dictionary<string, string> { ["TERM"] = "xterm-256color", ["SHELL"] = "/bin/sh" };
        var cast = AsciicastWriter.Create(path, 80, 24, "kubectl exec -it web -- sh", time, env);
        Assert.Equal(path, cast.Path);

        time.Advance(TimeSpan.FromMilliseconds(1500.25));
        cast.Output("$ "u8);
        time.Advance(TimeSpan.FromSeconds(1));
        cast.Input("ls\r"u8);
        cast.Resize(120, 40);
        cast.Output("a\tb \"q\" \\ \u001b[0m\r\n"u8);
        cast.Output([]);
        Assert.Equal(4, cast.EventCount);
        Assert.Null(cast.Sha256);
        await cast.FlushAsync();
        await cast.DisposeAsync();
        await cast.DisposeAsync();

        var lines = await File.ReadAllLinesAsync(path);
        Assert.Equal(5, lines.Length);
        using (var header = JsonDocument.Parse(lines[0]))
        {
            var h = header.RootElement;
            Assert.Equal(2, h.GetProperty("version").GetInt32());
            Assert.Equal(80, h.GetProperty("width").GetInt32());
            Assert.Equal(24, h.GetProperty("height").GetInt32());
            Assert.Equal(1_790_000_000, h.GetProperty("timestamp").GetInt64());
            Assert.Equal("kubectl exec -it web -- sh", h.GetProperty("command").GetString());
            Assert.Equal("xterm-256color", h.GetProperty("env").GetProperty("TERM").GetString());
        }

        Assert.StartsWith("[1.500250,\"o\",\"$ \"]", lines[1], StringComparison.Ordinal);
        Assert.Equal("[2.500250,\"i\",\"ls\\r\"]", lines[2]);
        Assert.Equal("[2.500250,\"r\",\"120x40\"]", lines[3]);
        using (var ev = JsonDocument.Parse(lines[4]))
        {
            Assert.Equal(2.50025, ev.RootElement[0].GetDouble(), 6);
            Assert.Equal("o", ev.RootElement[1].GetString());
            Assert.Equal("a\tb \"q\" \\ \u001b[0m\r\n", ev.RootElement[2].GetString());
        }

        var expectedHash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(path)));
        Assert.Equal(expectedHash, cast.Sha256);

        // Ignored after dispose.
        cast.Output("late"u8);
        Assert.Equal(4, cast.EventCount);
    }

    [Fact]
    public async Task Header_omits_command_and_env_when_absent()
    {
        var path = NewPath();
        await using (var cast = AsciicastWriter.Create(path, 100, 30, null))
        {
        }

        using var header = JsonDocument.Parse((await File.ReadAllLinesAsync(path))[0]);
        Assert.False(header.RootElement.TryGetProperty("command", out _));
        Assert.False(header.RootElement.TryGetProperty("env", out _));
        Assert.True(Math.Abs(header.RootElement.GetProperty("timestamp").GetInt64() - DateTimeOffset.UtcNow.ToUnixTimeSeconds()) < 60);
    }

    [Fact]
    public async Task Split_utf8_sequences_are_carried_over()
    {
        var path = NewPath();
        var text = "héllo 😀 €";
        var bytes = Encoding.UTF8.GetBytes(text);
        var cast = AsciicastWriter.Create(path, 80, 24, null, new ManualTime(DateTimeOffset.UnixEpoch));
        foreach (var b in bytes)
        {
            cast.Output([b]);
        }

        // Input has its own decoder: interleaving does not mix them.
        var euro = Encoding.UTF8.GetBytes("€");
        cast.Input(euro.AsSpan(0, 1));
        cast.Output("!"u8);
        cast.Input(euro.AsSpan(1));
        await cast.DisposeAsync();

        var events = ReadEvents(path);
        Assert.Equal(text + "!", string.Concat(events.Where(e => e.Code == "o").Select(e => e.Data)));
        Assert.Equal("€", string.Concat(events.Where(e => e.Code == "i").Select(e => e.Data)));
        Assert.DoesNotContain(events, e => e.Data.Contains('\uFFFD', StringComparison.Ordinal));
        Assert.DoesNotContain(events, e => e.Data.Length == 0);
    }

    [Fact]
    public async Task Invalid_bytes_become_replacement_characters()
    {
        var path = NewPath();
        var cast = AsciicastWriter.Create(path, 80, 24, null);
        cast.Output([(byte)'a', 0xFF, (byte)'b', 0xC3, 0x28]);
        cast.Output([0xE2, 0x82]); // dangling at the end: flushed as U+FFFD on dispose
        await cast.DisposeAsync();

        var output = string.Concat(ReadEvents(path).Select(e => e.Data));
        Assert.Equal("a\uFFFDb\uFFFD(\uFFFD", output);
    }

    [Fact]
    public async Task Concurrent_pumps_write_whole_lines()
    {
        var path = NewPath();
        var cast = AsciicastWriter.Create(path, 80, 24, null);
        var payload = Encoding.UTF8.GetBytes(new string('x', 100) + "é");
        await Task.WhenAll(
            Task.Run(() =>
            {
                for (var i = 0; i < 2000; i++)
                {
                    cast.Output(payload);
                }
            }),
            Task.Run(() =>
            {
                for (var i = 0; i < 2000; i++)
                {
                    cast.Input(payload);
                }
            }),
            Task.Run(async () =>
            {
                for (var i = 0; i < 50; i++)
                {
                    await cast.FlushAsync();
                }
            }));
        await cast.DisposeAsync();

        Assert.Equal(4000, cast.EventCount);
        var events = ReadEvents(path);
        Assert.Equal(4000, events.Count);
        Assert.All(events, e => Assert.Equal(101, e.Data.Length));
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.Time <= p.Second.Time));
    }

    [Fact]
    public void Refuses_to_overwrite_a_file()
    {
        var path = NewPath();
        Directory.CreateDirectory(_dir);
        File.WriteAllText(path, "x");
        Assert.Throws<IOException>(() => AsciicastWriter.Create(path, 80, 24, null));
        Assert.Equal("x", File.ReadAllText(path));
    }

    [Fact]
    public async Task Asciinema_cat_replays_the_output()
    {
        if (FindOnPath("asciinema") is not { } asciinema)
        {
            return; // asciinema is not installed here: nothing to compare against
        }

        var path = NewPath();
        var written = "plain \u001b[1;32mgreen\u001b[0m\r\nhéllo 😀\r\n\t\"quoted\" \\ back\r\n";
        var bytes = Encoding.UTF8.GetBytes(written);
        var cast = AsciicastWriter.Create(path, 80, 24, "sh", env: new Dictionary<string, string> { ["TERM"] = "xterm" });
        for (var i = 0; i < bytes.Length; i += 3)
        {
            cast.Output(bytes.AsSpan(i, Math.Min(3, bytes.Length - i)));
        }

        cast.Input("ignored by cat"u8);
        cast.Resize(100, 30);
        await cast.DisposeAsync();

        // asciinema 2.x cat opens /dev/tty: script(1) gives it a pseudo-terminal; its output goes to a file, untranslated.
        var output = path + ".out";
        ProcessStartInfo start = FindOnPath("script") is { } script
            ? new(script, ["-qec", $"'{asciinema}' cat '{path}' > '{output}'", "/dev/null"])
            : new("/bin/sh", ["-c", $"'{asciinema}' cat '{path}' > '{output}'"]);
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.Environment["LC_ALL"] = "C.UTF-8";
        start.Environment["LANG"] = "C.UTF-8";
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = await process.StandardOutput.ReadToEndAsync();
        var stderr = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, stdout + stderr);
        Assert.Equal(written, Encoding.UTF8.GetString(await File.ReadAllBytesAsync(output)));
    }

    private static string? FindOnPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static List<(double Time, string Code, string Data)> ReadEvents(string path)
    {
        var result = new List<(double, string, string)>();
        foreach (var line in File.ReadLines(path).Skip(1))
        {
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            Assert.Equal(3, e.GetArrayLength());
            result.Add((e[0].GetDouble(), e[1].GetString()!, e[2].GetString()!));
        }

        return result;
    }

    private sealed class ManualTime(DateTimeOffset now) : TimeProvider
    {
        private long _ticks;

        public override DateTimeOffset GetUtcNow() => now + TimeSpan.FromTicks(Interlocked.Read(ref _ticks));

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Interlocked.Read(ref _ticks);

        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }
}
