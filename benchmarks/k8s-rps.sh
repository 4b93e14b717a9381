#!/usr/bin/env bash
# `get pod` requests per second: straight to the fake Kubernetes API server of the integration tests vs plain YARP
# (token swap only) vs the NhiAudit Kubernetes gateway (audit WriteAhead), all in one process, in interleaved rounds.
# Every gateway request must leave one k8s.request audit record (checked at the end).
#
#   benchmarks/k8s-rps.sh [options]        # no root, no cluster: everything runs in process
#
#   --concurrency C     concurrent request loops (= connections) per target (default 16)
#   --seconds T         measured seconds per target per round (default 10)
#   --rounds R          interleaved rounds, order rotating: direct, yarp, gateway (default 3)
#   --warmup S          unrecorded seconds per target before round 1; 0 = none (default 2)
#   --durability D      the gateway's Audit:Durability: Buffered | WriteAhead | Durable (default WriteAhead)
#   --keep              keep the work directory (fake API server, gateway state, audit log)
#   --no-build          use the existing Release build
#   --out FILE          results file (default benchmarks/results/k8s-rps-<UTC date-time>.txt)
#
# Exit status: that of the load program: 0 all good; 1 a request failed or the audit log does not hold one k8s.request
# record per gateway request; 2 bad usage or setup failure (build, a target not answering 200).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1 MSBUILDTERMINALLOGGER=off

build=1 out=
pass=()
while (( $# )); do
    case "$1" in
        --concurrency|--seconds|--rounds|--warmup)
            [[ ${2-} =~ ^[0-9]+$ ]] || { echo "k8s-rps: $1 needs a whole number, got '${2-}'" >&2; exit 2; }
            pass+=("$1" "$2"); shift ;;
        --durability) pass+=("$1" "${2:?--durability needs a level}"); shift ;;
        --keep) pass+=("$1") ;;
        --no-build) build=0 ;;
        --out) out=${2:?--out needs a file}; shift ;;
        -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "k8s-rps: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ -z $out ]]; then
    mkdir -p "$ROOT/benchmarks/results"
    out="$ROOT/benchmarks/results/k8s-rps-$(date -u +%Y%m%d-%H%M%SZ).txt"
else
    mkdir -p "$(dirname "$out")"
fi
: > "$out"
exec > >(trap '' INT TERM; exec tee -a "$out") 2>&1
tee_pid=$!

echo "k8s-rps.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src tests/NhiAudit.IntegrationTests/Kubernetes/Infrastructure 2>/dev/null || echo ' + uncommitted changes under src/ or the linked fake API server')"
echo "$(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)  ($(uptime))"
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
    echo "WARNING: load average above half the cores: something else is using the machine; the figures are not comparable with quiet runs"
fi

project=benchmarks/NhiAudit.KubernetesLoad/NhiAudit.KubernetesLoad.csproj
dll=benchmarks/NhiAudit.KubernetesLoad/bin/Release/net10.0/NhiAudit.KubernetesLoad.dll
if (( build )); then
    echo "building $project (Release)"
    if ! dotnet build "$project" -c Release -nologo -v quiet > /tmp/k8s-rps-build.$$.log 2>&1; then
        cat /tmp/k8s-rps-build.$$.log; rm -f /tmp/k8s-rps-build.$$.log
        echo "k8s-rps: build failed"; exit 2
    fi
    rm -f /tmp/k8s-rps-build.$$.log
fi
[[ -f $dll ]] || { echo "k8s-rps: $dll missing (build first, or drop --no-build)"; exit 2; }

set +e
dotnet "$dll" "${pass[@]}"
rc=$?
set -e

echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)  ($(uptime))"
echo "results: ${out#"$ROOT"/}  (exit $rc)"
exec >&- 2>&-
wait "$tee_pid" 2>/dev/null || true
exit $rc
