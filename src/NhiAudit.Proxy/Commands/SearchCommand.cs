using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using NhiAudit.Audit;

namespace NhiAudit.Proxy.Commands;

/// <summary>
/// <c>nhiaudit search [DIR…] [--postgres CONN] --identity --since --until --protocol --action --replica</c>: the records
/// of every given chain (one directory per replica, and the PostgreSQL sink's table) that match, merged in time order.
/// </summary>
internal static class SearchCommand
{
    public static Command Create()
    {
        var directories = new Argument<DirectoryInfo[]>("directory") { Description = "Audit directories, one per replica (or downloaded from a sink).", Arity = ArgumentArity.ZeroOrMore };
        var postgres = new Option<string?>("--postgres") { Description = "Connection string of a PostgreSQL sink (NhiAudit.Sinks.Postgres) to read as well." };
        var identity = new Option<string?>("--identity") { Description = "Records whose identity subject, name, repository, app id or managed identity contains this text (case-insensitive)." };
        var since = new Option<DateTimeOffset?>("--since") { Description = "Records at or after this time (ISO 8601; UTC unless an offset is given)." };
        var until = new Option<DateTimeOffset?>("--until") { Description = "Records before this time." };
        var protocol = new Option<string?>("--protocol") { Description = "postgres, kubernetes or ssh (pg, k8s also work)." };
        var action = new Option<string?>("--action") { Description = "The statement kind (DELETE, SELECT…), the Kubernetes verb or action (delete, exec…), or a record type (pg.approval.decided)." };
        var replica = new Option<string?>("--replica") { Description = "Only this replica's chain." };
        var json = new Option<bool>("--json") { Description = "Print each matching record as its exact JSON line, prefixed by nothing, for jq." };
        var command = new Command("search", "Find records across replicas and sinks by identity, time, protocol and action.")
        {
            directories, postgres, identity, since, until, protocol, action, replica, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var filter = new SearchFilter(
                parse.GetValue(identity),
                AsUtc(parse.GetValue(since)),
                AsUtc(parse.GetValue(until)),
                NormalizeProtocol(parse.GetValue(protocol)),
                parse.GetValue(action),
                parse.GetValue(replica));
            if (filter.Protocol == "?")
            {
                Console.Error.WriteLine($"nhiaudit search: unknown --protocol '{parse.GetValue(protocol)}' (postgres, kubernetes, ssh)");
                return 2;
            }

            var sources = new List<IAsyncEnumerable<SearchHit>>();
            foreach (var dir in parse.GetValue(directories) ?? [])
            {
                if (!dir.Exists)
                {
                    Console.Error.WriteLine($"nhiaudit search: {dir.FullName} does not exist");
                    return 2;
                }

                sources.Add(ReadDirectoryAsync(dir.FullName, cancellationToken));
            }

            IAsyncDisposable? sink = null;
            try
            {
                if (parse.GetValue(postgres) is { Length: > 0 } connectionString)
                {
                    try
                    {
                        var opened = await PostgresSinkSource.OpenAsync(connectionString, filter.Replica, filter.Since, filter.Until, cancellationToken).ConfigureAwait(false);
                        sink = opened.Owner;
                        sources.AddRange(opened.Sources);
                    }
                    catch (Exception ex) when (ex is Npgsql.NpgsqlException or ArgumentException or InvalidOperationException)
                    {
                        Console.Error.WriteLine($"nhiaudit search: the PostgreSQL sink cannot be read: {ex.Message}");
                        return 2;
                    }
                }

                if (sources.Count == 0 && parse.GetValue(postgres) is null)
                {
                    Console.Error.WriteLine("nhiaudit search: give at least one audit directory or --postgres");
                    return 2;
                }

                return await PrintAsync(sources, filter, parse.GetValue(json), cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                if (sink is not null)
                {
                    await sink.DisposeAsync().ConfigureAwait(false);
                }
            }
        });
        return command;
    }

    private static DateTimeOffset? AsUtc(DateTimeOffset? time) => time?.ToUniversalTime();

    private static string? NormalizeProtocol(string? protocol) => protocol?.ToLowerInvariant() switch
    {
        null or "" => null,
        "pg" or "postgres" or "postgresql" => "pg",
        "k8s" or "kubernetes" => "k8s",
        "ssh" => "ssh",
        _ => "?",
    };

