# shellcheck shell=bash
# Shared by the benchmark scripts: build, configure, start, stop and kill the nhiaudit gateway on loopback.
# Source it after eng/pg.sh (for PG_APP_PASSWORD). Everything is bookkept in three associative arrays keyed by a
# gateway name the caller chooses:
#   gw_pid[NAME]    the gateway's process id (empty once stopped)
#   gw_port[NAME]   its listen port on 127.0.0.1
#   gw_dir[NAME]    its folder: config.json, gateway.log, audit/, state/
#
#   GW_DLL                                       the Release build of the gateway (src/NhiAudit.Proxy)
#   gw_build LOGFILE                             dotnet build src/NhiAudit.Proxy -c Release; prints the errors on failure
#   gw_write_config NAME ISSUER_DIR PG_PORT DURABILITY [POLICY_JSON]
#                                                writes gw_dir[NAME]/config.json (one Postgres target 'pgbench')
#   gw_mint_token CONFIG SUBJECT LIFETIME ERRFILE   prints a workload token from the development issuer
#   gw_start NAME [VAR=VALUE...]                 starts the gateway in the background (extra environment for it only)
#   gw_wait_listening NAME                       waits up to 30 s for the port; non-zero if it died or did not listen
#   gw_stop NAME                                 SIGTERM (graceful: the audit log is written and closed), SIGKILL after 15 s
#   gw_kill NAME                                 SIGKILL: no shutdown code runs, like a crash or an OOM kill
#   load_note WHEN [warn]                        prints the load average; 'warn' flags a machine already busy

declare -A gw_pid=() gw_port=() gw_dir=()
GW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
GW_DLL=$GW_ROOT/src/NhiAudit.Proxy/bin/Release/net10.0/NhiAudit.Proxy.dll

gw_build() {
    local log=$1 t0=$SECONDS
    if ! (cd "$GW_ROOT" && dotnet build src/NhiAudit.Proxy -c Release -nologo -v quiet) >"$log" 2>&1; then
        grep -E 'error|Error' "$log" | sort -u | head -n 30
        return 1
    fi
    echo "built in $((SECONDS - t0)) s"
}

gw_write_config() {
    local name=$1 issuer_dir=$2 pg_port=$3 durability=$4 policy=${5-} dir=${gw_dir[$1]}
    mkdir -p "$dir"
    {
        cat <<JSON
{
  "Logging": { "LogLevel": { "Default": "Information" } },
  "NhiAudit": {
    "DevelopmentIssuer": { "Directory": "$issuer_dir", "Issuer": "https://issuer.local" },
    "Identity": {
      "Issuers": [
        { "Name": "local", "Issuer": "https://issuer.local", "JwksFile": "$issuer_dir/jwks.json", "Audiences": [ "nhiaudit" ] }
      ]
    },
JSON
        if [[ -n $policy ]]; then printf '    "Policy": %s,\n' "$policy"; fi
        cat <<JSON
    "Audit": { "Directory": "$dir/audit", "Durability": "$durability", "OnSinkFailure": "Deny" },
    "Postgres": {
      "Targets": [
        {
          "Name": "pgbench",
          "Listen": "127.0.0.1:${gw_port[$name]}",
          "Upstream": { "Host": "127.0.0.1", "Port": $pg_port, "Username": "app", "Password": "$PG_APP_PASSWORD", "SslMode": "Disable" },
          "Tls": { "Required": false, "StateDirectory": "$dir/state" }
        }
      ]
    }
  }
}
JSON
    } > "$dir/config.json"
}

gw_mint_token() {
    local config=$1 subject=$2 lifetime=$3 errfile=$4 token
    token=$(dotnet "$GW_DLL" token --config "$config" --subject "$subject" --lifetime "$lifetime" 2>"$errfile") || { cat "$errfile"; return 1; }
    [[ $token == *.*.* ]] || { cat "$errfile"; return 1; }
    printf '%s\n' "$token"
}

gw_start() {
    local name=$1 dir=${gw_dir[$1]}
    shift
    (
        cd "$dir" || exit 2
        for assignment in "$@"; do export "${assignment?}"; done
        exec dotnet "$GW_DLL" run --config "$dir/config.json"
    ) >>"$dir/gateway.log" 2>&1 &
    gw_pid[$name]=$!
}

gw_wait_listening() {
    local name=$1
    for _ in $(seq 1 150); do
        kill -0 "${gw_pid[$name]}" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/${gw_port[$name]}") 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    return 1
}

gw_stop() {
    local name=$1 pid=${gw_pid[$1]:-}
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "  $name (pid $pid) did not stop within 15 s of SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    gw_pid[$name]=
}

gw_kill() {
    local name=$1 pid=${gw_pid[$1]:-}
    [[ -n $pid ]] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    gw_pid[$name]=
}

load_note() {
    local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "load average ($1): $load$( [[ ${2-} == warn ]] && awk -v l="${load%% *}" -v c="$(nproc)" 'BEGIN { if (l > c / 2) print "  !! the machine is busy with other work: figures not comparable with quiet runs" }')"
}

# The end of every benchmark script, from its EXIT trap: stop the gateways and PostgreSQL (and pgbouncer), keep or
# remove the work directory, say if the run stopped early, close the log's tee and exit with the script's code.
# Uses the caller's globals: gw_pid, work, keep, finished, out, tee_pid.
bench_finish() {
    local script=$1 rc=$2
    trap - EXIT INT TERM
    set +e
    for name in "${!gw_pid[@]}"; do gw_stop "$name"; done
    if [[ -n ${PG_BIN:-} ]] && declare -F pg_destroy >/dev/null; then
        if (( keep )); then
            declare -F pgbouncer_stop >/dev/null && pgbouncer_stop "$work/pg" >/dev/null 2>&1
            pg_stop "$work/pg" >/dev/null 2>&1
        else
            pg_destroy "$work/pg" >/dev/null 2>&1
        fi
    fi
    if (( keep )); then
        echo "work directory kept: $work (PostgreSQL stopped; remove with: rm -rf $work)"
    else
        rm -rf "$work"
    fi
    (( finished )) || echo "$script: stopped before the end (exit $rc); partial results in $out"
    exec 1>&- 2>&-
    wait "$tee_pid" 2>/dev/null
    exit "$rc"
}

# Opens the results file (benchmarks/results/NAME-<UTC time>.txt unless the caller set $out) and copies everything
# the script prints into it from here on; sets the globals out and tee_pid that bench_finish uses.
bench_open_results() {
    local name=$1
    if [[ -z $out ]]; then
        mkdir -p "$ROOT/benchmarks/results"
        out="$ROOT/benchmarks/results/$name-$(date -u +%Y%m%d-%H%M%SZ).txt"
    else
        mkdir -p "$(dirname "$out")"
    fi
    : > "$out"
    exec > >(trap '' INT TERM; exec tee -a "$out") 2>&1
    tee_pid=$!
}
