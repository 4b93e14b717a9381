using NhiAudit.Proxy;

return await NhiAuditCli.InvokeAsync(args).ConfigureAwait(false);