    private static async Task<int> PrintAsync(List<IAsyncEnumerable<SearchHit>> sources, SearchFilter filter, bool json, CancellationToken cancellationToken)
    {
        // A k-way merge by time: each chain is in time order already, so memory holds one record per source.
        var enumerators = sources.Select(s => s.GetAsyncEnumerator(cancellationToken)).ToList();
        var queue = new PriorityQueue<int, (DateTimeOffset Time, string Replica, long Sequence)>();
        var failed = false;
        for (var i = 0; i < enumerators.Count; i++)
        {
            failed |= !await AdvanceAsync(enumerators, i, queue).ConfigureAwait(false);
        }

        var emitted = new Dictionary<string, long>(StringComparer.Ordinal);
        var matches = 0;
        while (queue.TryDequeue(out var index, out _))
        {
            var hit = enumerators[index].Current;
            // The same replica read from its directory and from a sink: print each record once.
            if (!emitted.TryGetValue(hit.Replica, out var last) || hit.Entry.Sequence > last)
            {
                emitted[hit.Replica] = hit.Entry.Sequence;
                if (filter.Matches(hit))
                {
                    matches++;
                    var line = Encoding.UTF8.GetString(hit.Entry.Line.Span);
                    Console.WriteLine(json ? line : $"{hit.Replica,-10} {ShowCommand.Describe(line)}");
                }
            }

            failed |= !await AdvanceAsync(enumerators, index, queue).ConfigureAwait(false);
        }

        foreach (var enumerator in enumerators)
        {
            await enumerator.DisposeAsync().ConfigureAwait(false);
        }

        Console.Error.WriteLine($"{matches} matching record(s)");
        return failed ? 1 : 0;
    }

    private static async Task<bool> AdvanceAsync(List<IAsyncEnumerator<SearchHit>> enumerators, int index, PriorityQueue<int, (DateTimeOffset, string, long)> queue)
    {
        try
        {
            if (await enumerators[index].MoveNextAsync().ConfigureAwait(false))
            {
                var hit = enumerators[index].Current;
                queue.Enqueue(index, (hit.Entry.Time, hit.Replica, hit.Entry.Sequence));
            }

            return true;
        }
        catch (AuditChainBrokenException ex)
        {
            Console.Error.WriteLine($"nhiaudit search: stopped reading one chain: {ex.Message}; run `nhiaudit verify`");
            return false;
        }
    }

    private static async IAsyncEnumerable<SearchHit> ReadDirectoryAsync(string directory, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var cursor = new AuditLogCursor(directory);
        var replica = Path.GetFileName(directory.TrimEnd(Path.DirectorySeparatorChar));
        while (cursor.TryRead(out var entry))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (entry.Type is "log.opened" or "log.segment" && ReplicaOf(entry) is { } named)
            {
                replica = named;
            }

            yield return new SearchHit(replica, entry);
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <summary>The <c>replica</c> field of a <c>log.opened</c> or <c>log.segment</c> record.</summary>
    internal static string? ReplicaOf(AuditLogEntry entry)
    {
        using var document = JsonDocument.Parse(entry.Line);
        return document.RootElement.TryGetProperty("replica", out var replica) ? replica.GetString() : null;
    }

    internal readonly record struct SearchHit(string Replica, AuditLogEntry Entry);

    internal sealed record SearchFilter(string? Identity, DateTimeOffset? Since, DateTimeOffset? Until, string? Protocol, string? Action, string? Replica)
    {
        public bool Matches(SearchHit hit)
        {
            var entry = hit.Entry;
            if ((Replica is not null && hit.Replica != Replica) || (Since is { } since && entry.Time < since) || (Until is { } until && entry.Time >= until))
            {
                return false;
            }

            var type = entry.Type ?? "";
            if (Protocol is not null && !type.StartsWith(Protocol + ".", StringComparison.Ordinal))
            {
                return false;
            }

            if (Identity is null && Action is null)
            {
                return true;
            }

            using var document = JsonDocument.Parse(entry.Line);
            var record = document.RootElement;
            return (Identity is null || IdentityMatches(record)) && (Action is null || ActionMatches(record, type));
        }

        private bool IdentityMatches(JsonElement record)
        {
            if (!record.TryGetProperty("identity", out var identity) || identity.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            foreach (var field in (string[])["subject", "name", "repository", "app", "mirid"])
            {
                if (identity.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String
                    && value.GetString()!.Contains(Identity!, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }

            return false;
        }

        private bool ActionMatches(JsonElement record, string type)
        {
            if (string.Equals(type, Action, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }

            var candidates = new List<JsonElement>();
            if (record.TryGetProperty("kind", out var kind))
            {
                candidates.Add(kind);
            }

            if (record.TryGetProperty("request", out var request) && request.ValueKind == JsonValueKind.Object)
            {
                if (request.TryGetProperty("verb", out var verb))
                {
                    candidates.Add(verb);
                }

                if (request.TryGetProperty("action", out var k8sAction))
                {
                    candidates.Add(k8sAction);
                }
            }

            if (record.TryGetProperty("command", out var command))
            {
                candidates.Add(command);
            }

            return candidates.Any(c => c.ValueKind == JsonValueKind.String && string.Equals(c.GetString(), Action, StringComparison.OrdinalIgnoreCase));
        }
    }
}
