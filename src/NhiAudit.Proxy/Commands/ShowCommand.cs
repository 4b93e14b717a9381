using System.CommandLine;
using System.Globalization;
using System.Text.Json;

namespace NhiAudit.Proxy.Commands;

/// <summary><c>nhiaudit show DIR</c>: the audit trail as a person reads it, one line per record.</summary>
internal static class ShowCommand
{
    public static Command Create()
    {
        var directory = new Argument<DirectoryInfo>("directory") { Description = "The audit directory." };
        var json = new Option<bool>("--json") { Description = "Print the raw JSON lines." };
        var format = new Option<string>("--format") { Description = "text (default), json, or k8s-audit: the Kubernetes requests as audit.k8s.io/v1 Event lines, for tools that read Kubernetes audit logs." };
        var command = new Command("show", "Print the audit trail.") { directory, json, format };
        command.SetAction(parse =>
        {
            var dir = parse.GetValue(directory)!;
            if (!dir.Exists)
            {
                Console.Error.WriteLine($"nhiaudit show: {dir.FullName} does not exist");
                return 2;
            }

            var files = dir.GetFiles("audit-*.jsonl").OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
            switch (parse.GetValue(format))
            {
                case null or "" or "text" or "json":
                    break;
                case "k8s-audit":
                    var records = files.SelectMany(f => File.ReadLines(f.FullName)).Where(l => l.Contains("\"k8s.", StringComparison.Ordinal)).Select(l => JsonDocument.Parse(l).RootElement.Clone());
                    foreach (var audit in NhiAudit.Kubernetes.Audit.KubernetesAuditEventExporter.Export(records))
                    {
                        Console.WriteLine(audit.ToJsonString());
                    }

                    return 0;
                default:
                    Console.Error.WriteLine($"nhiaudit show: unknown --format '{parse.GetValue(format)}' (text, json, k8s-audit)");
                    return 2;
            }

            var raw = parse.GetValue(json) || parse.GetValue(format) == "json";
            foreach (var file in files)
            {
                foreach (var line in File.ReadLines(file.FullName))
                {
                    Console.WriteLine(raw ? line : Describe(line));
                }
            }

            return 0;
        });
        return command;
    }

