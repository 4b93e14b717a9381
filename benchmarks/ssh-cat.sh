#!/usr/bin/env bash
# Bulk SSH throughput: `cat` of a file on the host to the client's /dev/null with the real OpenSSH client, straight to a
# private sshd vs through haproxy (a plain TCP relay) vs through the NhiAudit SSH gateway (decrypts, inspects, audits and
# re-encrypts), all on loopback, in interleaved rounds. The gateway's audit log must hold each transfer's ssh.response
# with the exact byte count (checked at the end).
#
#   benchmarks/ssh-cat.sh [options]        # as root (sshd)
#
#   --mib N          size of the file in MiB (default 500)
#   --cipher C       the client's cipher, also the gateway's first choice upstream (default aes128-gcm@openssh.com)
#   --rounds R       interleaved rounds, order rotating: direct, haproxy, gateway (default 1)
#   --durability D   the gateway's Audit:Durability (default WriteAhead)
#   --keep           keep the work directory
#   --no-build       use the existing Release build of the gateway
#   --out FILE       results file (default benchmarks/results/ssh-cat-<UTC date-time>.txt)
#
# Exit status: 0 all good; 1 a transfer was short or failed, or the audit log lacks one; 2 bad usage or setup failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 MSBUILDTERMINALLOGGER=off
# shellcheck source=benchmarks/lib/gateway.sh
source benchmarks/lib/gateway.sh

mib=500 cipher=aes128-gcm@openssh.com rounds=1 durability=WriteAhead keep=0 build=1 out=
while (( $# )); do
    case "$1" in
        --mib|--rounds)
            [[ ${2-} =~ ^[1-9][0-9]*$ ]] || { echo "ssh-cat: $1 needs a positive whole number, got '${2-}'" >&2; exit 2; }
            if [[ $1 == --mib ]]; then mib=$2; else rounds=$2; fi; shift ;;
        --cipher) cipher=${2:?--cipher needs a name}; shift ;;
        --durability) durability=${2:?--durability needs a level}; shift ;;
        --keep) keep=1 ;;
        --no-build) build=0 ;;
        --out) out=${2:?--out needs a file}; shift ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ssh-cat: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
(( EUID == 0 )) || { echo "ssh-cat: run as root (it starts a private sshd)" >&2; exit 2; }
for tool in sshd ssh ssh-keygen haproxy; do
    command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] || { echo "ssh-cat: $tool is missing (apt-get install -y openssh-server openssh-client haproxy)" >&2; exit 2; }
done

bench_open_results ssh-cat "$out"
echo "ssh-cat.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + uncommitted changes under src/')"
echo "$(nproc) cores; ${mib} MiB per transfer; cipher $cipher; $rounds round(s); gateway durability $durability"
load_note start warn

work=$(mktemp -d /dev/shm/ssh-cat.XXXXXX)
sshd_pid= haproxy_pid= finished=0
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    [[ -n $sshd_pid ]] && kill "$sshd_pid" 2>/dev/null
    [[ -n $haproxy_pid ]] && kill "$haproxy_pid" 2>/dev/null
    bench_finish ssh-cat "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT

