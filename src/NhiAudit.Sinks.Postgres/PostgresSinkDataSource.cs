using Npgsql;

namespace NhiAudit.Sinks.Postgres;

/// <summary>Builds the Npgsql data source the sink and the reader use.</summary>
internal static class PostgresSinkDataSource
{
    /// <summary>Shown in pg_stat_activity when the connection string names no application, so a DBA sees who writes.</summary>
    private const string DefaultApplicationName = "nhiaudit-sink";

    /// <summary>A data source for the validated <paramref name="options"/>' connection string.</summary>
    public static NpgsqlDataSource Create(PostgresSinkOptions options)
    {
        var builder = new NpgsqlDataSourceBuilder(options.ConnectionString);
        if (string.IsNullOrEmpty(builder.ConnectionStringBuilder.ApplicationName))
        {
            builder.ConnectionStringBuilder.ApplicationName = DefaultApplicationName;
        }

        return builder.Build();
    }
}
