#!/usr/bin/env bash
# pgbench through the gateway without and with masking rules, interleaved rounds on the same PostgreSQL and data.
# The workload reads 10 rows of pgbench_accounts per transaction, including the protected column 'filler'.
#
#   benchmarks/pgbench-masking.sh [options]          # as root (PostgreSQL runs as 'postgres')
#
#   --rounds N          interleaved rounds, each runs every target once, order rotating (default 3)
#   --time S            seconds per pgbench run, pgbench -T (default 10)
#   --clients N         pgbench -c (default 8)
#   --threads N         pgbench -j (default 2)
#   --scale N           pgbench -i -s, done once, directly (default 1: 100000 accounts)
#   --mode M            pgbench -M: prepared | extended | simple (default prepared: Parse once, Bind/Execute, as Npgsql)
#   --warmup S          before round 1, an unrecorded S-second run against every target (JIT); 0 = none (default 2)
#   --no-direct         leave out the 'direct' reference column (pgbench straight to PostgreSQL)
#   --no-build          don't build; use the existing Release build
#   --out FILE          results file (default benchmarks/results/pgbench-masking-<UTC date-time>.txt)
#   --keep              keep the work directory (PostgreSQL data, gateway logs, audit logs); prints how to remove it
#
# Targets (gateways at Audit Durability WriteAhead, same build, same PostgreSQL):
#   unmasked           no masking rule
#   masked             rule 'filler': column public.pgbench_accounts.filler, Redact
#   masked+detectors   the same plus rule 'contact': detectors email + credit-card, Redact
#   detectors          rule 'contact' only: filler is not protected, so every filler value is scanned
#   direct             pgbench straight to PostgreSQL (reference; --no-direct drops it)
#
# Exit status: 0 all good; 1 a pgbench run failed, a gateway did not mask (or masked) as configured, an audit log did
# not verify or holds fewer pgbench statements than pgbench reported transactions; 2 bad usage or setup failure.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
# shellcheck source=benchmarks/lib/gateway.sh
source benchmarks/lib/gateway.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 MSBUILDTERMINALLOGGER=off

rounds=3 duration=10 clients=8 threads=2 scale=1 mode=prepared warmup=2
direct=1 build=1 keep=0 out=
usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die_usage() { echo "pgbench-masking: $*" >&2; echo "(see --help)" >&2; exit 2; }
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
        --no-direct) direct=0 ;;
        --no-build) build=0 ;;
        --keep) keep=1 ;;
        --out) out=${2:?--out needs a file}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die_usage "unknown argument '$1'" ;;
    esac
    shift
done
case "$mode" in simple|extended|prepared) ;; *) die_usage "--mode must be prepared, extended or simple" ;; esac
(( rounds >= 1 && duration >= 1 && clients >= 1 && threads >= 1 && scale >= 1 )) || die_usage "--rounds/--time/--clients/--threads/--scale must be >= 1"
(( clients % threads == 0 )) || die_usage "--clients ($clients) must be a multiple of --threads ($threads) (pgbench requires it)"
(( clients <= 150 )) || die_usage "--clients above 150 would exceed PostgreSQL's max_connections (200) with the gateways' own logins"
[[ $(id -u) -eq 0 ]] || die_usage "run as root (PostgreSQL is started as the postgres user via runuser)"

bench_open_results pgbench-masking

say() { printf '\n== %s\n' "$*"; }

gw_names=(unmasked masked masked+detectors detectors)
declare -A gw_rules=(
    [unmasked]=''
    [masked]='{ "Name": "filler", "Columns": [ "public.pgbench_accounts.filler" ], "Strategy": "Redact" }'
    [masked+detectors]='{ "Name": "filler", "Columns": [ "public.pgbench_accounts.filler" ], "Strategy": "Redact" }, { "Name": "contact", "Detectors": [ "email", "credit-card" ], "Strategy": "Redact" }'
    [detectors]='{ "Name": "contact", "Detectors": [ "email", "credit-card" ], "Strategy": "Redact" }'
)
targets=()
(( direct )) && targets+=(direct)
targets+=("${gw_names[@]}")

