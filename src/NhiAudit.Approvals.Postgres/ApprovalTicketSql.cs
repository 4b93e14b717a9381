using Npgsql;
using NpgsqlTypes;

namespace NhiAudit.Approvals.Postgres;

/// <summary>
/// The SQL of the shared approval tables, with the configured (validated, quoted) schema spliced in once. Each method
/// builds a command; the broker runs it with the sync or the async API as its caller needs, and reads rows with
/// <see cref="ReadTicket"/>.
/// </summary>
internal sealed class ApprovalTicketSql
{
    /// <summary>The channel deciding replicas notify with the ticket id as payload.</summary>
    public const string Channel = "nhiaudit_approvals";

    /// <summary>Serializes concurrent first starts (two replicas, one database): CREATE … IF NOT EXISTS can race.</summary>
    private const string SchemaLockKey = "nhiaudit.approvals.postgres.schema";

    private const string Columns = "id, replica, request, rule, session_id, state, requested_at, expires_at, decided_by, decided_at, reason, grant_until, granted_by_ticket";

    private readonly string _tickets;
    private readonly string _grants;

    public ApprovalTicketSql(string schema)
    {
        var quotedSchema = "\"" + schema + "\"";
        _tickets = quotedSchema + ".approval_tickets";
        _grants = quotedSchema + ".approval_grants";
        CreateStatements = $"""
            CREATE SCHEMA IF NOT EXISTS {quotedSchema};
            CREATE TABLE IF NOT EXISTS {_tickets} (
                id text PRIMARY KEY,
                replica text NOT NULL,
                request jsonb NOT NULL,
                requester_subject text NOT NULL,
                requester_issuer text NOT NULL,
                rule text NOT NULL,
                session_id text NOT NULL,
                state text NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'timed_out')),
                requested_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                decided_by jsonb,
                decided_at timestamptz,
                reason text,
                grant_until timestamptz,
                granted_by_ticket text);
            CREATE INDEX IF NOT EXISTS approval_tickets_pending_idx ON {_tickets} (requested_at) WHERE state = 'pending';
            CREATE TABLE IF NOT EXISTS {_grants} (
                subject text NOT NULL,
                issuer text NOT NULL,
                rule text NOT NULL,
                grant_until timestamptz NOT NULL,
                ticket_id text NOT NULL,
                decided_by jsonb NOT NULL,
                reason text,
                PRIMARY KEY (subject, issuer, rule));
            """;
    }

    /// <summary>Creates the schema, both tables and the pending index when missing (idempotent).</summary>
    public string CreateStatements { get; }

    /// <summary>Takes the transaction-scoped lock that serializes <see cref="CreateStatements"/> between replicas.</summary>
    public static NpgsqlCommand LockSchema(NpgsqlConnection connection, NpgsqlTransaction transaction) =>
        Command("SELECT pg_advisory_xact_lock(hashtext(@key))", connection, transaction, ("key", SchemaLockKey, NpgsqlDbType.Text));

    public NpgsqlCommand CreateSchema(NpgsqlConnection connection, NpgsqlTransaction transaction) => new(CreateStatements, connection, transaction);

    public static NpgsqlCommand Listen(NpgsqlConnection connection) => new($"LISTEN {Channel}", connection);

    /// <summary>Delivered when the surrounding transaction commits, so a listener never sees a decision that was rolled back.</summary>
    public static NpgsqlCommand Notify(NpgsqlConnection connection, NpgsqlTransaction? transaction, string ticketId) =>
        Command("SELECT pg_notify(@channel, @id)", connection, transaction, ("channel", Channel, NpgsqlDbType.Text), ("id", ticketId, NpgsqlDbType.Text));

    /// <summary>The standing grant covering this identity and rule at <paramref name="now"/>: grant_until, ticket_id, decided_by, reason.</summary>
    public NpgsqlCommand FindGrant(NpgsqlConnection connection, WorkloadIdentity identity, string rule, DateTimeOffset now) =>
        Command(
            $"SELECT grant_until, ticket_id, decided_by, reason FROM {_grants} WHERE subject = @subject AND issuer = @issuer AND rule = @rule AND grant_until > @now",
            connection,
            null,
            ("subject", identity.Subject, NpgsqlDbType.Text),
            ("issuer", identity.Issuer, NpgsqlDbType.Text),
            ("rule", rule, NpgsqlDbType.Text),
            ("now", now, NpgsqlDbType.TimestampTz));

