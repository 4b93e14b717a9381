using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace NhiAudit.Postgres.Protocol;

/// <summary>
/// The client side of SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) as PostgreSQL uses it,
/// for the gateway's own login to the upstream server.
/// </summary>
/// <remarks>
/// <para>
/// Written by hand on System.Security.Cryptography because no BCL or allowed package exposes a
/// SCRAM client (Npgsql has one, internal to its connector).
/// </para>
/// <para>
/// PostgreSQL specifics: the user name in client-first is ignored (the startup packet names the
/// user), so we send <c>n=*</c>; no channel binding (<c>n,,</c> header, <c>c=biws</c>). The
/// server's signature in server-final is verified and any mismatch throws: a server that cannot
/// prove it knows the password is not the server the gateway was configured for.
/// </para>
/// Usage: <see cref="CreateClientFirst"/> → send in SASLInitialResponse; on SASLContinue
/// <see cref="CreateClientFinal"/> → send in SASLResponse; on SASLFinal <see cref="VerifyServerFinal"/>.
/// </remarks>
internal sealed class ScramSha256Client
{
    /// <summary>The SASL mechanism name to put in SASLInitialResponse.</summary>
    public const string MechanismName = "SCRAM-SHA-256";

    /// <summary>Iteration counts above this are refused: a hostile upstream could otherwise pin a CPU for minutes.</summary>
    public const int MaxIterations = 1_000_000;

    private const string Gs2Header = "n,,";

    private readonly string _password;
    private readonly string _clientNonce;
    private readonly string _userName;
    private string? _clientFirstBare;
    private byte[]? _expectedServerSignature;