work=$(mktemp -d /tmp/nhiaudit-pgbench-masking-XXXXXX)
chmod 755 "$work"
finished=0

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    bench_finish pgbench-masking "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail_setup() { echo "pgbench-masking: ERROR: $*"; exit 2; }

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
used_ports=" $pg_port "
for name in "${gw_names[@]}"; do
    p=$(pg_free_port)
    while [[ $used_ports == *" $p "* ]]; do p=$(pg_free_port); done
    used_ports+="$p "
    gw_port[$name]=$p
done

# The workload: 10 accounts from a random one, the protected column included (10 DataRows per transaction).
workload=$work/accounts.sql
cat > "$workload" <<'SQL'
\set aid random(1, 100000 * :scale - 9)
SELECT aid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 9;
SQL
chmod 644 "$workload"

say "Setup"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$( (git status --porcelain -- src 2>/dev/null || true) | wc -l)
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "command:     benchmarks/pgbench-masking.sh ${args[*]}"
echo "machine:     $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
echo "software:    dotnet $(dotnet --version), $("$PG_BIN/postgres" --version), $("$PGBENCH" --version)"
echo "source:      commit $commit$( (( dirty )) && echo ", $dirty uncommitted change(s) under src/")"
(( build )) || echo "             (--no-build: the gateway is the Release build of $(date -u -r "$dll" '+%Y-%m-%d %H:%M:%S UTC'), which may predate this source)"
echo "pgbench:     -n -f accounts.sql -D scale=$scale -c $clients -j $threads -T $duration -M $mode, scale $scale, $rounds round(s), warm-up ${warmup} s per target"
echo "workload:    $(tail -n 1 "$workload")   (10 rows per transaction; aid random)"
echo "data:        pgbench_accounts.filler (char(84)) = 'customer secret <aid> <c<aid>@example.com>' in every row, set once, directly"
echo "targets:     ${targets[*]} (order rotates every round)"
for name in "${gw_names[@]}"; do
    printf '             %-17s Policy:Masking = [ %s ]\n' "$name" "${gw_rules[$name]}"
done
echo "PostgreSQL:  15, throwaway cluster, max_connections=200, fsync=off, synchronous_commit=off, full_page_writes=off (eng/pg.sh defaults)"
echo "gateway:     Audit Durability=WriteAhead, no TLS (Tls.Required=false, Upstream SslMode=Disable), pgbench in clear on loopback"
overrides=$(env | grep -E '^(NhiAudit__|DOTNET_)' | grep -v -E '^DOTNET_(CLI_TELEMETRY_OPTOUT|NOLOGO|SKIP_FIRST_TIME_EXPERIENCE)=' | cut -d= -f1 | tr '\n' ' ' || true)
[[ -n $overrides ]] && echo "             environment also passed to the gateways: $overrides"
echo "all processes share the same $(nproc) cores as pgbench itself; compare ratios, not absolute TPS"
load_note "before starting PostgreSQL" warn

say "Starting PostgreSQL 15"
pg_start "$work/pg" "$pg_port" "max_connections = 200" || fail_setup "PostgreSQL did not start"

direct_psql() { PGPASSWORD=$PG_APP_PASSWORD PGSSLMODE=disable "$PSQL" -X -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U app -d app "$@"; }

say "pgbench -i -s $scale (directly), then filler set to text in every row"
t0=$SECONDS
PGPASSWORD=$PG_APP_PASSWORD PGSSLMODE=disable "$PGBENCH" -i -s "$scale" -q -h 127.0.0.1 -p "$pg_port" -U app app >"$work/init.log" 2>&1 \
    || { tail -n 20 "$work/init.log"; fail_setup "pgbench -i failed"; }
grep -E '^done in' "$work/init.log" || true
if ! { direct_psql -c "UPDATE pgbench_accounts SET filler = 'customer secret ' || aid || ' <c' || aid || '@example.com>'" \
        && direct_psql -c "VACUUM (FULL, ANALYZE) pgbench_accounts"; } >"$work/update.log" 2>&1; then
    cat "$work/update.log"; fail_setup "setting filler failed"
