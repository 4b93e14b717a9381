using System.Reflection;
using Microsoft.Extensions.Configuration;

namespace NhiAudit.Proxy;

/// <summary>Where the gateway's configuration comes from: a file, or the embedded default; then environment variables.</summary>
internal static class GatewayConfiguration
{
    /// <summary>The configuration section every setting lives under.</summary>
    public const string Section = "NhiAudit";

    public static IConfigurationRoot Build(FileInfo? configFile)
    {
        var builder = new ConfigurationBuilder();
        if (configFile is null)
        {
            builder.AddJsonStream(OpenDefaults());
        }
        else
        {
            if (!configFile.Exists)
            {
                throw new FileNotFoundException($"configuration file {configFile.FullName} does not exist", configFile.FullName);
            }

            builder.AddJsonFile(configFile.FullName, optional: false, reloadOnChange: false);
        }

        // e.g. NhiAudit__Postgres__Targets__0__Upstream__Port=5433 overrides one value without a file.
        builder.AddEnvironmentVariables();
        return builder.Build();
    }

    public static Stream OpenDefaults() =>
        Assembly.GetExecutingAssembly().GetManifestResourceStream("NhiAudit.Proxy.defaults.json")
        ?? throw new InvalidOperationException("the embedded default configuration is missing");
}