    /// <summary>Creates a client with a fresh random nonce (18 random bytes, base64, as libpq does).</summary>
    /// <param name="password">The upstream password.</param>
    public ScramSha256Client(string password)
        : this(password, Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)), "*")
    {
    }

    /// <summary>Creates a client with a chosen nonce and user name; for test vectors only.</summary>
    internal ScramSha256Client(string password, string clientNonce, string userName)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentException.ThrowIfNullOrEmpty(clientNonce);
        ArgumentNullException.ThrowIfNull(userName);
        if (clientNonce.Contains(',', StringComparison.Ordinal))
        {
            throw new ArgumentException("A SCRAM nonce cannot contain ','.", nameof(clientNonce));
        }

        _password = password;
        _clientNonce = clientNonce;
        _userName = userName;
    }

    /// <summary>True once <see cref="VerifyServerFinal"/> has accepted the server's signature.</summary>
    public bool IsServerVerified { get; private set; }

    /// <summary>Returns the client-first-message: <c>n,,n=*,r=&lt;nonce&gt;</c>.</summary>
    public string CreateClientFirst()
    {
        _clientFirstBare = "n=" + EscapeSaslName(_userName) + ",r=" + _clientNonce;
        return Gs2Header + _clientFirstBare;
    }

    /// <summary>Processes server-first-message (<c>r=…,s=…,i=…</c>) and returns client-final-message with the proof.</summary>
    /// <exception cref="PgProtocolException">The server's message is malformed, its nonce does not extend ours, or its parameters are unacceptable.</exception>
    public string CreateClientFinal(string serverFirst)
    {
        ArgumentNullException.ThrowIfNull(serverFirst);
        if (_clientFirstBare is null)
        {
            throw new InvalidOperationException("CreateClientFirst must be called first.");
        }

        string? nonce = null, saltBase64 = null, iterationText = null;
        foreach (string attribute in serverFirst.Split(','))
        {
            if (attribute.Length < 2 || attribute[1] != '=')
            {
                throw Fail("malformed SCRAM server-first-message");
            }

            switch (attribute[0])
            {
                case 'r': nonce ??= attribute[2..]; break;
                case 's': saltBase64 ??= attribute[2..]; break;
                case 'i': iterationText ??= attribute[2..]; break;
                case 'm': throw Fail("SCRAM server requires an unsupported extension");
                default: break;
            }
        }

        if (nonce is null || saltBase64 is null || iterationText is null)
        {
            throw Fail("SCRAM server-first-message lacks the nonce, salt or iteration count");
        }

        // The server's nonce must start with ours and add something (RFC 5802 §5.1), or this is a replay.
        if (nonce.Length <= _clientNonce.Length || !nonce.StartsWith(_clientNonce, StringComparison.Ordinal))
        {
            throw Fail("SCRAM server nonce does not extend the client nonce");
        }

        byte[] salt;
        try
        {
            salt = Convert.FromBase64String(saltBase64);
        }
        catch (FormatException)
        {
            throw Fail("SCRAM salt is not valid base64");
        }

        if (salt.Length == 0)
        {
            throw Fail("SCRAM salt is empty");
        }

        if (!int.TryParse(iterationText, NumberStyles.None, CultureInfo.InvariantCulture, out int iterations) || iterations < 1 || iterations > MaxIterations)
        {
            throw Fail($"SCRAM iteration count '{iterationText}' is not acceptable");
        }

        byte[] passwordBytes = Encoding.UTF8.GetBytes(SaslPrep(_password));
        byte[] saltedPassword = Rfc2898DeriveBytes.Pbkdf2(passwordBytes, salt, iterations, HashAlgorithmName.SHA256, 32);
        CryptographicOperations.ZeroMemory(passwordBytes);

        byte[] clientKey = HMACSHA256.HashData(saltedPassword, "Client Key"u8);
        byte[] storedKey = SHA256.HashData(clientKey);
        byte[] serverKey = HMACSHA256.HashData(saltedPassword, "Server Key"u8);
        CryptographicOperations.ZeroMemory(saltedPassword);

        // c=biws is base64("n,,"): the GS2 header without channel binding.
        string clientFinalWithoutProof = "c=" + Convert.ToBase64String(Encoding.ASCII.GetBytes(Gs2Header)) + ",r=" + nonce;
        byte[] authMessage = Encoding.UTF8.GetBytes(_clientFirstBare + "," + serverFirst + "," + clientFinalWithoutProof);

        byte[] clientSignature = HMACSHA256.HashData(storedKey, authMessage);
        byte[] proof = new byte[clientKey.Length];
        for (int i = 0; i < proof.Length; i++)
        {
            proof[i] = (byte)(clientKey[i] ^ clientSignature[i]);
        }

        _expectedServerSignature = HMACSHA256.HashData(serverKey, authMessage);
        CryptographicOperations.ZeroMemory(clientKey);
        CryptographicOperations.ZeroMemory(serverKey);
        return clientFinalWithoutProof + ",p=" + Convert.ToBase64String(proof);
    }

    /// <summary>Checks server-final-message (<c>v=&lt;signature&gt;</c>); fails closed on an error attribute or any mismatch.</summary>
    /// <exception cref="PgProtocolException">28000 when the signature is absent, malformed or wrong, or the server reported an error.</exception>
    public void VerifyServerFinal(string serverFinal)
    {
        ArgumentNullException.ThrowIfNull(serverFinal);
        if (_expectedServerSignature is null)
        {
            throw new InvalidOperationException("CreateClientFinal must be called first.");
        }

        string? verifier = null;
        foreach (string attribute in serverFinal.Split(','))
        {
            if (attribute.StartsWith("e=", StringComparison.Ordinal))
            {
                throw new PgProtocolException(PgSqlState.InvalidAuthorizationSpecification, "SCRAM server reported an error: " + attribute[2..]);
            }

            if (attribute.StartsWith("v=", StringComparison.Ordinal))
            {
                verifier = attribute[2..];
            }
        }

        byte[] signature;
        try
        {
            signature = verifier is null ? [] : Convert.FromBase64String(verifier);
        }
        catch (FormatException)
        {
            signature = [];
        }

        if (!CryptographicOperations.FixedTimeEquals(signature, _expectedServerSignature))
        {
            throw new PgProtocolException(PgSqlState.InvalidAuthorizationSpecification, "SCRAM server signature does not match: the upstream server did not prove it knows the password");
        }

        IsServerVerified = true;
    }

    private static PgProtocolException Fail(string message) => new(PgSqlState.InvalidAuthorizationSpecification, message);

    /// <summary>RFC 5802 saslname: ',' and '=' are escaped as =2C and =3D.</summary>
    private static string EscapeSaslName(string name) =>
        name.Replace("=", "=3D", StringComparison.Ordinal).Replace(",", "=2C", StringComparison.Ordinal);

    /// <summary>
    /// A practical subset of SASLprep (RFC 4013) as PostgreSQL's <c>pg_saslprep</c> applies it:
    /// non-ASCII spaces become U+0020, "commonly mapped to nothing" characters are dropped, the
    /// result is NFKC-normalized; if a prohibited character remains, the raw password is used, as
    /// PostgreSQL does. Printable ASCII passwords (the norm) pass through unchanged.
    /// </summary>
    internal static string SaslPrep(string password)
    {
        bool ascii = true;
        foreach (char c in password)
        {
            if (c >= 0x80)
            {
                ascii = false;
                break;
            }
        }

        if (ascii)
        {
            // Control characters are prohibited, in which case PostgreSQL also falls back to the raw string.
            return password;
        }

        var mapped = new StringBuilder(password.Length);
        foreach (char c in password)
        {
            if (IsMappedToNothing(c))
            {
                continue;
            }

            mapped.Append(IsNonAsciiSpace(c) ? ' ' : c);
        }

        string normalized;
        try
        {
            normalized = mapped.ToString().Normalize(NormalizationForm.FormKC);
        }
        catch (ArgumentException)
        {
            // Invalid UTF-16 (lone surrogate): PostgreSQL would use the raw bytes.
            return password;
        }

        foreach (char c in normalized)
        {
            if (char.IsControl(c) || IsNonAsciiSpace(c) || c is >= '\uE000' and <= '\uF8FF' || c is '\uFFFE' or '\uFFFF')
            {
                return password;
            }
        }

        return normalized;
    }

    private static bool IsNonAsciiSpace(char c) =>
        c is '\u00A0' or '\u1680' or (>= '\u2000' and <= '\u200B') or '\u202F' or '\u205F' or '\u3000';

    private static bool IsMappedToNothing(char c) =>
        c is '\u00AD' or '\u034F' or '\u1806' or (>= '\u180B' and <= '\u180D') or (>= '\u200C' and <= '\u200D')
            or '\u2060' or (>= '\uFE00' and <= '\uFE0F') or '\uFEFF';
}