    internal static string Describe(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            var seq = r.GetProperty("seq").GetInt64().ToString(CultureInfo.InvariantCulture).PadLeft(6);
            var time = r.TryGetProperty("time", out var t) ? t.GetString()?[11..23] : "";
            var type = r.TryGetProperty("type", out var ty) ? ty.GetString() : "?";
            var who = r.TryGetProperty("identity", out var id) && id.TryGetProperty("name", out var name) ? name.GetString() : null;
            var session = r.TryGetProperty("session", out var s) && s.ValueKind == JsonValueKind.Object && s.TryGetProperty("id", out var sid) ? sid.GetString()
                : r.TryGetProperty("connection", out var connection) ? connection.GetString()
                : r.TryGetProperty("request", out var sshRequest) && sshRequest.ValueKind == JsonValueKind.Object && sshRequest.TryGetProperty("connection", out var sshConnection) ? sshConnection.GetString()
                : null;
            var detail = type switch
            {
                "pg.request" => $"{Get(r, "kind")} {Shorten(Get(r, "text"))}{Params(r)}{(r.TryGetProperty("approval", out var approval) ? " [approval " + approval.GetString() + "]" : "")}{Refused(r)}",
                "pg.response" => r.TryGetProperty("sqlstate", out var state)
                    ? $"← #{Get(r, "request")} ERROR {state.GetString()} {Get(r, "error")}"
                    : $"← #{Get(r, "request")} {Get(r, "tag")} rows={Get(r, "rows")} {Get(r, "durationMs")}ms{Masked(r)}",
                "pg.auth.failed" => $"{Get(r, "client")} user={Get(r, "user")}: {Get(r, "reason")}",
                "pg.session.start" => $"tls={Get(r, "tls")} upstreamPid={Get(r, "upstreamPid")} token expires {Get(r, "tokenExpires")}",
                "pg.session.end" => $"{Get(r, "endReason")} after {Get(r, "statements")} statements",
                "pg.approval.requested" => $"HELD {Get(r, "approval")} rule={Get(r, "rule")} {Shorten(Get(r, "text"))}",
                "k8s.request" => $"{Get(r.GetProperty("request"), "method")} {Shorten(Get(r.GetProperty("request"), "uri"))} ({Get(r.GetProperty("request"), "action")}){(r.TryGetProperty("approval", out var k8sApproval) ? " [approval " + k8sApproval.GetString() + "]" : "")}{Refused(r)}",
                "k8s.response" => $"← #{Get(r, "request")} {Get(r, "status")} {Get(r, "durationMs")}ms{Masked(r)}{(r.TryGetProperty("stream", out var stream) ? $" stream exit={Get(stream, "exitCode")} {Get(stream, "recording")}" : "")}",
                "k8s.auth.failed" => $"{Get(r.GetProperty("request"), "client")} {Get(r.GetProperty("request"), "uri")}: {Get(r, "error")}",
                "k8s.approval.requested" => $"HELD {Get(r, "approval")} rule={Get(r, "rule")} {Shorten(Get(r, "text"))}",
                "k8s.approval.decided" or "pg.approval.decided" => $"{Get(r, "approval")} {Get(r, "state")}{(r.TryGetProperty("decidedBy", out var by) ? " by " + by.GetProperty("subject").GetString() : "")}{(r.TryGetProperty("why", out var why) ? ": " + why.GetString() : "")}",
                "ssh.auth" or "ssh.auth.failed" => $"{Get(r, "client")} user={Get(r, "user")} {Get(r, "method")}{(r.TryGetProperty("key", out var key) ? " key " + key.GetString() : "")}{(r.TryGetProperty("error", out var authError) ? ": " + authError.GetString() : "")}",
                "ssh.request" => $"{Get(r.GetProperty("request"), "action")} {Shorten(SshWhat(r.GetProperty("request")))}{(r.TryGetProperty("approval", out var sshApproval) ? " [approval " + sshApproval.GetString() + "]" : "")}{Refused(r)}",
                "ssh.response" => $"← #{Get(r, "request")} exit={(r.TryGetProperty("exitStatus", out var exit) ? exit.GetRawText() : Get(r, "exitSignal"))} in={Get(r, "bytesIn")} out={Get(r, "bytesOut")} {Get(r, "durationMs")}ms{(r.TryGetProperty("recording", out var cast) ? " " + cast.GetString() : "")}{(r.TryGetProperty("error", out var sshError) ? " " + sshError.GetString() : "")}",
                "ssh.sftp.request" => $"{Get(r.GetProperty("request"), "operation")} {Get(r.GetProperty("request"), "path")}{(r.GetProperty("request").TryGetProperty("targetPath", out var to) ? " → " + to.GetString() : "")}{Refused(r)}",
                "ssh.sftp" or "ssh.scp" => $"← #{Get(r, "request")} {Get(r, "kind")} {Get(r, "path")}{(r.TryGetProperty("bytesWritten", out var written) && written.GetInt64() > 0 ? " wrote " + written.GetRawText() : "")}{(r.TryGetProperty("bytesRead", out var read) && read.GetInt64() > 0 ? " read " + read.GetRawText() : "")}{(r.TryGetProperty("size", out var size) ? " size " + size.GetRawText() : "")}{(r.TryGetProperty("sha256", out var sha) ? " sha256=" + sha.GetString()![..16] + "…" : "")}{(r.TryGetProperty("denied", out _) ? " DENIED" : "")}",
                "ssh.approval.requested" => $"HELD {Get(r, "approval")} rule={Get(r, "rule")} {Shorten(Get(r, "text"))}",
                "ssh.approval.decided" => $"{Get(r, "approval")} {Get(r, "state")}{(r.TryGetProperty("decidedBy", out var sshBy) ? " by " + sshBy.GetProperty("subject").GetString() : "")}{(r.TryGetProperty("why", out var sshWhy) ? ": " + sshWhy.GetString() : "")}",
                "ssh.closed" => $"after {Get(r, "requests")} requests: {Get(r, "why")}",
                "log.checkpoint" when r.TryGetProperty("checkpoint", out var checkpoint) => $"signed ({Get(checkpoint, "alg")}, key {Get(checkpoint, "keyId")}): seq={Get(checkpoint, "seq")} hash={Get(checkpoint, "hash")[..Math.Min(16, Get(checkpoint, "hash").Length)]}…",
                "log.opened" => $"{Get(r, "segment")} replica={Get(r, "replica")} {Get(r, "durability")}{(r.TryGetProperty("previousClosed", out _) ? " (previous run did not close the log)" : "")}",
                "log.rotated" => $"→ {Get(r, "next")}",
                "log.segment" => $"continues {Get(r, "previous")}",
                "log.retention" => $"removed {Get(r, "removed")} through seq={Get(r, "throughSeq")}",
                _ => "",
            };
            return $"{seq} {time} {type,-17} {session,-12} {who,-28} {detail}";
        }
        catch (JsonException)
        {
            return "(not JSON) " + line;
        }
    }

    /// <summary>What an SSH request ran: the command, the subsystem, the tunnel's destination, or the terminal of a shell.</summary>
    private static string SshWhat(JsonElement request) =>
        request.TryGetProperty("command", out var command) ? command.GetString() ?? ""
        : request.TryGetProperty("subsystem", out var subsystem) ? subsystem.GetString() ?? ""
        : request.TryGetProperty("destination", out var destination) ? destination.GetString() ?? ""
        : request.TryGetProperty("pty", out var pty) ? $"(terminal {Get(pty, "term")} {Get(pty, "cols")}x{Get(pty, "rows")})"
        : "";

    private static string Get(JsonElement r, string name) =>
        r.TryGetProperty(name, out var v) ? (v.ValueKind == JsonValueKind.String ? v.GetString() ?? "" : v.GetRawText()) : "";

    private static string Refused(JsonElement r) =>
        r.TryGetProperty("refused", out var refused)
            ? $"  ✗ REFUSED{(r.TryGetProperty("policy", out var policy) ? $" by rule {policy.GetProperty("rule").GetString()}" : "")}: {refused.GetString()}"
            : "";

    private static string Masked(JsonElement r)
    {
        if (!r.TryGetProperty("masked", out var masked))
        {
            return "";
        }

        var columns = masked.TryGetProperty("columns", out var c) || masked.TryGetProperty("fields", out c) ? string.Join("; ", c.EnumerateArray().Select(e => e.GetString())) : "";
        var detected = masked.TryGetProperty("detectors", out var d) ? $" detected={d.GetString()}" : "";
        return $"  masked {Get(masked, "values")} values{(columns.Length > 0 ? ": " + columns : "")}{detected}";
    }

    private static string Params(JsonElement r) =>
        r.TryGetProperty("params", out var p) ? " params=" + p.GetRawText() : "";

    private static string Shorten(string text)
    {
        var oneLine = string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        return oneLine.Length <= 90 ? oneLine : oneLine[..89] + "…";
    }
}
