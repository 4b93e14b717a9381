using NhiAudit.Postgres.Masking;

namespace NhiAudit.Postgres.Tests.Masking;

public class PgCopyStatementParserTests
{
    private static PgCopyOutStatement Readable(string sql)
    {
        var result = PgCopyStatementParser.Parse(sql, out var statement, out string? error);
        Assert.True(result == PgCopyParseResult.CopyToStdout, $"{result}: {error}");
        Assert.Null(error);
        return statement!;
    }

    [Fact]
    public void Text_defaults()
    {
        var s = Readable("COPY customers TO STDOUT");
        Assert.Equal(new PgCopyOutStatement("customers", null, null, PgCopyFormat.Text, (byte)'\t', (byte)'"', (byte)'"', "\\N", false), s);
    }

    [Fact]
    public void Csv_defaults()
    {
        var s = Readable("copy public.customers to stdout with (format csv);");
        Assert.Equal("public.customers", s.Relation);
        Assert.Equal(PgCopyFormat.Csv, s.Format);
        Assert.Equal((byte)',', s.Delimiter);
        Assert.Equal((byte)'"', s.Quote);
        Assert.Equal((byte)'"', s.Escape);
        Assert.Equal("", s.NullString);
        Assert.False(s.Header);
    }

    [Fact]
    public void Quoted_identifiers_and_column_lists_are_normalized()
    {
        var s = Readable("COPY \"Sales\".\"Customers\" (Id, \"SSN\", name) TO STDOUT");
        Assert.Equal("Sales.Customers", s.Relation);
        Assert.Equal(["id", "SSN", "name"], s.Columns);
        Assert.Null(s.Query);
    }

    [Fact]
    public void Query_with_nested_parens_and_strings_holding_parens()
    {
        var s = Readable("COPY ( SELECT ssn, lower(name) FROM customers WHERE note <> ')' AND (id > 1) ) TO STDOUT (FORMAT binary)");
        Assert.Equal("SELECT ssn, lower(name) FROM customers WHERE note <> ')' AND (id > 1)", s.Query);
        Assert.Null(s.Relation);
        Assert.Equal(PgCopyFormat.Binary, s.Format);
    }

    [Theory]
    [InlineData("COPY t TO STDOUT (FORMAT csv, DELIMITER ';', HEADER, NULL 'NULL', QUOTE '''', ESCAPE '\\')", "Csv", ';', '\'', '\\', "NULL", true)]
    [InlineData("COPY t TO STDOUT WITH (FORMAT 'csv', HEADER false, FORCE_QUOTE *, ENCODING 'UTF8')", "Csv", ',', '"', '"', "", false)]
    [InlineData("COPY t TO STDOUT (FORMAT csv, HEADER on, FORCE_QUOTE (a, b), FORCE_NOT_NULL (a))", "Csv", ',', '"', '"', "", true)]
    [InlineData("COPY t TO STDOUT (FORMAT csv, HEADER 1)", "Csv", ',', '"', '"', "", true)]
    [InlineData("COPY t TO STDOUT (FORMAT csv, HEADER match)", "Csv", ',', '"', '"', "", true)]
    [InlineData("COPY t TO STDOUT (FORMAT csv, HEADER 0)", "Csv", ',', '"', '"', "", false)]
    [InlineData("COPY t TO STDOUT (FORMAT text, DELIMITER '|', NULL '')", "Text", '|', '"', '"', "", false)]
    [InlineData("COPY t TO STDOUT (DELIMITER E'\\t')", "Text", '\t', '"', '"', "\\N", false)]
    [InlineData("COPY t TO STDOUT WITH DELIMITER AS '|' NULL AS 'nil'", "Text", '|', '"', '"', "nil", false)]
    [InlineData("COPY t TO STDOUT WITH CSV HEADER QUOTE AS '''' ESCAPE AS '\\' FORCE QUOTE a, b", "Csv", ',', '\'', '\\', "", true)]
    [InlineData("COPY t TO STDOUT CSV FORCE QUOTE *", "Csv", ',', '"', '"', "", false)]
    [InlineData("COPY t TO STDOUT WITH CSV QUOTE '$'", "Csv", ',', '$', '$', "", false)]
    [InlineData("COPY t TO STDOUT WITH BINARY", "Binary", '\t', '"', '"', "\\N", false)]
    [InlineData("COPY BINARY t TO STDOUT", "Binary", '\t', '"', '"', "\\N", false)]
    [InlineData("COPY t TO STDIN", "Text", '\t', '"', '"', "\\N", false)]
    [InlineData("/* c */ COPY t -- x\n TO STDOUT", "Text", '\t', '"', '"', "\\N", false)]
    public void Options(string sql, string format, char delimiter, char quote, char escape, string nullString, bool header)
    {
        var s = Readable(sql);
        Assert.Equal("t", s.Relation);
        Assert.Equal(Enum.Parse<PgCopyFormat>(format), s.Format);
        Assert.Equal((byte)delimiter, s.Delimiter);
        Assert.Equal((byte)quote, s.Quote);
        Assert.Equal((byte)escape, s.Escape);
        Assert.Equal(nullString, s.NullString);
        Assert.Equal(header, s.Header);
    }

    [Theory]
    [InlineData("SELECT 1")]
    [InlineData("")]
    [InlineData("COPY t FROM STDIN")]
    [InlineData("COPY t (a, b) FROM STDIN WITH (FORMAT csv)")]
    [InlineData("COPY t TO '/tmp/t.csv'")]
    [InlineData("COPY (SELECT 1) TO PROGRAM 'gzip > /tmp/x'")]
    [InlineData("COPY t FROM STDIN WITH (WHATEVER 1) WHERE a > 1")]
    [InlineData("copyright")]
    public void Not_copy_to_stdout(string sql)
    {
        Assert.Equal(PgCopyParseResult.NotCopyToStdout, PgCopyStatementParser.Parse(sql, out var statement, out _));
        Assert.Null(statement);
    }

    [Theory]
    [InlineData("COPY t TO STDOUT (FORMAT xml)")]
    [InlineData("COPY t TO STDOUT (DELIMITER '||')")]
    [InlineData("COPY t TO STDOUT (DELIMITER 'é')")]
    [InlineData("COPY t TO STDOUT (ROWS 10)")]
    [InlineData("COPY t TO STDOUT WITH OIDS")]
    [InlineData("COPY t TO STDOUT (FORMAT csv")]
    [InlineData("COPY (SELECT 1 TO STDOUT")]
    [InlineData("COPY t TO STDOUT; SELECT 1")]
    [InlineData("COPY t TO")]
    [InlineData("COPY TO STDOUT")]
    [InlineData("COPY t TO STDOUT (HEADER maybe)")]
    [InlineData("COPY t TO STDOUT (DELIMITER E'\\n')")]
    [InlineData("COPY a.b.c.d TO STDOUT")]
    public void Unreadable(string sql)
    {
        Assert.Equal(PgCopyParseResult.Unreadable, PgCopyStatementParser.Parse(sql, out var statement, out string? error));
        Assert.Null(statement);
        Assert.False(string.IsNullOrEmpty(error));
    }
}
