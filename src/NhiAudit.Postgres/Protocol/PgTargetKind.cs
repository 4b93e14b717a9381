namespace NhiAudit.Postgres.Protocol;

/// <summary>What a Close or Describe message refers to.</summary>
internal enum PgTargetKind : byte
{
    /// <summary>'S': a prepared statement.</summary>
    Statement = (byte)'S',

    /// <summary>'P': a portal.</summary>
    Portal = (byte)'P',
}