fi
clear_text=$(direct_psql -c "SELECT rtrim(filler) FROM pgbench_accounts WHERE aid = 1") || fail_setup "reading filler back failed"
echo "filler of aid 1, directly: '$clear_text'  ($(direct_psql -c "SELECT count(*) FROM pgbench_accounts WHERE filler LIKE 'customer secret %'") rows set)"
echo "initialised in $((SECONDS - t0)) s"

say "Starting the gateways"
issuer_dir=$work/issuer
est=$(( (rounds * ${#targets[@]} * (duration + 2)) + ${#targets[@]} * (warmup + 2) + 600 ))
lifetime=$(printf '%02d:%02d:%02d' $((est / 3600)) $((est % 3600 / 60)) $((est % 60)))
for name in "${gw_names[@]}"; do
    dir=$work/$name
    mkdir -p "$dir"
    gw_dir[$name]=$dir
    gw_write_config "$name" "$issuer_dir" "$pg_port" WriteAhead "{ \"Masking\": [ ${gw_rules[$name]} ] }"
done

# One development issuer for all gateways, so one token works everywhere.
token=$(gw_mint_token "$work/${gw_names[0]}/config.json" pgbench "$lifetime" "$work/token.err") || fail_setup "nhiaudit token failed"
echo "token for subject 'pgbench' minted (${#token} chars, valid $lifetime)"

for name in "${gw_names[@]}"; do gw_start "$name"; done

# The masking check: one statement through each gateway (psql, simple query protocol) reading filler of aid 1.
mask_problems=0
for name in "${gw_names[@]}"; do
    if ! gw_wait_listening "$name"; then
        tail -n 30 "${gw_dir[$name]}/gateway.log"
        fail_setup "$name did not listen on 127.0.0.1:${gw_port[$name]} within 30 s (log above)"
    fi
    if ! got=$(PGPASSWORD=$token PGSSLMODE=disable PGCONNECT_TIMEOUT=15 "$PSQL" -X -At -v ON_ERROR_STOP=1 \
            -h 127.0.0.1 -p "${gw_port[$name]}" -U pgbench -d app -c "SELECT filler FROM pgbench_accounts WHERE aid = 1" 2>&1); then
        echo "$got"; tail -n 30 "${gw_dir[$name]}/gateway.log"
        fail_setup "a psql query through $name failed (gateway log above)"
    fi
    got=${got%"${got##*[! ]}"}    # char(84): drop the blank padding
    case "$name" in
        unmasked) want="the clear text"; [[ $got == "$clear_text" ]] && verdict=ok || verdict=WRONG ;;
        masked|masked+detectors) want="'****'"; [[ $got == '****' ]] && verdict=ok || verdict=WRONG ;;
        detectors) want="the e-mail address masked, the rest clear"
            [[ $got != "$clear_text" && $got != *@example.com* && $got == "customer secret 1 "* ]] && verdict=ok || verdict=WRONG ;;
    esac
    printf '%-17s on 127.0.0.1:%s, pid %s: filler of aid 1 = %s  (want %s): %s\n' "$name" "${gw_port[$name]}" "${gw_pid[$name]}" "'$got'" "$want" "$verdict"
    [[ $verdict == ok ]] || mask_problems=$((mask_problems + 1))
done
if (( mask_problems > 0 )); then
    echo "pgbench-masking: FAIL: $mask_problems gateway(s) did not return what their masking rules say; not measuring"
    exit 1
fi

# ---- measuring ------------------------------------------------------------------------------------------------
results=$work/results.tsv          # round target tps latency_ms xacts status
: > "$results"
declare -A gw_xacts=() gw_runs=()
for name in "${gw_names[@]}"; do gw_xacts[$name]=0; gw_runs[$name]=0; done
failures=0

# run_pgbench TARGET SECONDS LOGFILE -> sets r_tps r_lat r_xacts r_status
run_pgbench() {
    local target=$1 secs=$2 log=$3 port user pass rc
    case "$target" in
        direct) port=$pg_port user=app pass=$PG_APP_PASSWORD ;;
        *) port=${gw_port[$target]} user=pgbench pass=$token ;;
    esac
    rc=0
    PGPASSWORD=$pass PGSSLMODE=disable PGCONNECT_TIMEOUT=15 timeout -k 5 $((secs + 120)) \
        "$PGBENCH" -n -f "$workload" -D scale="$scale" -c "$clients" -j "$threads" -T "$secs" -M "$mode" \
        -h 127.0.0.1 -p "$port" -U "$user" app >"$log" 2>&1 || rc=$?
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
        printf '  %-17s %10.1f tps  %s\n' "$t" "${r_tps:-0}" "$r_status"
        if [[ $r_status != ok ]]; then failures=$((failures + 1)); report_failure "$t" "$work/warmup-$t.log"; fi
        sleep 1
    done
