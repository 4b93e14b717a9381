#!/usr/bin/env bash
# Throwaway PostgreSQL 15 clusters and pgbouncer instances for tests and benchmarks.
# Must run as root (PostgreSQL and pgbouncer refuse root, so they run as 'postgres' via runuser).
#
# Source it for the functions:
#   source eng/pg.sh
#   pg_start DIR PORT [extra postgresql.conf lines...]   # initdb (if needed) + start, roles below
#   pg_stop DIR                                          # pg_ctl stop -m fast
#   pg_destroy DIR                                       # stop everything in DIR, rm -rf DIR
#   pgbouncer_start DIR PORT PGPORT                      # session mode, SCRAM, in front of PGPORT
#   pgbouncer_stop DIR
#   pg_free_port                                         # prints a free TCP port on 127.0.0.1
#
# or run it:
#   eng/pg.sh start DIR PORT [conf...] | stop DIR | destroy DIR
#   eng/pg.sh bouncer-start DIR PORT PGPORT | bouncer-stop DIR
#   eng/pg.sh free-port | selftest
#
# The cluster (all on 127.0.0.1, TLS on with a self-signed cert for CN=localhost):
#   role       password          hba method       notes
#   postgres   postgres-secret   scram-sha-256    superuser (also 'peer' over the unix socket)
#   app        app-secret        scram-sha-256    LOGIN CREATEDB, owns database 'app'
#   md5user    md5-secret        md5              password stored as MD5
#   clearuser  clear-secret      password         cleartext password auth
# DIR holds: data/ (PGDATA), postgres.log, server.crt (copy of the cert for sslrootcert=),
# the unix socket (.s.PGSQL.PORT), and pgbouncer's files when pgbouncer_start uses the same DIR.
# DIR must be reachable by the postgres user: not under /root; it is chowned to postgres, mode 755.
# Defaults tuned for throwaway clusters: fsync/synchronous_commit/full_page_writes off,
# max_connections 200. Later "extra" lines override earlier ones.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_ADMIN_PASSWORD=${PG_ADMIN_PASSWORD:-postgres-secret}
PG_APP_PASSWORD=${PG_APP_PASSWORD:-app-secret}
PG_MD5_PASSWORD=${PG_MD5_PASSWORD:-md5-secret}
PG_CLEAR_PASSWORD=${PG_CLEAR_PASSWORD:-clear-secret}

_pg_die() { echo "pg.sh: ERROR: $*" >&2; return 1; }

_pg_check_root() {
    [[ $(id -u) -eq 0 ]] || _pg_die "must run as root (it uses 'runuser -u postgres')"
}

# Makes DIR (absolute) and checks the postgres user can traverse every component.
_pg_prepare_dir() {
    local dir=$1
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    chmod 755 "$dir"
    if ! runuser -u postgres -- test -x "$dir" -a -w "$dir"; then
        _pg_die "$dir is not reachable by the postgres user (a parent folder is not traversable? don't use /root)"
    fi
}

