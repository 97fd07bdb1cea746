# Shared by the benchmark scripts (sourced, not run): messages, the tools they
# install, process and port handling, and the release build of Vigil.
#
# The sourcing script sets BENCH_NAME (for messages), ROOT, STOP_DEADLINE_S,
# READY_DEADLINE_S, PGHOST_DIRECT, PGPORT_DIRECT and PGSUPERUSER first.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; exit 2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

find_pgbouncer() { command -v pgbouncer || { [[ -x /usr/sbin/pgbouncer ]] && echo /usr/sbin/pgbouncer; } || true; }

# Installs what is missing: postgresql-client when any of the client commands
# given is absent, PgBouncer and python3. Sets PGBOUNCER_BIN.
ensure_tools() {
    local missing=() command
    for command in "$@"; do
        command -v "$command" >/dev/null || { missing+=(postgresql-client); break; }
    done
    [[ -n "$(find_pgbouncer)" ]] || missing+=(pgbouncer)
    command -v python3 >/dev/null || missing+=(python3)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        if [[ " ${missing[*]} " == *" pgbouncer "* ]]; then
            # The Debian package starts a system-wide pgbouncer; we run our own.
            if [[ -d /run/systemd/system ]]; then
                as_root systemctl disable --now pgbouncer >/dev/null 2>&1 || true
            else
                as_root service pgbouncer stop >/dev/null 2>&1 || true
            fi
        fi
    fi
    PGBOUNCER_BIN=$(find_pgbouncer)
    [[ -n "$PGBOUNCER_BIN" ]] || die "pgbouncer not found after install"
    command -v cargo >/dev/null || die "cargo not found"
    command -v timeout >/dev/null || die "timeout (coreutils) not found"
}

# Stops one process we started: SIGTERM, then SIGKILL past the deadline.
stop_process() {
    local name=$1 pid=$2 deadline=$((SECONDS + STOP_DEADLINE_S))
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "$BENCH_NAME: $name (pid $pid) ignored SIGTERM for ${STOP_DEADLINE_S}s; killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Polls until the port accepts connections; fails fast if the process died.
wait_for_port() {
    local name=$1 port=$2 pid=$3 log=$4 deadline=$((SECONDS + READY_DEADLINE_S))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$name exited before listening on port $port"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$log" >&2 || true
            die "$name did not listen on port $port within ${READY_DEADLINE_S}s"
        fi
        sleep 0.05
    done
}

# utime+stime of a whole process (all threads), in clock ticks.
cpu_ticks() {
    local stat rest fields
    stat=$(<"/proc/$1/stat")
    rest=${stat##*\) }   # the command name may hold spaces and parentheses
    read -r -a fields <<<"$rest"
    echo $((fields[11] + fields[12]))   # fields 14 and 15 of proc(5)
}

psql_direct() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST_DIRECT" -p "$PGPORT_DIRECT" -U "$PGSUPERUSER" "$@"; }

# Checks PostgreSQL answers and creates database $1 if it does not exist.
ensure_database() {
    psql_direct -d postgres -tAc 'select 1' >/dev/null ||
        die "cannot reach PostgreSQL at $PGHOST_DIRECT:$PGPORT_DIRECT as $PGSUPERUSER"
    if [[ -z "$(psql_direct -d postgres -tAc "select 1 from pg_database where datname = '$1'")" ]]; then
        say "creating database $1"
        psql_direct -d postgres -c "create database \"$1\""
    fi
}

# Builds the release binary of the tree. Sets TARGET_DIR and VIGIL_BIN.
build_vigil() {
    say "building vigil (release)"
    (cd "$ROOT" && cargo build --release -p vigil --quiet) || die "cargo build --release -p vigil failed"
    TARGET_DIR=${CARGO_TARGET_DIR:-target}
    [[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
    VIGIL_BIN="$TARGET_DIR/release/vigil"
    [[ -x "$VIGIL_BIN" ]] || die "no binary at $VIGIL_BIN"
}

# Starts PgBouncer on $PGBOUNCER_PORT in front of $BENCH_DB (config in $WORK)
# and sets PGBOUNCER_PID. Session pooling, room for every client, no
# per-connection logging: the closest PgBouncer gets to Vigil's
# one-upstream-per-session relay.
start_pgbouncer() {
    local pgbouncer_args=()
    cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
$BENCH_DB = host=$PGHOST_DIRECT port=$PGPORT_DIRECT dbname=$BENCH_DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = session
default_pool_size = 20
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
stats_period = 60
EOF
    printf '"%s" ""\n' "$PGSUPERUSER" >"$WORK/userlist.txt"
    chmod 644 "$WORK/pgbouncer.ini" "$WORK/userlist.txt"
    if [[ $(id -u) -eq 0 ]]; then
        # PgBouncer refuses to run as root; -u switches user in-process, so $! stays its pid.
        if id postgres >/dev/null 2>&1; then pgbouncer_args=(-u postgres); else pgbouncer_args=(-u nobody); fi
    fi
    "$PGBOUNCER_BIN" "${pgbouncer_args[@]}" "$WORK/pgbouncer.ini" </dev/null 2>"$WORK/pgbouncer.log" &
    PGBOUNCER_PID=$!
}
