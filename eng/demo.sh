#!/usr/bin/env bash
# The demo: a throwaway PostgreSQL and a throwaway sshd on loopback, the gateway with its embedded default
# configuration, a sample "CI job" that connects with a minted workload token (PostgreSQL) and a registered key (SSH),
# then the audit trail printed and verified.
#
#   ./eng/demo.sh            # run it (as root: PostgreSQL is started as the postgres user)
#   KEEP=1 ./eng/demo.sh     # leave PostgreSQL running and print how to reach it
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 MSBUILDTERMINALLOGGER=off

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

./eng/prereqs.sh
# shellcheck source=eng/pg.sh
source eng/pg.sh

work=$(mktemp -d /tmp/nhiaudit-demo-XXXXXX)
chmod 755 "$work"
pg_port=$(pg_free_port)
gw_port=$(pg_free_port)
gateway_pid= sshd_pid=

cleanup() {
    [[ -n $gateway_pid ]] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null || true
    [[ -n $sshd_pid ]] && kill "$sshd_pid" 2>/dev/null || true
    if [[ -z ${KEEP:-} ]]; then pg_destroy "$work/pg" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

say "Starting a throwaway PostgreSQL 15 on 127.0.0.1:$pg_port"
pg_start "$work/pg" "$pg_port" "log_statement = 'all'" "log_line_prefix = '%m [%p] app=%a user=%u db=%d '" >/dev/null

say "Building the gateway"
dotnet build src/NhiAudit.Proxy -c Release -nologo -v quiet -warnaserror >/dev/null
NHIAUDIT_DLL="$ROOT/src/NhiAudit.Proxy/bin/Release/net10.0/NhiAudit.Proxy.dll"
nhiaudit() { dotnet "$NHIAUDIT_DLL" "$@"; }

# The embedded default configuration, with only the upstream's address and the gateway's own credential overridden.
# The gateway's working directory receives audit/ and .nhiaudit/ (dev issuer key, generated TLS certificate).
mkdir -p "$work/gateway"
cd "$work/gateway"
export NhiAudit__Postgres__Targets__0__Listen="127.0.0.1:$gw_port"
export NhiAudit__Postgres__Targets__0__Upstream__Port="$pg_port"
export NhiAudit__Postgres__Targets__0__Upstream__Username=app
export NhiAudit__Postgres__Targets__0__Upstream__Password=app-secret
# Masking: the e-mail column is protected (only its last four letters shown), card numbers are found anywhere.
export NhiAudit__Policy__Masking__0__Name=pii NhiAudit__Policy__Masking__0__Columns__0=public.customers.email NhiAudit__Policy__Masking__0__Strategy=Partial
export NhiAudit__Policy__Masking__1__Name=cards NhiAudit__Policy__Masking__1__Detectors__0=credit-card NhiAudit__Policy__Masking__1__Strategy=Redact
admin_port=$(pg_free_port)
export NhiAudit__Admin__Listen="127.0.0.1:$admin_port"
# Evidence: this gateway is replica "demo-gw", and an Ed25519 key signs a checkpoint of its chain every 2 seconds.
openssl genpkey -algorithm ed25519 -out "$work/audit-signing.pem" 2>/dev/null
openssl pkey -in "$work/audit-signing.pem" -pubout -out "$work/audit-signing.pub.pem"
export NhiAudit__Audit__Replica=demo-gw NhiAudit__Audit__SigningKeyFile="$work/audit-signing.pem" NhiAudit__Audit__CheckpointInterval=00:00:02

ssh_port=$(pg_free_port) ssh_upstream_port=$(pg_free_port)
say "Starting a throwaway OpenSSH sshd (the build host) on 127.0.0.1:$ssh_upstream_port"
# Keys: the host's, the gateway's own login to it (the only key the host trusts), the gateway's host key toward
# workloads, and the deploy job's key (registered with the gateway, unknown to the host).
mkdir -p "$work/ssh" /run/sshd
for key in host gateway_client gateway_host deploy-bot; do ssh-keygen -q -t ed25519 -N '' -C "$key" -f "$work/ssh/$key"; done
cp "$work/ssh/gateway_client.pub" "$work/ssh/authorized_keys_root"
cat > "$work/ssh/sshd_config" <<CONFIG
Port $ssh_upstream_port
ListenAddress 127.0.0.1
HostKey $work/ssh/host
PidFile $work/ssh/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys_%u
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
AcceptEnv NHIAUDIT_*
Subsystem sftp /usr/lib/openssh/sftp-server
CONFIG
/usr/sbin/sshd -D -f "$work/ssh/sshd_config" -E "$work/ssh/sshd.log" &
sshd_pid=$!
echo "  the host trusts only the gateway's key: $(ssh-keygen -lf "$work/ssh/gateway_client.pub" | cut -d' ' -f2)"
# The SSH target and the job's key, added to the embedded default through the environment.
export NhiAudit__Identity__SshKeys__0__PublicKey="$(cat "$work/ssh/deploy-bot.pub")" NhiAudit__Identity__SshKeys__0__Subject=deploy-bot NhiAudit__Identity__SshKeys__0__Kind=ServicePrincipal
export NhiAudit__Ssh__Targets__0__Name=build NhiAudit__Ssh__Targets__0__Listen="127.0.0.1:$ssh_port" NhiAudit__Ssh__Targets__0__HostKeyFile="$work/ssh/gateway_host"
export NhiAudit__Ssh__Targets__0__Upstream__Host=127.0.0.1 NhiAudit__Ssh__Targets__0__Upstream__Port="$ssh_upstream_port" NhiAudit__Ssh__Targets__0__Upstream__Username=root
export NhiAudit__Ssh__Targets__0__Upstream__PrivateKeyFile="$work/ssh/gateway_client"
export NhiAudit__Ssh__Targets__0__Upstream__HostKeyFingerprint="$(ssh-keygen -lf "$work/ssh/host.pub" | cut -d' ' -f2)"
export NhiAudit__Ssh__Targets__0__RecordingsDirectory="$work/gateway/recordings"
# Two SSH rules beside the embedded PostgreSQL ones: no recursive rm, and no file writes under /etc (SFTP or scp).
# The first is decided on each command the exec line runs, as the host's shell reads it, so rm -fr, /bin/rm -r -f,
# sh -c 'rm -rf x', sudo rm -R, find -exec rm -rf and xargs rm -rf all meet it; what the gateway cannot read
# (a computed command name, eval, python -c, curl | sh) is refused as unclassified.
export NhiAudit__Policy__Rules__3__Name=no-rm-rf NhiAudit__Policy__Rules__3__Effect=Deny NhiAudit__Policy__Rules__3__Reason="recursive deletes are not allowed through the gateway"
export NhiAudit__Policy__Rules__3__When="request.protocol == 'ssh' && request.action == 'exec' && request.name == 'rm' && request.flags.exists(f, f == 'R' || 'recursive'.startsWith(f))"
export NhiAudit__Policy__Rules__4__Name=etc-is-read-only NhiAudit__Policy__Rules__4__Effect=Deny NhiAudit__Policy__Rules__4__Reason="/etc is read-only for jobs"
export NhiAudit__Policy__Rules__4__When="request.protocol == 'ssh' && (request.action == 'sftp.write' || request.action == 'scp.write') && request.resources.exists(p, p.startsWith('/etc/'))"

say "Starting the gateway: nhiaudit run (embedded default config) on 127.0.0.1:$gw_port (PostgreSQL) and 127.0.0.1:$ssh_port (SSH)"
# Started without the shell function so that $! is the gateway itself and `kill` reaches it (a clean stop closes the log).
dotnet "$NHIAUDIT_DLL" run >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$gw_port") 2>/dev/null; then break; fi
    sleep 0.2
done
sed 's/^/  gateway | /' "$work/gateway.log"

say "A CI job mints its workload token (in GitHub Actions this would be the job's OIDC token)"
token=$(nhiaudit token --subject "repo:contoso/orders:ref:refs/heads/main" --repository contoso/orders --workflow deploy.yml --run-id 8812 --sha 3f2c9e1)
echo "  token: ${token:0:40}… (${#token} chars)"

export PGPASSWORD=$token PGSSLMODE=require PGCONNECT_TIMEOUT=15
conn="host=127.0.0.1 port=$gw_port user=deploy dbname=app"

say "The job runs its migration and checks through the gateway (psql, sslmode=require)"
psql "$conn" -X -v ON_ERROR_STOP=1 <<'SQL'
SET nhiaudit.reason = 'release 1.4.2: loyalty tiers';
CREATE TABLE IF NOT EXISTS customers (id int PRIMARY KEY, email text, tier text, note text);
INSERT INTO customers VALUES (1, 'ada@example.com', 'gold', 'paid with 4111 1111 1111 1111'), (2, 'alan@example.com', 'silver', NULL) ON CONFLICT DO NOTHING;
PREPARE promote(int) AS UPDATE customers SET tier = 'platinum' WHERE id = $1;
EXECUTE promote(1);
SELECT id, tier FROM customers ORDER BY id; SELECT count(*) AS customers FROM customers;
-- Masked on the way back: the protected column under an alias and inside an expression, and a card number in free text.
SELECT id, email AS contact, upper(email) AS shout, note FROM customers ORDER BY id;
\copy customers TO '/dev/null'
SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid();
SQL

say "The job tries something the policy forbids (embedded default rules: no DROP, no TRUNCATE)"
psql "$conn" -X <<'SQL' 2>&1 | sed 's/^/  /'
DROP TABLE customers;
SELECT count(*) AS still_there FROM customers;
SQL

say "... and the same in other words: a DO block, a function it creates, SQL run from a string (policy over effects)"
psql "$conn" -X <<'SQL' 2>&1 | grep -E '^(ERROR|psql)' | sed 's/^/  /'
DO $$ BEGIN EXECUTE 'DROP TABLE customers'; END $$;
CREATE FUNCTION tidy() RETURNS void LANGUAGE sql AS 'TRUNCATE customers';
SELECT query_to_xml('TRUNCATE customers', true, false, '');
SQL
psql "$conn" -X -At -c "SELECT count(*) || ' customers still there' FROM customers" 2>&1 | sed 's/^/  /'

say "A DELETE without WHERE is held for a just-in-time approval; an approver grants it with nhiaudit approvals"
psql "$conn" -X -c "DELETE FROM customers" 2>&1 | sed 's/^/  job | /' &
job=$!
approver=$(nhiaudit token --subject alice@contoso.com --kind User --role NhiAudit.Approver)
ticket=
for _ in $(seq 1 50); do
    ticket=$(nhiaudit approvals list --admin "http://127.0.0.1:$admin_port" --token "$approver" 2>/dev/null | grep -oE '^[a-z0-9]{10}' | head -n 1 || true)
    [[ -n $ticket ]] && break
    sleep 0.2
done
nhiaudit approvals list --admin "http://127.0.0.1:$admin_port" --token "$approver" | sed 's/^/  approver | /'
nhiaudit approvals approve "$ticket" --reason "customer data purge, change CHG-1042" --admin "http://127.0.0.1:$admin_port" --token "$approver" | sed 's/^/  approver | /'
wait "$job"

say "pgbench, 2 seconds of read-only load through the gateway"
PGPASSWORD=app-secret PGSSLMODE=disable "$PG_BIN/pgbench" -i -s 1 -q -h 127.0.0.1 -p "$pg_port" -U app app >/dev/null 2>&1
"$PG_BIN/pgbench" -S -n -c 2 -T 2 -h 127.0.0.1 -p "$gw_port" -U deploy app 2>&1 | grep -E 'number of transactions actually processed|tps' | sed 's/^/  /'

say "A job with a forged token is turned away (and the attempt is audited)"
PGPASSWORD="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl" psql "$conn" -X -c 'SELECT 1' 2>&1 | sed 's/^/  /' || true

say "The deploy job reaches the build host through the gateway with its own key (ssh, scp, sftp, a shell)"
echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$work/ssh/gateway_host.pub")" > "$work/ssh/known_hosts"
ssh_opts=(-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o "IdentityFile=$work/ssh/deploy-bot" -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$work/ssh/known_hosts")
mkdir -p "$work/release" && echo "release 1.4.2" > "$work/release/VERSION"
NHIAUDIT_REASON="release 1.4.2" ssh "${ssh_opts[@]}" -o SendEnv=NHIAUDIT_REASON -p "$ssh_port" root@127.0.0.1 \
    'echo "on $(hostname) as $(id -un), the gateway says I am $NHIAUDIT_IDENTITY"; mkdir -p /tmp/nhiaudit-demo-app' 2>&1 | sed 's/^/  ssh | /'
scp -q "${ssh_opts[@]}" -P "$ssh_port" "$work/release/VERSION" root@127.0.0.1:/tmp/nhiaudit-demo-app/VERSION 2>&1 | sed 's/^/  scp | /'
echo "  scp | copied VERSION to /tmp/nhiaudit-demo-app"
printf 'put %s /etc/nhiaudit-demo.conf\n' "$work/release/VERSION" | sftp -q "${ssh_opts[@]}" -P "$ssh_port" -b - root@127.0.0.1 2>&1 | sed 's/^/  sftp | /' || true
ssh "${ssh_opts[@]}" -p "$ssh_port" root@127.0.0.1 'rm -rf /tmp/nhiaudit-demo-app' 2>&1 | sed 's/^/  ssh | /' || true
# Spelled differently, it is the same command to the host, and to the gateway; what it cannot read is refused.
ssh "${ssh_opts[@]}" -p "$ssh_port" root@127.0.0.1 'cd /tmp && sh -c "/bin/rm -r -f nhiaudit-demo-app"' 2>&1 | sed 's/^/  ssh | /' || true
ssh "${ssh_opts[@]}" -p "$ssh_port" root@127.0.0.1 'X=rm; $X -rf /tmp/nhiaudit-demo-app' 2>&1 | sed 's/^/  ssh | /' || true
echo "  the app directory is still there: $(cat /tmp/nhiaudit-demo-app/VERSION)"
printf 'echo typed into a shell\nexit\n' | ssh "${ssh_opts[@]}" -tt -p "$ssh_port" root@127.0.0.1 >/dev/null 2>&1 || true
rm -rf /tmp/nhiaudit-demo-app

say "What the server itself logged (its application_name names our session and the workload)"
grep -E "app=nhi:" "$work/pg/postgres.log" | grep -v pgbench_accounts | sed -n '1,6p' | sed 's/^/  /'

kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true; gateway_pid=

say "The audit trail (nhiaudit show audit), without the pgbench records"
nhiaudit show audit | grep -v 'pgbench_accounts\|← #[0-9]* SELECT 1 rows=1' | grep -v ' ssh\.' | sed -n '1,48p'
echo "  … and the SSH part:"
nhiaudit show audit | grep ' ssh\.' | sed -n '1,40p'
recording=$(ls "$work"/gateway/recordings/*.cast 2>/dev/null | head -n 1 || true)
if [[ -n $recording ]]; then
    echo "  the shell session, replayed from its recording (asciinema cat $recording):"
    script -qec "asciinema cat $recording" /dev/null | tr -d '\r' | grep -v '^$' | tail -n 4 | sed 's/^/    /'
fi
echo "  … $(nhiaudit show audit | wc -l) records in all; raw JSON Lines in $work/gateway/audit"

say "Verifying the hash chain and the signed checkpoints (nhiaudit verify audit --public-key KEY --checkpoint FILE)"
# checkpoint.json is what a sink or witness would hold; here it is copied aside as if it had been published.
cp audit/checkpoint.json "$work/published-checkpoint.json"
echo "  published checkpoint: $(cat "$work/published-checkpoint.json")" | cut -c1-160
nhiaudit verify audit --public-key "$work/audit-signing.pub.pem" --checkpoint "$work/published-checkpoint.json" | sed 's/^/  /'

say "Someone with access to the gateway's disk cuts the last 3 records: the chain alone cannot tell, the checkpoint can"
# The last records are the final checkpoint and log.closed; with them gone the log looks like one that crashed.
cp -r audit "$work/audit-cut"
last_segment=$(ls "$work/audit-cut"/audit-*.jsonl | sort | tail -n 1)
head -n -3 "$last_segment" > "$work/cut.tmp" && mv "$work/cut.tmp" "$last_segment"
nhiaudit verify "$work/audit-cut" 2>&1 | head -n 1 | sed 's/^/  without the checkpoint: /'
nhiaudit verify "$work/audit-cut" --public-key "$work/audit-signing.pub.pem" --checkpoint "$work/published-checkpoint.json" 2>&1 | sed 's/^/  with it: /' || true

if [[ -n ${KEEP:-} ]]; then
    echo; echo "PostgreSQL left running on 127.0.0.1:$pg_port (data in $work/pg); stop it with: eng/pg.sh destroy $work/pg"
fi
