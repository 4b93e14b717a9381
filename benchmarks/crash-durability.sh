#!/usr/bin/env bash
# SIGKILL the gateway under pgbench load at each audit durability level, then compare what PostgreSQL executed with
# what the audit log holds. Every insert names itself: (client, n), n counting per pgbench client, sent with -M simple
# so the values are in the request record's text.
#
#   benchmarks/crash-durability.sh [options]          # as root (PostgreSQL runs as 'postgres')
#
#   --levels L          comma-separated durability levels (default Buffered,WriteAhead,Durable)
#   --load S            seconds of load between the first inserted row and the SIGKILL (default 2)
#   --clients N         pgbench -c (default 8)
#   --threads N         pgbench -j (default 2)
#   --no-build          don't build; use the existing Release build
#   --out FILE          results file (default benchmarks/results/crash-durability-<UTC date-time>.txt)
#   --keep              keep the work directory (PostgreSQL data, gateway logs, audit logs); prints how to remove it
#
# Per level: executed = rows in the level's table; logged = distinct (client, n) in pg.request records; missing =
# executed without a record; in flight = recorded but not executed (sent, not run before the kill). Then the gateway
# is restarted on the same audit directory: its log.opened must say previousClosed:false, a query through it must
# work, and after a graceful stop `nhiaudit verify` must pass.
# A SIGKILL loses the process's memory, not the kernel's page cache: it cannot show a host crash (power loss), which is
# what Durable's fsync is for.
#
# Exit status: 0 all good; 1 WriteAhead or Durable lost a record of an executed statement, the restarted log did not
# say previousClosed:false, or the chain did not verify; 2 bad usage or setup failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=benchmarks/lib/gateway.sh
source benchmarks/lib/gateway.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 MSBUILDTERMINALLOGGER=off

levels_arg=Buffered,WriteAhead,Durable load=2 clients=8 threads=2 build=1 keep=0 out=
usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die_usage() { echo "crash-durability: $*" >&2; echo "(see --help)" >&2; exit 2; }
need_int() { [[ $2 =~ ^[0-9]+$ ]] || die_usage "$1 needs a whole number, got '$2'"; }
args=("$@")
while (( $# )); do
    case "$1" in
        --levels) levels_arg=${2-}; shift ;;
        --load) need_int "$1" "${2-}"; load=$2; shift ;;
        --clients) need_int "$1" "${2-}"; clients=$2; shift ;;
        --threads) need_int "$1" "${2-}"; threads=$2; shift ;;
        --no-build) build=0 ;;
        --keep) keep=1 ;;
        --out) out=${2:?--out needs a file}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown argument '$1'" ;;
    esac
    shift
done
levels=()
IFS=, read -r -a requested <<<"$levels_arg"
for level in "${requested[@]}"; do
    case "${level,,}" in
        buffered) levels+=(Buffered) ;;
        writeahead) levels+=(WriteAhead) ;;
        durable) levels+=(Durable) ;;
        *) die_usage "--levels takes Buffered, WriteAhead and/or Durable, got '$level'" ;;
    esac
