namespace NhiAudit.Audit;

/// <summary>What <see cref="AuditVerifier.Verify(string, AuditVerifyOptions?)"/> checks beyond the hash chain.</summary>
public sealed class AuditVerifyOptions
{
    /// <summary>
    /// The public keys checkpoints may be signed with. When empty, checkpoints are only checked against the chain
    /// and <see cref="AuditVerificationResult.SignaturesChecked"/> is false; a forged signature is then not detected.
    /// </summary>
    public IReadOnlyList<AuditCheckpointVerifier> PublicKeys { get; init; } = [];

    /// <summary>
    /// The last checkpoint published outside the gateway's reach (a sink, a witness, a ticket): the log must still hold
    /// the record it covers with the same hash, which detects a cut tail and a rewritten log.
    /// </summary>
    public AuditCheckpoint? Checkpoint { get; init; }
}