if (( build )); then gw_build "$work/build.log" || { echo "ssh-cat: build failed"; exit 2; }; fi
[[ -f $GW_DLL ]] || { echo "ssh-cat: $GW_DLL missing (build first, or drop --no-build)"; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
for key in host gateway_client gateway_host client; do ssh-keygen -q -t ed25519 -N '' -C "$key" -f "$work/$key"; done
cat "$work/gateway_client.pub" "$work/client.pub" > "$work/authorized_keys_root"
sshd_port=$(free_port) haproxy_port=$(free_port)
gw_dir[gw]=$work/gw gw_port[gw]=$(free_port)
mkdir -p /run/sshd "${gw_dir[gw]}"
cat > "$work/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/host
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys_%u
PermitRootLogin prohibit-password
PasswordAuthentication no
StrictModes no
UsePAM no
EOF
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" & sshd_pid=$!
cat > "$work/haproxy.cfg" <<EOF
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend ssh
    bind 127.0.0.1:$haproxy_port
    default_backend sshd
backend sshd
    server local 127.0.0.1:$sshd_port
EOF
haproxy -q -f "$work/haproxy.cfg" & haproxy_pid=$!

fingerprint=$(ssh-keygen -lf "$work/host.pub" | awk '{print $2}')
cat > "${gw_dir[gw]}/config.json" <<JSON
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "NhiAudit": {
    "DevelopmentIssuer": { "Directory": "$work/issuer", "Issuer": "https://issuer.local" },
    "Identity": {
      "Issuers": [ { "Name": "local", "Issuer": "https://issuer.local", "JwksFile": "$work/issuer/jwks.json", "Audiences": [ "nhiaudit" ] } ],
      "SshKeys": [ { "PublicKey": "$(cat "$work/client.pub")", "Subject": "bench-job", "Kind": "ServicePrincipal" } ]
    },
    "Audit": { "Directory": "${gw_dir[gw]}/audit", "Durability": "$durability", "OnSinkFailure": "Deny" },
    "Ssh": {
      "Targets": [
        {
          "Name": "bench",
          "Listen": "127.0.0.1:${gw_port[gw]}",
          "HostKeyFile": "$work/gateway_host",
          "RecordingsDirectory": "${gw_dir[gw]}/recordings",
          "Upstream": { "Host": "127.0.0.1", "Port": $sshd_port, "Username": "root", "PrivateKeyFile": "$work/gateway_client", "HostKeyFingerprint": "$fingerprint" }
        }
      ]
    }
  }
}
JSON
gw_start gw
gw_wait_listening gw || { echo "ssh-cat: the gateway did not start:"; tail -n 30 "${gw_dir[gw]}/gateway.log"; exit 2; }
for port in "$sshd_port" "$haproxy_port"; do
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

file=$work/payload.bin
head -c $((mib * 1024 * 1024)) /dev/urandom > "$file"
bytes=$((mib * 1024 * 1024))

ssh_opts=(-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o "IdentityFile=$work/client" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -c "$cipher")
declare -A port_of=([direct]=$sshd_port [haproxy]=$haproxy_port [gateway]=${gw_port[gw]})
declare -A best=() all=()
failed=0 transfers=0

run_one() {
    local target=$1 t0 t1 got
    t0=$(date +%s.%N)
    got=$(ssh "${ssh_opts[@]}" -p "${port_of[$target]}" root@127.0.0.1 "cat $file" | wc -c) || { echo "  $target: ssh failed"; failed=1; return; }
    t1=$(date +%s.%N)
    if (( got != bytes )); then echo "  $target: received $got of $bytes bytes"; failed=1; return; fi
    local rate; rate=$(awk -v b="$bytes" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / 1048576 / (z - a) }')
    printf '  %-8s %8s MiB/s  (%.2f s)\n' "$target" "$rate" "$(awk -v a="$t0" -v z="$t1" 'BEGIN { print z - a }')"
    all[$target]="${all[$target]:-} $rate"
    if [[ -z ${best[$target]:-} ]] || awk -v r="$rate" -v b="${best[$target]}" 'BEGIN { exit !(r > b) }'; then best[$target]=$rate; fi
    if [[ $target == gateway ]]; then transfers=$((transfers + 1)); fi
}

order=(direct haproxy gateway)
for (( round = 1; round <= rounds; round++ )); do
    echo "round $round"
    for (( i = 0; i < 3; i++ )); do run_one "${order[(i + round - 1) % 3]}"; done
done

echo
printf '%-8s %12s %10s\n' target "MiB/s (best)" "/ direct"
for target in direct haproxy gateway; do
    [[ -n ${best[$target]:-} ]] || continue
    printf '%-8s %12s %10s\n' "$target" "${best[$target]}" "$(awk -v r="${best[$target]}" -v d="${best[direct]:-0}" 'BEGIN { if (d > 0) printf "%.2f", r / d; else print "-" }')"
done

gw_stop gw
logged=$(grep -h '"type":"ssh.response"' "${gw_dir[gw]}"/audit/audit-*.jsonl | grep -c "\"bytesOut\":$bytes," || true)
echo
echo "audit: $logged ssh.response record(s) with bytesOut=$bytes for $transfers gateway transfer(s)"
(( logged == transfers )) || failed=1
dotnet "$GW_DLL" verify "${gw_dir[gw]}/audit" | tail -n 2 || failed=1
load_note end
finished=1
exit $failed