    public NpgsqlCommand Insert(NpgsqlConnection connection, ApprovalTicket ticket, string replica) =>
        Command(
            $"""
            INSERT INTO {_tickets} (id, replica, request, requester_subject, requester_issuer, rule, session_id, state, requested_at, expires_at, decided_by, decided_at, reason, grant_until, granted_by_ticket)
            VALUES (@id, @replica, @request, @subject, @issuer, @rule, @session, @state, @requested, @expires, @decidedBy, @decidedAt, @reason, @grantUntil, @grantedBy)
            """,
            connection,
            null,
            ("id", ticket.Id, NpgsqlDbType.Text),
            ("replica", replica, NpgsqlDbType.Text),
            ("request", ApprovalTicketJson.WriteRequest(ticket.Request), NpgsqlDbType.Jsonb),
            ("subject", ticket.Request.Identity.Subject, NpgsqlDbType.Text),
            ("issuer", ticket.Request.Identity.Issuer, NpgsqlDbType.Text),
            ("rule", ticket.Rule, NpgsqlDbType.Text),
            ("session", ticket.SessionId, NpgsqlDbType.Text),
            ("state", StateName(ticket.State), NpgsqlDbType.Text),
            ("requested", ticket.RequestedAt, NpgsqlDbType.TimestampTz),
            ("expires", ticket.ExpiresAt, NpgsqlDbType.TimestampTz),
            ("decidedBy", ticket.DecidedBy is { } by ? ApprovalTicketJson.WriteIdentity(by) : null, NpgsqlDbType.Jsonb),
            ("decidedAt", ticket.DecidedAt, NpgsqlDbType.TimestampTz),
            ("reason", ticket.DecisionReason, NpgsqlDbType.Text),
            ("grantUntil", ticket.GrantUntil, NpgsqlDbType.TimestampTz),
            ("grantedBy", ticket.GrantedByTicket, NpgsqlDbType.Text));

    /// <summary>
    /// The decision itself: one conditional UPDATE that only a still-pending ticket passes, so of two deciders (two
    /// approvers, an approver and the holder's timeout, two replicas) exactly one changes the row; the other gets no
    /// row back. With <paramref name="approver"/> set, the requester's own identity never matches, and an unexpired
    /// ticket is required (a ticket whose holder is gone is not decided for nobody).
    /// </summary>
    public NpgsqlCommand Decide(NpgsqlConnection connection, NpgsqlTransaction transaction, string ticketId, ApprovalState state, WorkloadIdentity? approver, DateTimeOffset now, string? reason, DateTimeOffset? grantUntil) =>
        Command(
            $"""
            UPDATE {_tickets} SET state = @state, decided_by = @decidedBy, decided_at = @now, reason = @reason, grant_until = @grantUntil
            WHERE id = @id AND state = 'pending'
              AND (@approverSubject::text IS NULL OR (expires_at > @now AND NOT (requester_subject = @approverSubject AND requester_issuer = @approverIssuer)))
            RETURNING {Columns}, requester_subject, requester_issuer
            """,
            connection,
            transaction,
            ("id", ticketId, NpgsqlDbType.Text),
            ("state", StateName(state), NpgsqlDbType.Text),
            ("decidedBy", approver is null ? null : ApprovalTicketJson.WriteIdentity(approver), NpgsqlDbType.Jsonb),
            ("now", now, NpgsqlDbType.TimestampTz),
            ("reason", reason, NpgsqlDbType.Text),
            ("grantUntil", grantUntil, NpgsqlDbType.TimestampTz),
            ("approverSubject", approver?.Subject, NpgsqlDbType.Text),
            ("approverIssuer", approver?.Issuer, NpgsqlDbType.Text));

    public NpgsqlCommand UpsertGrant(NpgsqlConnection connection, NpgsqlTransaction transaction, string subject, string issuer, string rule, DateTimeOffset until, string ticketId, WorkloadIdentity approver, string? reason) =>
        Command(
            $"""
            INSERT INTO {_grants} (subject, issuer, rule, grant_until, ticket_id, decided_by, reason) VALUES (@subject, @issuer, @rule, @until, @ticket, @decidedBy, @reason)
            ON CONFLICT (subject, issuer, rule) DO UPDATE SET grant_until = excluded.grant_until, ticket_id = excluded.ticket_id, decided_by = excluded.decided_by, reason = excluded.reason
            """,
            connection,
            transaction,
            ("subject", subject, NpgsqlDbType.Text),
            ("issuer", issuer, NpgsqlDbType.Text),
            ("rule", rule, NpgsqlDbType.Text),
            ("until", until, NpgsqlDbType.TimestampTz),
            ("ticket", ticketId, NpgsqlDbType.Text),
            ("decidedBy", ApprovalTicketJson.WriteIdentity(approver), NpgsqlDbType.Jsonb),
            ("reason", reason, NpgsqlDbType.Text));

