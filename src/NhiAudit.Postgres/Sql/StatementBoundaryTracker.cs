namespace NhiAudit.Postgres.Sql;

/// <summary>
/// Decides whether a ';' ends the statement: only at parenthesis depth 0 and outside the
/// <c>BEGIN ATOMIC … END</c> body of <c>CREATE [OR REPLACE] FUNCTION|PROCEDURE</c>.
/// </summary>
/// <remarks>
/// psql counts any <c>BEGIN</c> in a CREATE FUNCTION statement; that would let
/// <c>CREATE FUNCTION begin() … ; DELETE FROM t</c> hide the DELETE inside the CREATE. Here a
/// body opens only on <c>BEGIN</c> directly followed by <c>ATOMIC</c> at depth 0. Inside it, CASE
/// opens and END closes (END cannot be a transaction statement there: PostgreSQL's grammar keeps
/// <c>END</c> out of routine bodies), which is how the server pairs them too.
/// </remarks>
internal struct StatementBoundaryTracker
{
    private int _parenDepth;
    private int _atomicDepth;
    private int _headerState;
    private bool _isRoutine;
    private bool _pendingBegin;

    /// <summary>Feeds one token (comments included, they are ignored); true when it is a ';' that ends the statement.</summary>
    public bool IsTerminator(ReadOnlySpan<char> sql, in SqlToken token)
    {
        if (token.IsComment)
        {
            return false;
        }

        bool pendingBegin = _pendingBegin;
        _pendingBegin = false;
        switch (token.Kind)
        {
            case SqlTokenKind.Semicolon:
                if (_parenDepth == 0 && _atomicDepth == 0)
                {
                    this = default;
                    return true;
                }

                AdvanceHeader(default);
                return false;
            case SqlTokenKind.OpenParen:
                _parenDepth++;
                AdvanceHeader(default);
                return false;
            case SqlTokenKind.CloseParen:
                if (_parenDepth > 0)
                {
                    _parenDepth--;
                }

                AdvanceHeader(default);
                return false;
            case SqlTokenKind.Identifier:
                ReadOnlySpan<char> word = sql.Slice(token.Start, token.Length);
                AdvanceHeader(word);
                if (!_isRoutine)
                {
                    return false;
                }

                if (pendingBegin && word.Equals("atomic", StringComparison.OrdinalIgnoreCase))
                {
                    _atomicDepth++;
                }
                else if (_atomicDepth == 0)
                {
                    _pendingBegin = _parenDepth == 0 && word.Equals("begin", StringComparison.OrdinalIgnoreCase);
                }
                else if (word.Equals("case", StringComparison.OrdinalIgnoreCase))
                {
                    _atomicDepth++;
                }
                else if (word.Equals("end", StringComparison.OrdinalIgnoreCase))
                {
                    _atomicDepth--;
                }

                return false;
            default:
                AdvanceHeader(default);
                return false;
        }
    }

    /// <summary>Recognizes CREATE [OR REPLACE] FUNCTION|PROCEDURE from the statement's first words.</summary>
    private void AdvanceHeader(ReadOnlySpan<char> word)
    {
        // States: 0 start, 1 after CREATE, 2 after OR, 3 after REPLACE, -1 decided.
        switch (_headerState)
        {
            case 0:
                _headerState = word.Equals("create", StringComparison.OrdinalIgnoreCase) ? 1 : -1;
                break;
            case 1:
            case 3:
                if (word.Equals("function", StringComparison.OrdinalIgnoreCase) || word.Equals("procedure", StringComparison.OrdinalIgnoreCase))
                {
                    _isRoutine = true;
                    _headerState = -1;
                }
                else
                {
                    _headerState = _headerState == 1 && word.Equals("or", StringComparison.OrdinalIgnoreCase) ? 2 : -1;
                }

                break;
            case 2:
                _headerState = word.Equals("replace", StringComparison.OrdinalIgnoreCase) ? 3 : -1;
                break;
            default:
                break;
        }
    }
}