_pg_abs() { local d=$1; [[ $d = /* ]] || d="$PWD/$d"; printf '%s\n' "${d%/}"; }

# Prints a TCP port on 127.0.0.1 that nothing listens on (random in 20000-59999).
pg_free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    _pg_die "no free port found"
}

# Writes a self-signed cert + key (owned by postgres, key 600) as DIR/NAME.crt, DIR/NAME.key.
_pg_make_cert() {
    local dir=$1 name=$2
    if [[ ! -s $dir/$name.crt || ! -s $dir/$name.key ]]; then
        openssl req -new -x509 -days 2 -nodes -newkey rsa:2048 -subj /CN=localhost \
            -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
            -keyout "$dir/$name.key" -out "$dir/$name.crt" >/dev/null 2>&1 \
            || _pg_die "openssl req failed" || return 1
    fi
    chown postgres:postgres "$dir/$name.crt" "$dir/$name.key"
    chmod 600 "$dir/$name.key"
    chmod 644 "$dir/$name.crt"
}

_pg_running() { [[ -f $1/data/postmaster.pid ]] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1; }

pg_start() (
    set -euo pipefail
    _pg_check_root
    (( $# >= 2 )) || _pg_die "usage: pg_start DIR PORT [extra postgresql.conf lines...]"
    local dir port
    dir=$(_pg_abs "$1"); port=$2; shift 2
    [[ $port =~ ^[0-9]+$ ]] || _pg_die "bad port '$port'"
    [[ -x $PG_BIN/initdb ]] || _pg_die "$PG_BIN/initdb not found: run eng/prereqs.sh"
    _pg_prepare_dir "$dir"

    if _pg_running "$dir"; then
        echo "pg.sh: cluster in $dir already running"
        return 0
    fi

    local fresh=0
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        fresh=1
        rm -rf "$dir/data"
        local pwfile="$dir/.pwfile"
        printf '%s\n' "$PG_ADMIN_PASSWORD" > "$pwfile"
        chown postgres:postgres "$pwfile"; chmod 600 "$pwfile"
        runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U postgres -A scram-sha-256 \
            --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; rm -f "$pwfile"; _pg_die "initdb failed"; }
        rm -f "$pwfile"

        _pg_make_cert "$dir/data" server
        cp "$dir/data/server.crt" "$dir/server.crt"; chmod 644 "$dir/server.crt"

        cat > "$dir/data/pg_hba.conf" <<HBA
# TYPE  DATABASE USER       ADDRESS        METHOD
local   all      postgres                  peer
local   all      all                       scram-sha-256
host    all      md5user    127.0.0.1/32   md5
host    all      clearuser  127.0.0.1/32   password
hostssl all      all        127.0.0.1/32   scram-sha-256
host    all      all        127.0.0.1/32   scram-sha-256
HBA
        chown postgres:postgres "$dir/data/pg_hba.conf"; chmod 600 "$dir/data/pg_hba.conf"
    fi

    # Settings are (re)written on every start so PORT and extras apply to an existing cluster too.
    {
        echo "# written by eng/pg.sh"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$dir'"
        echo "max_connections = 200"
        echo "ssl = on"
        echo "ssl_cert_file = 'server.crt'"
        echo "ssl_key_file = 'server.key'"
        echo "password_encryption = 'scram-sha-256'"
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
        echo "logging_collector = off"
        echo "log_line_prefix = '%m [%p] app=%a user=%u db=%d '"
        local line
        for line in "$@"; do echo "$line"; done
    } > "$dir/data/nhiaudit.conf"
    chown postgres:postgres "$dir/data/nhiaudit.conf"
    grep -qx "include = 'nhiaudit.conf'" "$dir/data/postgresql.conf" \
        || echo "include = 'nhiaudit.conf'" >> "$dir/data/postgresql.conf"

    local t0=$SECONDS
    if ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start >/dev/null; then
        tail -n 30 "$dir/postgres.log" >&2 || true
        _pg_die "pg_ctl start failed (log: $dir/postgres.log)"
    fi

    if (( fresh )); then
        PGPASSWORD=$PG_ADMIN_PASSWORD PGSSLMODE=disable "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 \
            -h 127.0.0.1 -p "$port" -U postgres -d postgres >/dev/null <<SQL
SET password_encryption = 'scram-sha-256';
CREATE ROLE app LOGIN CREATEDB PASSWORD '$PG_APP_PASSWORD';
CREATE ROLE clearuser LOGIN PASSWORD '$PG_CLEAR_PASSWORD';
CREATE DATABASE app OWNER app STRATEGY FILE_COPY;
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD '$PG_MD5_PASSWORD';
GRANT ALL ON DATABASE app TO md5user, clearuser;
\c app
GRANT ALL ON SCHEMA public TO md5user, clearuser;
SQL
    fi
    echo "pg.sh: PostgreSQL 15 on 127.0.0.1:$port (data $dir/data, log $dir/postgres.log) up in $((SECONDS - t0)) s"
)

pg_stop() (
    set -euo pipefail
    _pg_check_root
    (( $# >= 1 )) || _pg_die "usage: pg_stop DIR"
    local dir; dir=$(_pg_abs "$1")
    if [[ -f $dir/data/postmaster.pid ]]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 \
            || true
    fi
)

pgbouncer_start() (
    set -euo pipefail
    _pg_check_root
    (( $# == 3 )) || _pg_die "usage: pgbouncer_start DIR PORT PGPORT"
    local dir port pgport bin
    dir=$(_pg_abs "$1"); port=$2; pgport=$3
    bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
    [[ -x $bin ]] || _pg_die "pgbouncer not found: run eng/prereqs.sh"
    _pg_prepare_dir "$dir"
    if [[ -f $dir/pgbouncer.pid ]] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
        echo "pg.sh: pgbouncer in $dir already running"
        return 0
    fi

    _pg_make_cert "$dir" pgbouncer
    printf '"app" "%s"\n"postgres" "%s"\n' "$PG_APP_PASSWORD" "$PG_ADMIN_PASSWORD" > "$dir/userlist.txt"
    chown postgres:postgres "$dir/userlist.txt"; chmod 600 "$dir/userlist.txt"
    cat > "$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$pgport

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 100
default_pool_size = 20
admin_users = postgres
stats_users = postgres
ignore_startup_parameters = extra_float_digits,search_path
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
client_tls_sslmode = allow
client_tls_cert_file = $dir/pgbouncer.crt
client_tls_key_file = $dir/pgbouncer.key
server_tls_sslmode = ${PGBOUNCER_SERVER_TLS_SSLMODE:-disable}
INI
    chown postgres:postgres "$dir/pgbouncer.ini"
    rm -f "$dir/pgbouncer.pid"
    runuser -u postgres -- "$bin" -d "$dir/pgbouncer.ini" \
        || { tail -n 20 "$dir/pgbouncer.log" >&2 || true; _pg_die "pgbouncer failed to start"; }
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "pg.sh: pgbouncer (session) on 127.0.0.1:$port -> 127.0.0.1:$pgport (log $dir/pgbouncer.log)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/pgbouncer.log" >&2 || true
    _pg_die "pgbouncer did not listen on $port within 10 s"
)

pgbouncer_stop() (
    set -euo pipefail
    (( $# >= 1 )) || _pg_die "usage: pgbouncer_stop DIR"
    local dir pid i; dir=$(_pg_abs "$1")
    [[ -f $dir/pgbouncer.pid ]] || return 0
    pid=$(cat "$dir/pgbouncer.pid")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pgbouncer.pid"
)

pg_destroy() (
    set -euo pipefail
    (( $# >= 1 )) || _pg_die "usage: pg_destroy DIR"
    local dir; dir=$(_pg_abs "$1")
    [[ -d $dir ]] || return 0
    pgbouncer_stop "$dir"
    pg_stop "$dir"
    rm -rf "$dir"
)

# Starts a cluster and pgbouncer in a temp folder, logs in as every role, stops everything.
pg_selftest() (
    set -euo pipefail
    _pg_check_root
    local dir port bport t0 failures=0
    dir=$(mktemp -d /tmp/nhiaudit-pgtest.XXXXXX)
    trap 'pg_destroy "$dir"' EXIT
    port=$(pg_free_port); bport=$(pg_free_port)
    t0=${EPOCHREALTIME/./}
    pg_start "$dir" "$port"
    echo "pg.sh: initdb + start + roles took $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms"
    check() {
        local what=$1; shift
        local out
        if out=$("$PG_BIN/psql" -X -At -v ON_ERROR_STOP=1 "$@" 2>&1); then
            echo "  ok   $what -> $(echo "$out" | tr '\n' ' ')"
        else
            echo "  FAIL $what: $out"; failures=$((failures + 1))
        fi
    }
    check "app scram+TLS" "host=127.0.0.1 port=$port user=app dbname=app password=$PG_APP_PASSWORD sslmode=require" \
        -c "select 'ssl='||ssl::text from pg_stat_ssl where pid = pg_backend_pid()"
    check "app verify-full" "host=localhost port=$port user=app dbname=app password=$PG_APP_PASSWORD sslmode=verify-full sslrootcert=$dir/server.crt" -c "select 1"
    check "stored password kinds" "host=127.0.0.1 port=$port user=postgres dbname=postgres password=$PG_ADMIN_PASSWORD sslmode=disable" \
        -c "select string_agg(rolname || ':' || case when rolpassword like 'md5%' then 'md5' else split_part(rolpassword, '\$', 1) end, ' ' order by rolname) from pg_authid where rolname in ('app','md5user','clearuser')"
    check "md5user md5" "host=127.0.0.1 port=$port user=md5user dbname=app password=$PG_MD5_PASSWORD sslmode=disable" -c "select current_user"
    check "clearuser password" "host=127.0.0.1 port=$port user=clearuser dbname=app password=$PG_CLEAR_PASSWORD sslmode=disable" -c "select current_user"
    if "$PG_BIN/psql" -X -At "host=127.0.0.1 port=$port user=app dbname=app password=nope sslmode=disable" -c "select 1" >/dev/null 2>&1; then
        echo "  FAIL wrong password accepted"; failures=$((failures + 1))
    else
        echo "  ok   wrong password rejected"
    fi
    pgbouncer_start "$dir" "$bport" "$port"
    check "pgbouncer app" "host=127.0.0.1 port=$bport user=app dbname=app password=$PG_APP_PASSWORD sslmode=disable" -c "select current_setting('port')"
    check "pgbouncer app TLS" "host=127.0.0.1 port=$bport user=app dbname=app password=$PG_APP_PASSWORD sslmode=require" -c "select 1"
    pgbouncer_stop "$dir"
    pg_stop "$dir"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "  FAIL server still listening after pg_stop"; failures=$((failures + 1)); fi
    if (( failures == 0 )); then echo "pg.sh: selftest passed"; else echo "pg.sh: selftest FAILED ($failures)"; return 1; fi
)

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    cmd=${1:-}; shift || true
    case "$cmd" in
        start) pg_start "$@" ;;
        stop) pg_stop "$@" ;;
        destroy) pg_destroy "$@" ;;
        bouncer-start|pgbouncer-start) pgbouncer_start "$@" ;;
        bouncer-stop|pgbouncer-stop) pgbouncer_stop "$@" ;;
        free-port) pg_free_port ;;
        selftest) pg_selftest ;;
        *) sed -n '2,17p' "$0" >&2; exit 2 ;;
    esac
fi