done
(( ${#levels[@]} >= 1 )) || die_usage "--levels is empty"
(( load >= 1 && clients >= 1 && threads >= 1 )) || die_usage "--load/--clients/--threads must be >= 1"
(( clients % threads == 0 )) || die_usage "--clients ($clients) must be a multiple of --threads ($threads) (pgbench requires it)"
[[ $(id -u) -eq 0 ]] || die_usage "run as root (PostgreSQL is started as the postgres user via runuser)"

bench_open_results crash-durability

say() { printf '\n== %s\n' "$*"; }

work=$(mktemp -d /tmp/nhiaudit-crash-XXXXXX)
chmod 755 "$work"
finished=0
load_pid=

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    [[ -n $load_pid ]] && kill -TERM "$load_pid" 2>/dev/null
    bench_finish crash-durability "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_setup() { echo "crash-durability: ERROR: $*"; exit 2; }

say "Prerequisites"
./eng/prereqs.sh
# shellcheck source=eng/pg.sh
source eng/pg.sh
PGBENCH=$PG_BIN/pgbench
PSQL=$PG_BIN/psql

if (( build )); then
    say "Building the gateway (dotnet build src/NhiAudit.Proxy -c Release)"
    gw_build "$work/build.log" || fail_setup "the gateway does not build (full log above is cut to the errors)"
fi
[[ -f $GW_DLL ]] || fail_setup "$GW_DLL not found (build it, or drop --no-build)"

pg_port=$(pg_free_port)
used_ports=" $pg_port "
for level in "${levels[@]}"; do
    p=$(pg_free_port)
    while [[ $used_ports == *" $p "* ]]; do p=$(pg_free_port); done
    used_ports+="$p "
    gw_port[$level]=$p
    gw_dir[$level]=$work/$level
done

say "Setup"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$( (git status --porcelain -- src 2>/dev/null || true) | wc -l)
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "command:     benchmarks/crash-durability.sh ${args[*]}"
echo "machine:     $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(nproc) cores, kernel $(uname -r)"
echo "source:      commit $commit$( (( dirty )) && echo ", $dirty uncommitted change(s) under src/")"
(( build )) || echo "             (--no-build: the gateway is the Release build of $(date -u -r "$GW_DLL" '+%Y-%m-%d %H:%M:%S UTC'), which may predate this source)"
echo "load:        pgbench -n -M simple -c $clients -j $threads -D n=0 -f probe.sql, SIGKILL of the gateway $load s after the first row"
echo "audit dir:   $work (filesystem: $(df -T "$work" | awk 'NR == 2 { print $2 }'))"
load_note "before starting PostgreSQL" warn

say "Starting PostgreSQL 15"
pg_start "$work/pg" "$pg_port" "max_connections = 200" || fail_setup "PostgreSQL did not start"
direct_psql() { PGPASSWORD=$PG_APP_PASSWORD PGSSLMODE=disable "$PSQL" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U app -d app "$@"; }

issuer_dir=$work/issuer
problems=0
summary=()
for level in "${levels[@]}"; do
    say "$level"
    table="probe_${level,,}"
    direct_psql -c "CREATE TABLE $table (client int, n int, PRIMARY KEY (client, n))" >/dev/null || fail_setup "CREATE TABLE $table failed"
    dir=${gw_dir[$level]}
    gw_write_config "$level" "$issuer_dir" "$pg_port" "$level"
    token=$(gw_mint_token "$dir/config.json" crash-probe 01:00:00 "$work/token.err") || fail_setup "nhiaudit token failed"
    gw_start "$level"
    gw_wait_listening "$level" || { tail -n 30 "$dir/gateway.log"; fail_setup "the $level gateway did not listen on 127.0.0.1:${gw_port[$level]}"; }

    # Each client counts its own inserts: -D n=0 starts every client at 0 and the script adds 1 per transaction.
    printf '\\set n :n + 1\nINSERT INTO %s (client, n) VALUES (:client_id, :n);\n' "$table" > "$dir/probe.sql"
    PGPASSWORD=$token PGSSLMODE=disable PGCONNECT_TIMEOUT=15 timeout -k 5 120 \
        "$PGBENCH" -n -M simple -c "$clients" -j "$threads" -T 90 -D n=0 -f "$dir/probe.sql" \
        -h 127.0.0.1 -p "${gw_port[$level]}" -U crash-probe app >"$dir/pgbench.log" 2>&1 &
    load_pid=$!
    for _ in $(seq 1 300); do
        if [[ $(direct_psql -c "SELECT count(*) FROM (SELECT 1 FROM $table LIMIT 1) AS any_row") == 1 ]]; then break; fi
        kill -0 "$load_pid" 2>/dev/null || { cat "$dir/pgbench.log"; fail_setup "pgbench stopped before inserting anything"; }
        sleep 0.1
    done
    sleep "$load"
    gw_kill "$level"
    wait "$load_pid" 2>/dev/null || true
    load_pid=
    echo "gateway SIGKILLed after $load s of load; pgbench: $(grep -c -E 'aborted|error|lost' "$dir/pgbench.log" || true) line(s) about lost connections"

    direct_psql -c "SELECT client || ',' || n FROM $table" | sort -u > "$dir/executed.txt"
    shopt -s nullglob
    files=("$dir"/audit/audit-*.jsonl)
    shopt -u nullglob
    (( ${#files[@]} > 0 )) || fail_setup "no audit files in $dir/audit"
    cat "${files[@]}" | grep -F '"type":"pg.request"' \
        | { grep -o -E "\"text\":\"INSERT INTO $table \\(client, n\\) VALUES \\([0-9]+, [0-9]+\\)" || true; } \
        | sed -E 's/.*VALUES \(([0-9]+), ([0-9]+)\)$/\1,\2/' | sort -u > "$dir/logged.txt"
    executed=$(wc -l < "$dir/executed.txt")
    logged=$(wc -l < "$dir/logged.txt")
    missing=$(comm -23 "$dir/executed.txt" "$dir/logged.txt" | wc -l)
    in_flight=$(comm -13 "$dir/executed.txt" "$dir/logged.txt" | wc -l)
    echo "executed=$executed logged=$logged missing=$missing in-flight=$in_flight"

    # Restart on the same directory: recovery, previousClosed:false, a query through it, a graceful stop, verify.
    gw_start "$level"
    gw_wait_listening "$level" || { tail -n 30 "$dir/gateway.log"; fail_setup "the restarted $level gateway did not listen"; }
    opened=$(cat "$dir"/audit/audit-*.jsonl | grep -F '"type":"log.opened"' | tail -n 1)
    closed_flag=$([[ $opened == *'"previousClosed":false'* ]] && echo false || echo MISSING)
    torn=$(sed -n -E 's/.*"recoveredTornBytes":([0-9]+).*/\1/p' <<<"$opened")
    rows_through=$(PGPASSWORD=$token PGSSLMODE=disable PGCONNECT_TIMEOUT=15 "$PSQL" -X -At -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "${gw_port[$level]}" -U crash-probe -d app -c "SELECT count(*) FROM $table" 2>&1) || rows_through="FAILED: $rows_through"
    gw_stop "$level"
    if verify=$(dotnet "$GW_DLL" verify "$dir/audit" 2>&1); then verified=OK; else verified=FAIL; fi
    echo "restart: log.opened previousClosed=$closed_flag${torn:+, recoveredTornBytes=$torn}; SELECT count(*) through it: $rows_through; verify: $verified ($verify)"

    verdict=ok
    if [[ $level != Buffered ]] && (( missing > 0 )); then verdict="LOST $missing records"; fi
    if [[ $closed_flag != false || $verified != OK || $rows_through != "$executed" ]]; then verdict="restart check failed"; fi
    if (( executed == 0 )); then verdict="no load"; fi
    if [[ $verdict != ok ]]; then problems=$((problems + 1)); fi
    summary+=("$(printf '%-11s %9d %9d %8d %10s %14s %8s  %s' "$level" "$executed" "$logged" "$missing" "$in_flight" "$closed_flag" "$verified" "$verdict")")
done

say "Result: what the server executed vs what the log holds, per durability level"
printf '%-11s %9s %9s %8s %10s %14s %8s  %s\n' level executed logged missing in-flight previousClosed verify verdict
printf '%s\n' "${summary[@]}"
echo "(missing may be > 0 only at Buffered: records batched in memory for up to the flush interval die with the process)"
load_note "at the end"
status=0
if (( problems > 0 )); then echo "FAIL: $problems level(s) with a problem"; status=1; else echo "OK"; fi
# shellcheck disable=SC2031
echo "results written to ${out#"$ROOT"/}"
finished=1
exit "$status"
