#!/usr/bin/env bash
# The test command: prerequisites, build (warnings are errors), format check, every test.
#
#   ./eng/test.sh                    # what CI runs (.ci/run)
#   ./eng/test.sh --no-format        # skip `dotnet format --verify-no-changes`
#   ./eng/test.sh --no-prereqs       # don't run eng/prereqs.sh
#   ./eng/test.sh --filter EXPR      # dotnet test --filter EXPR (e.g. FullyQualifiedName~Postgres)
#   ./eng/test.sh -- ARGS...         # extra arguments for dotnet test
#
# Run as root: the integration tests start PostgreSQL/pgbouncer themselves as the 'postgres' user via runuser.
# Environment: NHIAUDIT_TEST_TIMEOUT (default 45m) bounds the whole `dotnet test`; a single test hung for
# NHIAUDIT_TEST_HANG_TIMEOUT (default 10m) is killed and named by --blame-hang.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DOTNET_GENERATE_ASPNET_CERTIFICATE=false MSBUILDTERMINALLOGGER=off

do_format=1
do_prereqs=1
filter=
extra=()
while (( $# )); do
    case "$1" in
        --no-format) do_format=0 ;;
        --no-prereqs) do_prereqs=0 ;;
        --filter) filter=${2:?--filter needs an expression}; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

T0=$SECONDS
phase_start=$SECONDS
phase() { echo; echo "==> $* (at +$((SECONDS - T0)) s)"; phase_start=$SECONDS; }
phase_done() { echo "<== $1 took $((SECONDS - phase_start)) s"; }

if (( do_prereqs )); then
    phase "prerequisites"
    ./eng/prereqs.sh
    phase_done "prerequisites"
fi

command -v dotnet >/dev/null || { echo "test.sh: dotnet not found on PATH" >&2; exit 1; }
echo "dotnet $(dotnet --version) on $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME"), $(nproc) cores, user $(id -un)"

phase "build"
if ! dotnet build NhiAudit.sln -c Release -warnaserror -nologo -v minimal; then
    echo "test.sh: BUILD FAILED" >&2
    exit 1
fi
phase_done "build"

if (( do_format )); then
    phase "format check"
    if ! dotnet format NhiAudit.sln --verify-no-changes --no-restore; then
        echo "test.sh: FORMAT CHECK FAILED: run 'dotnet format NhiAudit.sln' and commit the result" >&2
        exit 1
    fi
    phase_done "format check"
fi

# Throwaway servers the tests start live in /dev/shm or /tmp; note those that exist now so that any this run
# leaks (a crashed test host) can be stopped afterwards without touching anyone else's.
leftover_dirs() { ls -d /dev/shm/nhiaudit-pg-* /dev/shm/nhiaudit-pgbouncer-* /tmp/nhiaudit-pg-* /tmp/nhiaudit-pgbouncer-* 2>/dev/null || true; }
before=$(leftover_dirs)
cleanup_leaks() {
    local d
    for d in $(leftover_dirs); do
        grep -qxF "$d" <<<"$before" && continue
        if [[ -f $d/pgbouncer.pid ]]; then
            kill "$(cat "$d/pgbouncer.pid")" 2>/dev/null || true
        fi
        if [[ -f $d/data/postmaster.pid ]]; then
            echo "test.sh: stopping leaked PostgreSQL in $d"
            if [[ $(id -u) -eq 0 ]]; then
                runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
            else
                /usr/lib/postgresql/15/bin/pg_ctl -D "$d/data" -m immediate stop >/dev/null 2>&1 || true
            fi
        fi
        rm -rf "$d"
    done
}
trap cleanup_leaks EXIT

phase "test"
results="$ROOT/artifacts/test-results"
mkdir -p "$results"
log="$results/dotnet-test.log"
test_args=(test NhiAudit.sln -c Release --no-build --nologo
    --logger "console;verbosity=normal"
    --results-directory "$results"
    --blame-hang-timeout "${NHIAUDIT_TEST_HANG_TIMEOUT:-10m}" --blame-hang-dump-type none)
[[ -n $filter ]] && test_args+=(--filter "$filter")
test_args+=("${extra[@]}")

set +e
timeout --kill-after=30s "${NHIAUDIT_TEST_TIMEOUT:-45m}" dotnet "${test_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
phase_done "test"

# Per test assembly, VSTest prints "Passed!  - Failed: F, Passed: P, Skipped: S, Total: T, Duration: … - X.dll"
# or a "Total tests: / Passed: / Failed: / Skipped:" block; add them up.
summary=$(sed 's/\r$//' "$log" | awk '
    /(Passed|Failed)! +- +Failed: +[0-9]+, +Passed: +[0-9]+, +Skipped: +[0-9]+/ {
        match($0, /Failed: +[0-9]+/);  f = substr($0, RSTART + 7, RLENGTH - 7) + 0
        match($0, /Passed: +[0-9]+/);  p = substr($0, RSTART + 7, RLENGTH - 7) + 0
        match($0, /Skipped: +[0-9]+/); s = substr($0, RSTART + 8, RLENGTH - 8) + 0
        F += f; P += p; S += s; short = 1; next
    }
    /^ *Total tests: +[0-9]+/ { blocks++; inblock = 1; next }
    inblock && /^ +Passed: +[0-9]+/  { bp += $2; next }
    inblock && /^ +Failed: +[0-9]+/  { bf += $2; next }
    inblock && /^ +Skipped: +[0-9]+/ { bs += $2; next }
    inblock && /Total time:/ { inblock = 0 }
    /No test is available in/ { empty++ }
    END {
        if (!short) { P = bp; F = bf; S = bs }
        printf "%d %d %d %d\n", P, F, S, empty
    }')
read -r passed failed skipped empty <<<"$summary"

echo
echo "==> summary (total $((SECONDS - T0)) s)"
grep -E '^\s*Failed [A-Za-z_]' "$log" | sed 's/^ *Failed /  FAILED: /' | sort -u || true
grep -E 'The active test run was aborted|Test host process crashed|hang timeout' "$log" | sort -u | sed 's/^/  /' || true
(( empty > 0 )) && echo "  $empty test project(s) contain no tests"
if (( rc == 124 || rc == 137 )); then
    echo "test.sh: dotnet test exceeded ${NHIAUDIT_TEST_TIMEOUT:-45m} and was killed" >&2
fi
if (( rc != 0 )) && (( failed == 0 )); then
    failed=1 # the run failed without a failing test (crash, hang, timeout): never report it as green
fi
if (( passed + failed == 0 )) && (( rc == 0 )); then
    echo "test.sh: no test ran" >&2
    rc=1
fi
echo "Tests: $passed passed, $failed failed, $skipped skipped"
exit $(( rc != 0 || failed != 0 ))