fi

# CPU time (user+system, seconds) of each gateway over the measured rounds: CPU per transaction.
proc_cpu() { [[ -n ${1-} && -r /proc/$1/stat ]] && awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
declare -A cpu_before=() cpu_after=()
for name in "${gw_names[@]}"; do cpu_before[$name]=$(proc_cpu "${gw_pid[$name]}" || true); done

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
    printf '  %-17s %12s %10s %12s  %s\n' target tps "lat ms" xacts status
    for t in "${targets[@]}"; do
        awk -F'\t' -v r="$r" -v t="$t" '$1 == r && $2 == t { printf "  %-17s %12.1f %10.3f %12d  %s\n", t, $3, $4, $5, $6 }' "$results"
    done
    ratio_line=$(awk -F'\t' -v r="$r" '$1 == r { tps[$2] = $3 } END {
        s = ""; u = tps["unmasked"]; d = tps["direct"]
        if (u > 0) {
            split("masked masked+detectors detectors", g, " ")
            for (i = 1; i <= 3; i++) if (tps[g[i]] > 0) s = s sprintf("%s/unmasked %.3f   ", g[i], tps[g[i]] / u)
            if (d > 0) s = s sprintf("unmasked/direct %.3f", u / d)
        }
        print s }' "$results")
    echo "  ratios: $ratio_line"
done

for name in "${gw_names[@]}"; do cpu_after[$name]=$(proc_cpu "${gw_pid[$name]}" || true); done

# ---- summary ----------------------------------------------------------------------------------------------------
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ok_tps() { awk -F'\t' -v t="$1" '$2 == t && $6 == "ok" { print $3 }' "$results"; }
round_ratios() { awk -F'\t' -v a="$1" -v b="$2" '$6 == "ok" { tps[$1 SUBSEP $2] = $3; rs[$1] = 1 } END {
    for (r in rs) if (((r SUBSEP a) in tps) && ((r SUBSEP b) in tps) && tps[r SUBSEP b] > 0) printf "%.6f\n", tps[r SUBSEP a] / tps[r SUBSEP b] }' "$results"; }
fmt_ratio() { local m; m=$(round_ratios "$1" "$2" | median); [[ $m == nan ]] && echo "n/a" || printf '%.3f  (per round: %s)' "$m" "$(round_ratios "$1" "$2" | sort -g | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), $1 }')"; }

say "Summary: pgbench -f accounts.sql (10 rows) -M $mode -c $clients -j $threads -T $duration, scale $scale, $rounds round(s)"
printf '  %-17s %12s %12s %12s %8s\n' target "median tps" "min" "max" "runs ok"
for t in "${targets[@]}"; do
    vals=$(ok_tps "$t")
    if [[ -z $vals ]]; then printf '  %-17s %12s\n' "$t" "no successful run"; continue; fi
    printf '  %-17s %12.1f %12.1f %12.1f %8s\n' "$t" "$(median <<<"$vals")" "$(sort -g <<<"$vals" | head -n 1)" \
        "$(sort -g <<<"$vals" | tail -n 1)" "$(wc -l <<<"$vals")/$rounds"
done
echo "  ratios (median of per-round ratios):"
for g in masked masked+detectors detectors; do
    printf '    %-28s %s\n' "$g/unmasked" "$(fmt_ratio "$g" unmasked)"
done
printf '    %-28s %s\n' "masked+detectors/masked" "$(fmt_ratio masked+detectors masked)"
if (( direct )); then
    for g in "${gw_names[@]}"; do printf '    %-28s %s\n' "$g/direct" "$(fmt_ratio "$g" direct)"; done
fi

echo "  CPU of each gateway over the measured rounds (user+system; it competes with PostgreSQL and pgbench for the cores):"
for t in "${gw_names[@]}"; do
    b=${cpu_before[$t]:-} a=${cpu_after[$t]:-}
    x=$(awk -F'\t' -v t="$t" '$2 == t { s += $5 } END { print s + 0 }' "$results")
    if [[ -z $b || -z $a ]] || (( x == 0 )); then printf '    %-17s n/a\n' "$t"; continue; fi
    awk -v t="$t" -v b="$b" -v a="$a" -v x="$x" -v secs="$(( rounds * duration ))" \
        'BEGIN { printf "    %-17s %7.2f s CPU for %d transactions: %6.1f µs per transaction (%.1f µs per row), %3.0f%% of one core\n", t, a - b, x, (a - b) * 1e6 / x, (a - b) * 1e5 / x, (a - b) * 100 / secs }'
done

# ---- audit --------------------------------------------------------------------------------------------------------
say "Audit: every statement through the gateways recorded, and what masking recorded?"
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
    echo "  $name:"
    shopt -s nullglob
    files=("$dir"/audit/audit-*.jsonl)
    shopt -u nullglob
    if (( ${#files[@]} == 0 )); then
        echo "    no audit files in $dir/audit"; audit_problems=$((audit_problems + 1)); continue
    fi
    total=$(cat "${files[@]}" | wc -l)
    requests=$(cat "${files[@]}" | grep -F '"type":"pg.request"' | grep -c -F '"subject":"pgbench"' || true)
    masked_recs=$(cat "${files[@]}" | grep -c -F '"masked":{' || true)
    masked_vals=$(cat "${files[@]}" | { grep -o -E '"masked":\{[^}]*"values":[0-9]+' || true; } | sed -E 's/.*"values":([0-9]+)$/\1/' | awk '{ s += $1 } END { print s + 0 }')
    detected_vals=$(cat "${files[@]}" | { grep -o -E '"masked":\{[^}]*"detected":[0-9]+' || true; } | sed -E 's/.*"detected":([0-9]+)$/\1/' | awk '{ s += $1 } END { print s + 0 }')
    xacts=${gw_xacts[$name]}
    diff=$((requests - xacts))
    echo "    audit records:                      $total in ${#files[@]} file(s), $(du -sh "$dir/audit" | cut -f1)"
    echo "    pg.request records, subject pgbench: $requests"
    echo "    transactions pgbench reported:       $xacts  (sum over its ${gw_runs[$name]} pgbench runs, warm-up included; one statement each)"
    # A custom-script pgbench sends no setup statements of its own; the script's psql check is 1.
    echo "    difference:                          $diff  (expected 1: the psql masking check$( (( diff == 1 )) && echo "; matches" || echo "; DOES NOT MATCH" ))"
    if (( requests < xacts )); then
        echo "    !! FEWER audited statements than transactions: statements went unaudited"
        audit_problems=$((audit_problems + 1))
    fi
    echo "    records with a 'masked' field:       $masked_recs  (values masked by a column rule: $masked_vals, found and masked by detectors: $detected_vals)"
    # Each transaction reads 10 rows: 10 values masked (filler) or 10 found by the detectors (the e-mail in filler).
    case "$name" in
        unmasked) (( masked_recs == 0 )) || { echo "    !! the unmasked gateway recorded masking"; audit_problems=$((audit_problems + 1)); } ;;
        *) if (( masked_vals + detected_vals < 10 * xacts )); then
               echo "    !! fewer masked values than 10 per transaction ($((10 * xacts)))"; audit_problems=$((audit_problems + 1))
           fi ;;
    esac
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
(( status == 0 )) && echo "OK: all pgbench runs succeeded, masking as configured, every gateway statement audited, audit chains verified"
# shellcheck disable=SC2031
echo "results written to ${out#"$ROOT"/}"
finished=1
exit "$status"
