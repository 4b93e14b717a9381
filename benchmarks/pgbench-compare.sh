#!/usr/bin/env bash
# pgbench through the gateway vs direct vs pgbouncer (session mode), interleaved rounds, ratios.
# Every gateway statement must be audited: the audit log is counted against pgbench's transactions and verified.
#
#   benchmarks/pgbench-compare.sh [options]          # as root (PostgreSQL/pgbouncer run as 'postgres')
#
#   --rounds N          interleaved rounds, each runs every target once, order rotating (default 3)
#   --time S            seconds per pgbench run, pgbench -T (default 10)
#   --clients N         pgbench -c (default 8)
#   --threads N         pgbench -j (default 2)
#   --scale N           pgbench -i -s, done once, directly (default 10)
#   --mode M            pgbench -M: simple | extended | prepared (default simple)
#   --durability D      the gateway's Audit:Durability: Buffered | WriteAhead | Durable, or 'all' for one gateway
#                       per level, each its own column in the same rounds (default WriteAhead)
#   --warmup S          before round 1, an unrecorded S-second run against every target (JIT); 0 = none (default 2)
#   --inline-completions  start the gateway(s) with DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1
#   --no-build          don't build; use the existing Release build
#   --out FILE          results file (default benchmarks/results/pgbench-<UTC date-time>.txt)
#   --keep              keep the work directory (PostgreSQL data, gateway logs, audit logs); prints how to remove it
#
# Exit status: 0 all good; 1 a pgbench run failed, the audit log did not verify, or it holds fewer pgbench
# statements than pgbench reported transactions; 2 bad usage or setup failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=benchmarks/lib/gateway.sh
source benchmarks/lib/gateway.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 MSBUILDTERMINALLOGGER=off

rounds=3 duration=10 clients=8 threads=2 scale=10 mode=simple durability=WriteAhead warmup=2
inline=0 build=1 keep=0 out=
usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die_usage() { echo "pgbench-compare: $*" >&2; echo "(see --help)" >&2; exit 2; }
need_int() { [[ $2 =~ ^[0-9]+$ ]] || die_usage "$1 needs a whole number, got '$2'"; }
args=("$@")
while (( $# )); do
    case "$1" in
        --rounds) need_int "$1" "${2-}"; rounds=$2; shift ;;
        --time) need_int "$1" "${2-}"; duration=$2; shift ;;
        --clients) need_int "$1" "${2-}"; clients=$2; shift ;;
        --threads) need_int "$1" "${2-}"; threads=$2; shift ;;
        --scale) need_int "$1" "${2-}"; scale=$2; shift ;;
        --warmup) need_int "$1" "${2-}"; warmup=$2; shift ;;
        --mode) mode=${2-}; shift ;;
        --durability) durability=${2-}; shift ;;
        --inline-completions) inline=1 ;;
        --no-build) build=0 ;;
        --keep) keep=1 ;;
        --out) out=${2:?--out needs a file}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown argument '$1'" ;;
    esac
    shift
done
case "$mode" in simple|extended|prepared) ;; *) die_usage "--mode must be simple, extended or prepared" ;; esac
case "${durability,,}" in
    buffered) levels=(Buffered) ;;
    writeahead) levels=(WriteAhead) ;;
    durable) levels=(Durable) ;;
    all) levels=(Buffered WriteAhead Durable) ;;
    *) die_usage "--durability must be Buffered, WriteAhead, Durable or all" ;;
esac
(( rounds >= 1 && duration >= 1 && clients >= 1 && threads >= 1 && scale >= 1 )) || die_usage "--rounds/--time/--clients/--threads/--scale must be >= 1"
(( clients % threads == 0 )) || die_usage "--clients ($clients) must be a multiple of --threads ($threads) (pgbench requires it)"
(( clients <= 90 )) || die_usage "--clients above 90 would exceed pgbouncer's max_client_conn (100) / the pool"
[[ $(id -u) -eq 0 ]] || die_usage "run as root (PostgreSQL and pgbouncer are started as the postgres user via runuser)"

