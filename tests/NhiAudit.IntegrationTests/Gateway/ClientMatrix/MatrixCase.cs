namespace NhiAudit.IntegrationTests.Gateway.ClientMatrix;

/// <summary>
/// One client behaviour: <see cref="Run"/> drives a real client against a <see cref="MatrixSide"/> and writes what the
/// client saw into the transcript. The same function runs direct and through the gateway.
/// </summary>
/// <param name="Name">Stable name, shown as the theory row (e.g. <c>npgsql.pool.open-close-1000</c>).</param>
/// <param name="Run">The case; exceptions it does not expect propagate and are recorded as UNHANDLED.</param>
/// <param name="OwnDatabase">Each run gets a fresh database owned by app (for clients with fixed table names, such as pgbench).</param>
public sealed record MatrixCase(string Name, Func<MatrixSide, MatrixTranscript, CancellationToken, Task> Run, bool OwnDatabase = false)
{
    /// <summary>How long one run (one side) may take before the test fails naming the case.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    public override string ToString() => Name;
}
