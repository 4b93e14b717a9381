namespace NhiAudit.Postgres.Protocol;

/// <summary>Type bytes of messages sent by the client ("frontend"), named after the protocol documentation.</summary>
internal enum PgFrontendMessageCode : byte
{
    /// <summary>'B': Bind.</summary>
    Bind = (byte)'B',

    /// <summary>'C': Close.</summary>
    Close = (byte)'C',

    /// <summary>'d': CopyData.</summary>
    CopyData = (byte)'d',

    /// <summary>'c': CopyDone.</summary>
    CopyDone = (byte)'c',

    /// <summary>'f': CopyFail.</summary>
    CopyFail = (byte)'f',

    /// <summary>'D': Describe.</summary>
    Describe = (byte)'D',

    /// <summary>'E': Execute.</summary>
    Execute = (byte)'E',

    /// <summary>'H': Flush.</summary>
    Flush = (byte)'H',

    /// <summary>'F': FunctionCall.</summary>
    FunctionCall = (byte)'F',

    /// <summary>'P': Parse.</summary>
    Parse = (byte)'P',

    /// <summary>'p': PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share this byte; the authentication state tells them apart.</summary>
    Password = (byte)'p',

    /// <summary>'Q': Query (simple query protocol).</summary>
    Query = (byte)'Q',

    /// <summary>'S': Sync.</summary>
    Sync = (byte)'S',

    /// <summary>'X': Terminate.</summary>
    Terminate = (byte)'X',
}