# Everything printed from here on also goes to the results file. tee ignores INT/TERM so the cleanup output survives ^C.
bench_open_results pgbench

say() { printf '\n== %s\n' "$*"; }

# Gateway column names: 'gateway' for one level, 'gw-<Level>' for 'all'.
gw_names=()
for level in "${levels[@]}"; do
    if (( ${#levels[@]} == 1 )); then gw_names+=(gateway); else gw_names+=("gw-$level"); fi
done
targets=(direct pgbouncer "${gw_names[@]}")

work=$(mktemp -d /tmp/nhiaudit-pgbench-XXXXXX)
chmod 755 "$work"
declare -A gw_level=()
finished=0

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    bench_finish pgbench-compare "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_setup() { echo "pgbench-compare: ERROR: $*"; exit 2; }

say "Prerequisites"
./eng/prereqs.sh
# shellcheck source=eng/pg.sh
source eng/pg.sh
PGBENCH=$PG_BIN/pgbench
PSQL=$PG_BIN/psql

dll=$GW_DLL
if (( build )); then
    say "Building the gateway (dotnet build src/NhiAudit.Proxy -c Release)"
    gw_build "$work/build.log" || fail_setup "the gateway does not build (full log above is cut to the errors)"
fi
[[ -f $dll ]] || fail_setup "$dll not found (build it, or drop --no-build)"
nhiaudit() { dotnet "$dll" "$@"; }

pg_port=$(pg_free_port)
bouncer_port=$(pg_free_port)
while [[ $bouncer_port == "$pg_port" ]]; do bouncer_port=$(pg_free_port); done
used_ports=" $pg_port $bouncer_port "
for name in "${gw_names[@]}"; do
    p=$(pg_free_port)
    while [[ $used_ports == *" $p "* ]]; do p=$(pg_free_port); done
    used_ports+="$p "
    gw_port[$name]=$p
done

say "Setup"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$( (git status --porcelain -- src 2>/dev/null || true) | wc -l)
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "command:     benchmarks/pgbench-compare.sh ${args[*]}"
echo "machine:     $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "software:    dotnet $(dotnet --version), $("$PG_BIN/postgres" --version), $("$PGBENCH" --version), $(pgbouncer --version 2>/dev/null | head -n 1 || /usr/sbin/pgbouncer --version | head -n 1)"
echo "source:      commit $commit$( (( dirty )) && echo ", $dirty uncommitted change(s) under src/")"
echo "pgbench:     -S -n -c $clients -j $threads -T $duration -M $mode, scale $scale, $rounds round(s), warm-up ${warmup} s per target"
echo "targets:     ${targets[*]} (order rotates every round)"
echo "PostgreSQL:  15, throwaway cluster, max_connections=200, fsync=off, synchronous_commit=off, full_page_writes=off (eng/pg.sh defaults)"
echo "pgbouncer:   session mode (pool_size 20), SCRAM, in front of the same PostgreSQL"
echo "gateway:     $(for i in "${!levels[@]}"; do printf '%s: Audit Durability=%s  ' "${gw_names[$i]}" "${levels[$i]}"; done)"
echo "             DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=$( (( inline )) && echo 1 || echo "unset (--inline-completions sets it to 1)")"
overrides=$(env | grep -E '^(NhiAudit__|DOTNET_)' | grep -v -E '^DOTNET_(CLI_TELEMETRY_OPTOUT|NOLOGO|SKIP_FIRST_TIME_EXPERIENCE)=' | cut -d= -f1 | tr '\n' ' ' || true)
[[ -n $overrides ]] && echo "             environment also passed to the gateway: $overrides"
echo "TLS:         none anywhere: pgbench->PostgreSQL, pgbench->pgbouncer->PostgreSQL and pgbench->gateway->PostgreSQL all"
echo "             run in clear on loopback (gateway Tls.Required=false, Upstream SslMode=Disable), so the comparison is like for like"
echo "all processes share the same $(nproc) cores as pgbench itself; compare ratios, not absolute TPS"
# load_note (benchmarks/lib/gateway.sh): with 'warn', flags a machine busy with other work (before we add ours).
load_note "before starting PostgreSQL" warn

say "Starting PostgreSQL 15 and pgbouncer"
pg_start "$work/pg" "$pg_port" "max_connections = 200" || fail_setup "PostgreSQL did not start"
pgbouncer_start "$work/pg" "$bouncer_port" "$pg_port" || fail_setup "pgbouncer did not start"

say "pgbench -i -s $scale (directly)"
t0=$SECONDS
PGPASSWORD=$PG_APP_PASSWORD PGSSLMODE=disable "$PGBENCH" -i -s "$scale" -q -h 127.0.0.1 -p "$pg_port" -U app app >"$work/init.log" 2>&1 \
    || { tail -n 20 "$work/init.log"; fail_setup "pgbench -i failed"; }
grep -E '^done in' "$work/init.log" || true
echo "initialised in $((SECONDS - t0)) s"

say "Starting the gateway(s)"
issuer_dir=$work/issuer
est=$(( (rounds * ${#targets[@]} * (duration + 2)) + ${#targets[@]} * (warmup + 2) + 600 ))
lifetime=$(printf '%02d:%02d:%02d' $((est / 3600)) $((est % 3600 / 60)) $((est % 60)))
for i in "${!levels[@]}"; do
    name=${gw_names[$i]}; level=${levels[$i]}
    dir=$work/$name
    mkdir -p "$dir"
    gw_dir[$name]=$dir; gw_level[$name]=$level
    gw_write_config "$name" "$issuer_dir" "$pg_port" "$level"
done

# One development issuer for all gateways, so one token works everywhere.
token=$(gw_mint_token "$work/${gw_names[0]}/config.json" pgbench "$lifetime" "$work/token.err") || fail_setup "nhiaudit token failed"
echo "token for subject 'pgbench' minted (${#token} chars, valid $lifetime)"

gw_environment=()
if (( inline )); then gw_environment+=(DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1); fi
for name in "${gw_names[@]}"; do gw_start "$name" "${gw_environment[@]}"; done
for name in "${gw_names[@]}"; do
    if ! gw_wait_listening "$name"; then
        tail -n 30 "${gw_dir[$name]}/gateway.log"
        fail_setup "$name did not listen on 127.0.0.1:${gw_port[$name]} within 30 s (log above)"
    fi
    # One statement through it before measuring: the gateway works end to end (login, relay, audit).
    if ! check=$(PGPASSWORD=$token PGSSLMODE=disable PGCONNECT_TIMEOUT=15 "$PSQL" -X -At -v ON_ERROR_STOP=1 \
            -h 127.0.0.1 -p "${gw_port[$name]}" -U pgbench -d app -c "select count(*) from pgbench_branches" 2>&1); then
        echo "$check"; tail -n 30 "${gw_dir[$name]}/gateway.log"
        fail_setup "a psql query through $name failed (gateway log above)"
    fi
    echo "$name (Durability=${gw_level[$name]}) on 127.0.0.1:${gw_port[$name]}, pid ${gw_pid[$name]}: ok (select through it returned $check)"
done

# ---- measuring ------------------------------------------------------------------------------------------------
results=$work/results.tsv          # round target tps latency_ms xacts status
: > "$results"
declare -A gw_xacts=()             # transactions pgbench reported per gateway, warm-up included
declare -A gw_runs=()              # pgbench runs per gateway (each also issues its own setup statements)
for name in "${gw_names[@]}"; do gw_xacts[$name]=0; gw_runs[$name]=0; done
failures=0

# run_pgbench TARGET SECONDS LOGFILE -> sets r_tps r_lat r_xacts r_status
run_pgbench() {
    local target=$1 secs=$2 log=$3 port user pass rc
    case "$target" in
        direct) port=$pg_port user=app pass=$PG_APP_PASSWORD ;;
        pgbouncer) port=$bouncer_port user=app pass=$PG_APP_PASSWORD ;;
        *) port=${gw_port[$target]} user=pgbench pass=$token ;;
    esac
    rc=0
    PGPASSWORD=$pass PGSSLMODE=disable PGCONNECT_TIMEOUT=15 timeout -k 5 $((secs + 120)) \
        "$PGBENCH" -S -n -c "$clients" -j "$threads" -T "$secs" -M "$mode" -h 127.0.0.1 -p "$port" -U "$user" app \
        >"$log" 2>&1 || rc=$?
    r_tps=$(sed -n -E 's/^tps = ([0-9.]+) \((without initial connection time|excluding connections establishing)\).*/\1/p' "$log" | head -n 1)
    r_lat=$(sed -n -E 's/^latency average = ([0-9.]+) ms.*/\1/p' "$log" | head -n 1)
    r_xacts=$(sed -n -E 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$log" | head -n 1)
    local failed
    failed=$(sed -n -E 's/^number of failed transactions: ([0-9]+).*/\1/p' "$log" | head -n 1)
    r_status=ok
    if (( rc != 0 )) || [[ -z $r_tps || -z $r_xacts ]] || (( ${failed:-0} > 0 )) || grep -q 'Run was aborted' "$log"; then
        r_status="FAILED(exit $rc${failed:+, $failed failed xacts})"
    fi
    if [[ -n ${gw_xacts[$target]+x} ]]; then
        gw_xacts[$target]=$(( ${gw_xacts[$target]} + ${r_xacts:-0} ))
        gw_runs[$target]=$(( ${gw_runs[$target]} + 1 ))
    fi
}

report_failure() {
    local target=$1 log=$2
    echo "  !! pgbench against $target failed: $r_status; its output:"
    sed 's/^/     | /' "$log" | tail -n 25
    if [[ -n ${gw_dir[$target]:-} ]]; then
        if ! kill -0 "${gw_pid[$target]}" 2>/dev/null; then echo "  !! the $target process (pid ${gw_pid[$target]}) is no longer running"; fi
        echo "  !! last lines of the $target log:"
        tail -n 25 "${gw_dir[$target]}/gateway.log" | sed 's/^/     | /'
    fi
}

if (( warmup > 0 )); then
    say "Warm-up: ${warmup} s against each target (not recorded)"
    for t in "${targets[@]}"; do
        run_pgbench "$t" "$warmup" "$work/warmup-$t.log"
        printf '  %-14s %10.1f tps  %s\n' "$t" "${r_tps:-0}" "$r_status"
        if [[ $r_status != ok ]]; then failures=$((failures + 1)); report_failure "$t" "$work/warmup-$t.log"; fi
        sleep 1
    done
fi

# CPU time (user+system, seconds) of the middlemen over the measured rounds: CPU per transaction, pgbouncer vs gateway.
proc_cpu() { [[ -n ${1-} && -r /proc/$1/stat ]] && awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
declare -A mid_pid=([pgbouncer]=$(cat "$work/pg/pgbouncer.pid" 2>/dev/null || true)) cpu_before=() cpu_after=()
for name in "${gw_names[@]}"; do mid_pid[$name]=${gw_pid[$name]}; done
for name in "${!mid_pid[@]}"; do cpu_before[$name]=$(proc_cpu "${mid_pid[$name]}" || true); done

n=${#targets[@]}
for (( r = 1; r <= rounds; r++ )); do
    order=()
    for (( k = 0; k < n; k++ )); do order+=("${targets[$(( (k + r - 1) % n ))]}"); done
    say "Round $r/$rounds (order: ${order[*]})"
    for t in "${order[@]}"; do
        log=$work/round$r-$t.log
        run_pgbench "$t" "$duration" "$log"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t" "${r_tps:-nan}" "${r_lat:-nan}" "${r_xacts:-0}" "$r_status" >> "$results"
        if [[ $r_status != ok ]]; then failures=$((failures + 1)); report_failure "$t" "$log"; fi
        sleep 1
    done
    printf '  %-14s %12s %10s %12s  %s\n' target tps "lat ms" xacts status
    for t in "${targets[@]}"; do
        awk -F'\t' -v r="$r" -v t="$t" '$1 == r && $2 == t { printf "  %-14s %12.1f %10.3f %12d  %s\n", t, $3, $4, $5, $6 }' "$results"
    done
    ratio_line=$(awk -F'\t' -v r="$r" '$1 == r { tps[$2] = $3 } END {
        s = ""; d = tps["direct"]; b = tps["pgbouncer"]
        if (d > 0 && b > 0) s = s sprintf("pgbouncer/direct %.3f", b / d)
        for (t in tps) if (t != "direct" && t != "pgbouncer" && tps[t] > 0) {
            if (d > 0) s = s sprintf("   %s/direct %.3f", t, tps[t] / d)
            if (b > 0) s = s sprintf("   %s/pgbouncer %.3f", t, tps[t] / b)
        }
        print s }' "$results")
    echo "  ratios: $ratio_line"
done

for name in "${!mid_pid[@]}"; do cpu_after[$name]=$(proc_cpu "${mid_pid[$name]}" || true); done

# ---- summary ----------------------------------------------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ok_tps() { awk -F'\t' -v t="$1" '$2 == t && $6 == "ok" { print $3 }' "$results"; }
# Per-round ratio A/B, for rounds where both succeeded.
round_ratios() { awk -F'\t' -v a="$1" -v b="$2" '$6 == "ok" { tps[$1 SUBSEP $2] = $3; rs[$1] = 1 } END {
    for (r in rs) if (((r SUBSEP a) in tps) && ((r SUBSEP b) in tps) && tps[r SUBSEP b] > 0) printf "%.6f\n", tps[r SUBSEP a] / tps[r SUBSEP b] }' "$results"; }
fmt_ratio() { local m; m=$(round_ratios "$1" "$2" | median); [[ $m == nan ]] && echo "n/a" || printf '%.3f  (per round: %s)' "$m" "$(round_ratios "$1" "$2" | sort -g | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), $1 }')"; }

say "Summary: pgbench -S -M $mode -c $clients -j $threads -T $duration, scale $scale, $rounds round(s)"
printf '  %-14s %12s %12s %12s %8s\n' target "median tps" "min" "max" "runs ok"
for t in "${targets[@]}"; do
    vals=$(ok_tps "$t")
    if [[ -z $vals ]]; then printf '  %-14s %12s\n' "$t" "no successful run"; continue; fi
    printf '  %-14s %12.1f %12.1f %12.1f %8s\n' "$t" "$(median <<<"$vals")" "$(sort -g <<<"$vals" | head -n 1)" \
        "$(sort -g <<<"$vals" | tail -n 1)" "$(wc -l <<<"$vals")/$rounds"
done
echo "  ratios (median of per-round ratios):"
for g in "${gw_names[@]}"; do
    printf '    %-26s %s\n' "$g/direct" "$(fmt_ratio "$g" direct)"
    printf '    %-26s %s\n' "$g/pgbouncer" "$(fmt_ratio "$g" pgbouncer)"
done
printf '    %-26s %s\n' "pgbouncer/direct" "$(fmt_ratio pgbouncer direct)"
if (( ${#gw_names[@]} > 1 )); then
    for g in "${gw_names[@]:1}"; do printf '    %-26s %s\n' "$g/${gw_names[0]}" "$(fmt_ratio "$g" "${gw_names[0]}")"; done
fi

echo "  CPU of the process in the middle over the measured rounds (user+system; it competes with PostgreSQL and pgbench for the cores):"
for t in pgbouncer "${gw_names[@]}"; do
    b=${cpu_before[$t]:-} a=${cpu_after[$t]:-}
    x=$(awk -F'\t' -v t="$t" '$2 == t { s += $5 } END { print s + 0 }' "$results")
    if [[ -z $b || -z $a ]] || (( x == 0 )); then printf '    %-14s n/a\n' "$t"; continue; fi
    awk -v t="$t" -v b="$b" -v a="$a" -v x="$x" -v secs="$(( rounds * duration ))" \
        'BEGIN { printf "    %-14s %7.2f s CPU for %d transactions: %6.1f µs per transaction, %3.0f%% of one core\n", t, a - b, x, (a - b) * 1e6 / x, (a - b) * 100 / secs }'
done

# ---- audit --------------------------------------------------------------------------------------------------------
say "Audit: every statement through the gateway recorded?"
audit_problems=0
for name in "${gw_names[@]}"; do
    dir=${gw_dir[$name]}
    pid=${gw_pid[$name]}
    cpu='' rss=''
    if [[ -n $pid && -r /proc/$pid/stat ]]; then
        cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat")
        rss=$(awk '/VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status")
    fi
    gw_stop "$name"    # graceful stop: everything buffered is on disk before counting
    echo "  $name (Durability=${gw_level[$name]}):"
    shopt -s nullglob
    files=("$dir"/audit/audit-*.jsonl)
    shopt -u nullglob
    if (( ${#files[@]} == 0 )); then
        echo "    no audit files in $dir/audit"; audit_problems=$((audit_problems + 1)); continue
    fi
    total=$(cat "${files[@]}" | wc -l)
    requests=$(cat "${files[@]}" | grep -F '"type":"pg.request"' | grep -c -F '"subject":"pgbench"' || true)
    xacts=${gw_xacts[$name]}
    diff=$((requests - xacts))
    echo "    audit records:                      $total in ${#files[@]} file(s), $(du -sh "$dir/audit" | cut -f1)"
    echo "    pg.request records, subject pgbench: $requests"
    echo "    transactions pgbench reported:       $xacts  (sum over its ${gw_runs[$name]} pgbench runs, warm-up included; a -S transaction is one statement)"
    # Besides its transactions, each pgbench run sends 2 statements of its own (a partitioning check on
    # pgbench_accounts and 'select count(*) from pgbench_branches' for the scale); the script's psql check is 1 more.
    expected=$(( 2 * ${gw_runs[$name]} + 1 ))
    echo "    difference:                          $diff  (expected $expected: 2 setup statements per pgbench run + 1 psql check$( (( diff == expected )) && echo "; matches" || echo "; DOES NOT MATCH" ))"
    if (( requests < xacts )); then
        echo "    !! FEWER audited statements than transactions: statements went unaudited"
        audit_problems=$((audit_problems + 1))
    fi
    kinds=$(cat "${files[@]}" | grep -F '"subject":"pgbench"' | grep -o -E '"type":"[a-z.]+"' | sort | uniq -c | sort -rn | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }' | sed 's/"type"://g; s/"//g')
    echo "    records by type (subject pgbench):   $kinds"
    [[ -n $cpu ]] && echo "    gateway process: ${cpu} s CPU in all (start-up and warm-up included), peak RSS $rss"
    if verify=$(nhiaudit verify "$dir/audit" 2>&1); then
        echo "    nhiaudit verify: OK   ($verify)"
    else
        echo "    nhiaudit verify: FAIL ($verify)" | head -n 5
        audit_problems=$((audit_problems + 1))
    fi
    log=$dir/gateway.log
    warn=$(grep -c -E '^[0-9:]* ?warn:' "$log" || true)
    errs=$(grep -c -E '^[0-9:]* ?(fail|crit):' "$log" || true)
    exc=$(grep -c -E 'Exception' "$log" || true)
    echo "    gateway log: $(wc -l < "$log") lines, $warn warn, $errs fail/crit, $exc mentioning an exception"
    if (( warn + errs + exc > 0 )); then
        grep -E '^[0-9:]* ?(warn|fail|crit):|Exception' "$log" | sed -E 's/[0-9a-f]{8}-[0-9a-f-]{27}/<id>/g' | cut -c1-220 | sort | uniq -c | sort -rn | head -n 8 | sed 's/^/      /'
    fi
done

say "Result"
load_note "at the end, including this benchmark's own load"
status=0
if (( failures > 0 )); then echo "FAIL: $failures pgbench run(s) failed"; status=1; fi
if (( audit_problems > 0 )); then echo "FAIL: $audit_problems audit problem(s)"; status=1; fi
(( status == 0 )) && echo "OK: all pgbench runs succeeded, every gateway statement audited, audit chain(s) verified"
# shellcheck disable=SC2031
echo "results written to ${out#"$ROOT"/}"
finished=1
exit "$status"
