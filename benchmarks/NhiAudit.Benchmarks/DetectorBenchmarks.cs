using BenchmarkDotNet.Attributes;
using NhiAudit.Masking;

namespace NhiAudit.Benchmarks;

/// <summary>
/// The value detectors over 200 KB of adversarial input (every position a possible card number, IBAN, e-mail or key
/// start): the scan must stay linear, so a crafted value cannot stall a session.
/// </summary>
[MemoryDiagnoser]
public class DetectorBenchmarks
{
    private MaskingPolicy _policy = null!;
    private byte[] _value = [];
    private byte[] _destination = [];

    /// <summary>The repeated unit.</summary>
    [Params("1 ", "AB12 ", "a@", "sig=")]
    public string Unit { get; set; } = "1 ";

    [GlobalSetup]
    public void Setup()
    {
        _policy = MaskingPolicy.Create([new MaskingRuleOptions { Name = "all", Detectors = ["all"], Strategy = MaskingStrategy.Redact }], new byte[32]);
        _value = System.Text.Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(Unit, 200_000 / Unit.Length)));
        _destination = new byte[MaskingPolicy.MaxDetectedLength(_value.Length)];
    }

    [Benchmark(Description = "all detectors over 200 KB of repetitive input")]
    public int Scan() => _policy.MaskDetected(_value, _destination, out _, out _);
}