    /// <summary>Every standing grant still running at <paramref name="now"/>: subject, issuer, rule, grant_until, ticket_id, decided_by, reason.</summary>
    public NpgsqlCommand ActiveGrants(NpgsqlConnection connection, DateTimeOffset now) =>
        Command($"SELECT subject, issuer, rule, grant_until, ticket_id, decided_by, reason FROM {_grants} WHERE grant_until > @now", connection, null, ("now", now, NpgsqlDbType.TimestampTz));

    public NpgsqlCommand Find(NpgsqlConnection connection, string ticketId) =>
        Command($"SELECT {Columns} FROM {_tickets} WHERE id = @id", connection, null, ("id", ticketId, NpgsqlDbType.Text));

    /// <summary>Pending tickets of every replica, oldest first; a ticket past its expiry (its holder is gone) is not shown.</summary>
    public NpgsqlCommand Pending(NpgsqlConnection connection, DateTimeOffset now) =>
        Command($"SELECT {Columns} FROM {_tickets} WHERE state = 'pending' AND expires_at > @now ORDER BY requested_at, id", connection, null, ("now", now, NpgsqlDbType.TimestampTz));

    /// <summary>Which of <paramref name="ticketIds"/> are decided.</summary>
    public NpgsqlCommand Decided(NpgsqlConnection connection, IReadOnlyList<string> ticketIds) =>
        Command($"SELECT {Columns} FROM {_tickets} WHERE id = ANY(@ids) AND state <> 'pending'", connection, null, ("ids", ticketIds.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text));

    /// <summary>
    /// Times out this replica's pending tickets that nobody here waits for any more: those from before this process
    /// (a crash or kill left them) and those whose timeout could not be written then. Without this another replica
    /// could still approve a request nobody will run, and the table would say so.
    /// </summary>
    public NpgsqlCommand TimeOutAbandoned(NpgsqlConnection connection, string replica, DateTimeOffset startedAt, IReadOnlyList<string> unrecorded, DateTimeOffset now, string reason) =>
        Command(
            $"""
            UPDATE {_tickets} SET state = 'timed_out', decided_at = @now, reason = @reason
            WHERE replica = @replica AND state = 'pending' AND (requested_at < @startedAt OR id = ANY(@unrecorded))
            """,
            connection,
            null,
            ("replica", replica, NpgsqlDbType.Text),
            ("startedAt", startedAt, NpgsqlDbType.TimestampTz),
            ("unrecorded", unrecorded.ToArray(), NpgsqlDbType.Array | NpgsqlDbType.Text),
            ("now", now, NpgsqlDbType.TimestampTz),
            ("reason", reason, NpgsqlDbType.Text));

    /// <summary>Reads a row selected with the ticket columns (in their order) into a ticket.</summary>
    public static ApprovalTicket ReadTicket(NpgsqlDataReader reader) => new()
    {
        Id = reader.GetString(0),
        Request = ApprovalTicketJson.ReadRequest(reader.GetString(2)),
        Rule = reader.GetString(3),
        SessionId = reader.GetString(4),
        State = ParseState(reader.GetString(5)),
        RequestedAt = reader.GetFieldValue<DateTimeOffset>(6),
        ExpiresAt = reader.GetFieldValue<DateTimeOffset>(7),
        DecidedBy = reader.IsDBNull(8) ? null : ApprovalTicketJson.ReadIdentity(reader.GetString(8)),
        DecidedAt = reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9),
        DecisionReason = reader.IsDBNull(10) ? null : reader.GetString(10),
        GrantUntil = reader.IsDBNull(11) ? null : reader.GetFieldValue<DateTimeOffset>(11),
        GrantedByTicket = reader.IsDBNull(12) ? null : reader.GetString(12),
    };

    /// <summary>The holding replica of a row selected with the ticket columns.</summary>
    public static string ReadReplica(NpgsqlDataReader reader) => reader.GetString(1);

    private static string StateName(ApprovalState state) => state switch
    {
        ApprovalState.Pending => "pending",
        ApprovalState.Approved => "approved",
        ApprovalState.Denied => "denied",
        ApprovalState.TimedOut => "timed_out",
        _ => throw new ArgumentOutOfRangeException(nameof(state), state, null),
    };

    private static ApprovalState ParseState(string state) => state switch
    {
        "pending" => ApprovalState.Pending,
        "approved" => ApprovalState.Approved,
        "denied" => ApprovalState.Denied,
        "timed_out" => ApprovalState.TimedOut,
        _ => throw new InvalidDataException($"unknown approval state '{state}'"),
    };

    private static NpgsqlCommand Command(string sql, NpgsqlConnection connection, NpgsqlTransaction? transaction, params (string Name, object? Value, NpgsqlDbType Type)[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var (name, value, type) in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter(name, type) { Value = value ?? DBNull.Value });
        }

        return command;
    }
}
