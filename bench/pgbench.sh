#!/usr/bin/env bash
# Benchmarks Vigil against PgBouncer and a direct connection with pgbench -S.
#
# Six targets: direct; PgBouncer; and four Vigils with the same policy (the database
# labelled environment = "production", the guardrail pack on, the bench identity not
# exempt, and a few ordinary rules, so every statement meets them) in the audit
# modes: "vigil-policy" (audit off), "vigil-fast" (audit fast: events queued),
# "vigil-strict" (audit strict: each statement's event committed to SQLite before
# the statement is forwarded, with group commit; fsync = true, the default: every
# commit waits for the disk) and "vigil-strict-nofsync" (the same with fsync = false:
# commits survive a crash of Vigil, not of the machine; see docs/audit.md).
#
# Every case (mode simple/extended/prepared × 1 and 10 clients) runs against the five
# targets back to back, over several rounds, with the targets' order rotated each
# round. Prints TPS ratios (each Vigil to PgBouncer and to direct), added latency at
# 1 client and proxy CPU per transaction, and writes the same as JSON. Starts and
# stops its own Vigils and PgBouncer.
#
#   bench/pgbench.sh            # ROUNDS=3 × DURATION=10 s per run (~17 min)
#   bench/pgbench.sh --quick    # 1 round × 3 s, a smoke test (same as QUICK=1)
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10] seconds per run  SCALE [10] pgbench -i scale
#   PGHOST_DIRECT [127.0.0.1]  PGPORT_DIRECT [5432]  PGSUPERUSER [postgres]
#   BENCH_DB [vigil_bench]  VIGIL_PORT [6442] (audit off)  PGBOUNCER_PORT [6443]
#   VIGIL_FAST_PORT [6444]  VIGIL_STRICT_PORT [6445]  VIGIL_NOFSYNC_PORT [6446]
#   OUT [<target dir>/bench/pgbench-<time>.json]  STRICT=1: exit 1 if the target fails
#   KEEP_WORK=1: keep the temp dir (configs, proxy logs, pgbench output)
#   VIGIL_WORKERS [0]: every Vigil's [server] workers (0 = one per core, Vigil's
#   default; 1 = one thread, like PgBouncer)
#
# Targets at 10 clients, every mode: audit off ≥ 0.90× PgBouncer's TPS (policy on),
# audit fast ≥ 0.95×, audit strict ≥ 0.85× (with and without fsync).
# Exit status: 0 done (target PASS or FAIL is printed), 1 target FAIL with STRICT=1,
# 2 setup failed, 3 some pgbench run failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPORT="$ROOT/bench/pgbench_report.py"

QUICK=${QUICK:-0}
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "pgbench.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done
if [[ "$QUICK" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    DURATION=${DURATION:-3}
else
    ROUNDS=${ROUNDS:-3}
    DURATION=${DURATION:-10}
fi
SCALE=${SCALE:-10}
PGHOST_DIRECT=${PGHOST_DIRECT:-127.0.0.1}
PGPORT_DIRECT=${PGPORT_DIRECT:-5432}
PGSUPERUSER=${PGSUPERUSER:-postgres}
BENCH_DB=${BENCH_DB:-vigil_bench}
VIGIL_PORT=${VIGIL_PORT:-6442}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-6443}
VIGIL_FAST_PORT=${VIGIL_FAST_PORT:-6444}
VIGIL_STRICT_PORT=${VIGIL_STRICT_PORT:-6445}
VIGIL_NOFSYNC_PORT=${VIGIL_NOFSYNC_PORT:-6446}
STRICT=${STRICT:-0}
VIGIL_WORKERS=${VIGIL_WORKERS:-0}
KEEP_WORK=${KEEP_WORK:-0}
READY_DEADLINE_S=30   # how long a proxy may take to open its port
STOP_DEADLINE_S=15    # how long a proxy may take to exit on SIGTERM

[[ "$VIGIL_WORKERS" =~ ^[0-9]+$ ]] || { echo "pgbench.sh: VIGIL_WORKERS must be a number" >&2; exit 2; }
for n in ROUNDS DURATION SCALE; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || { echo "pgbench.sh: $n must be a positive integer" >&2; exit 2; }
done

BENCH_NAME=pgbench.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- tools ---------------------------------------------------------------------------

ensure_tools pgbench psql

# --- state and cleanup ---------------------------------------------------------------

WORK=$(mktemp -d -t vigil-pgbench.XXXXXX)
chmod 755 "$WORK"   # PgBouncer drops root and must still read its config
VIGIL_PID=
VIGIL_FAST_PID=
VIGIL_STRICT_PID=
VIGIL_NOFSYNC_PID=
PGBOUNCER_PID=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_process vigil-policy "$VIGIL_PID"
    stop_process vigil-fast "$VIGIL_FAST_PID"
    stop_process vigil-strict "$VIGIL_STRICT_PID"
    stop_process vigil-strict-nofsync "$VIGIL_NOFSYNC_PID"
    stop_process pgbouncer "$PGBOUNCER_PID"
    if [[ "$KEEP_WORK" == 1 || $status -eq 2 || $status -eq 3 ]]; then   # setup or run failed
        echo "pgbench.sh: work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL and the bench database -------------------------------------------------

ensure_database "$BENCH_DB"
say "pgbench -i -s $SCALE $BENCH_DB"
pgbench -i -q -s "$SCALE" -h "$PGHOST_DIRECT" -p "$PGPORT_DIRECT" -U "$PGSUPERUSER" "$BENCH_DB" \
    >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }

# --- Vigil -----------------------------------------------------------------------------

build_vigil
OUT=${OUT:-"$TARGET_DIR/bench/pgbench-$(date -u +%Y%m%dT%H%M%SZ).json"}

for port in "$VIGIL_PORT" "$VIGIL_FAST_PORT" "$VIGIL_STRICT_PORT" "$VIGIL_NOFSYNC_PORT" "$PGBOUNCER_PORT"; do
    ! port_open "$port" || die "port $port is already in use; set VIGIL_PORT / VIGIL_FAST_PORT / VIGIL_STRICT_PORT / VIGIL_NOFSYNC_PORT / PGBOUNCER_PORT"
done

verifier=$(echo bench-pass | "$VIGIL_BIN" passwd) || die "vigil passwd failed"

# A Vigil config: the listen port, then TOML for the [policy] table, for the
# database's extra keys, and for trailing [[rules]] (each may be empty).
vigil_config() {
    local port=$1 policy=$2 database=$3 rules=$4
    cat <<EOF
[server]
listen = "127.0.0.1:$port"
drain_timeout_secs = 5
workers = $VIGIL_WORKERS

[auth]
method = "scram-sha-256"
$policy
[[databases]]
name = "$BENCH_DB"
upstream = "$PGHOST_DIRECT:$PGPORT_DIRECT"
database = "$BENCH_DB"
user = "$PGSUPERUSER"
$database
[[identities]]
name = "bench"
kind = "service"
password = "$verifier"
$rules
EOF
}

# One policy for all four Vigils: the guardrail pack on a production-labelled
# database, the bench identity in no exempt group, and ordinary rules of the kinds
# users write. Only the [audit] section differs.
POLICY='
[policy]
guardrails = true
guardrails_exempt = { groups = ["dba"] }
'
DATABASE_KEYS='labels = { environment = "production", team = "payments" }
'
RULES='
[[rules]]
id = "no-secrets"
when = { relations = ["secret.*", "*.credentials"] }
action = "deny"
message = "The secret schema is off limits."

[[rules]]
id = "schema-changes-need-review"
when = { classes = ["ddl", "dcl"], labels = { environment = "production" } }
unless = { groups = ["dba"] }
action = "review"

[[rules]]
id = "reads"
when = { classes = ["read"] }
action = "allow"
'
# Mode, then the store file's name (one per Vigil), then extra keys.
audit_section() { printf '\n[audit]\nmode = "%s"\nstore = "sqlite://%s"\n%s' "$1" "$WORK/audit-$2.db" "${3:-}"; }
vigil_config "$VIGIL_PORT" "$POLICY" "$DATABASE_KEYS" "$RULES$(audit_section off off)" >"$WORK/vigil-policy.toml"
vigil_config "$VIGIL_FAST_PORT" "$POLICY" "$DATABASE_KEYS" "$RULES$(audit_section fast fast)" >"$WORK/vigil-fast.toml"
vigil_config "$VIGIL_STRICT_PORT" "$POLICY" "$DATABASE_KEYS" "$RULES$(audit_section strict strict)" >"$WORK/vigil-strict.toml"
vigil_config "$VIGIL_NOFSYNC_PORT" "$POLICY" "$DATABASE_KEYS" \
    "$RULES$(audit_section strict strict-nofsync 'fsync = false')" >"$WORK/vigil-strict-nofsync.toml"

for config in vigil-policy vigil-fast vigil-strict vigil-strict-nofsync; do
    "$VIGIL_BIN" check --config "$WORK/$config.toml" >"$WORK/$config-check.log" 2>&1 ||
        { cat "$WORK/$config-check.log" >&2; die "vigil check rejects $config.toml"; }
done
VIGIL_LOG=warn "$VIGIL_BIN" serve --config "$WORK/vigil-policy.toml" </dev/null 2>"$WORK/vigil-policy.log" &
VIGIL_PID=$!
VIGIL_LOG=warn "$VIGIL_BIN" serve --config "$WORK/vigil-fast.toml" </dev/null 2>"$WORK/vigil-fast.log" &
VIGIL_FAST_PID=$!
VIGIL_LOG=warn "$VIGIL_BIN" serve --config "$WORK/vigil-strict.toml" </dev/null 2>"$WORK/vigil-strict.log" &
VIGIL_STRICT_PID=$!
VIGIL_LOG=warn "$VIGIL_BIN" serve --config "$WORK/vigil-strict-nofsync.toml" </dev/null 2>"$WORK/vigil-strict-nofsync.log" &
VIGIL_NOFSYNC_PID=$!

# --- PgBouncer -----------------------------------------------------------------------

start_pgbouncer

wait_for_port vigil-policy "$VIGIL_PORT" "$VIGIL_PID" "$WORK/vigil-policy.log"
wait_for_port vigil-fast "$VIGIL_FAST_PORT" "$VIGIL_FAST_PID" "$WORK/vigil-fast.log"
wait_for_port vigil-strict "$VIGIL_STRICT_PORT" "$VIGIL_STRICT_PID" "$WORK/vigil-strict.log"
wait_for_port vigil-strict-nofsync "$VIGIL_NOFSYNC_PORT" "$VIGIL_NOFSYNC_PID" "$WORK/vigil-strict-nofsync.log"
wait_for_port pgbouncer "$PGBOUNCER_PORT" "$PGBOUNCER_PID" "$WORK/pgbouncer.log"
say "vigil-policy pid $VIGIL_PID on :$VIGIL_PORT, vigil-fast pid $VIGIL_FAST_PID on :$VIGIL_FAST_PORT," \
    "vigil-strict pid $VIGIL_STRICT_PID on :$VIGIL_STRICT_PORT," \
    "vigil-strict-nofsync pid $VIGIL_NOFSYNC_PID on :$VIGIL_NOFSYNC_PORT, pgbouncer pid $PGBOUNCER_PID on :$PGBOUNCER_PORT"

# --- targets ---------------------------------------------------------------------------

# Connection arguments and environment of pgbench/psql for one target.
target_conn() {
    case "$1" in
        direct) echo "-h $PGHOST_DIRECT -p $PGPORT_DIRECT -U $PGSUPERUSER" ;;
        pgbouncer) echo "-h 127.0.0.1 -p $PGBOUNCER_PORT -U $PGSUPERUSER" ;;
        vigil-policy) echo "-h 127.0.0.1 -p $VIGIL_PORT -U bench" ;;
        vigil-fast) echo "-h 127.0.0.1 -p $VIGIL_FAST_PORT -U bench" ;;
        vigil-strict) echo "-h 127.0.0.1 -p $VIGIL_STRICT_PORT -U bench" ;;
        vigil-strict-nofsync) echo "-h 127.0.0.1 -p $VIGIL_NOFSYNC_PORT -U bench" ;;
    esac
}
target_pid() {
    case "$1" in
        direct) echo "" ;;
        pgbouncer) echo "$PGBOUNCER_PID" ;;
        vigil-policy) echo "$VIGIL_PID" ;;
        vigil-fast) echo "$VIGIL_FAST_PID" ;;
        vigil-strict) echo "$VIGIL_STRICT_PID" ;;
        vigil-strict-nofsync) echo "$VIGIL_NOFSYNC_PID" ;;
    esac
}
export PGPASSWORD=bench-pass   # only Vigil asks; trust elsewhere
export PGCONNECT_TIMEOUT=10

TARGETS=(direct pgbouncer vigil-policy vigil-fast vigil-strict vigil-strict-nofsync)
NTARGETS=${#TARGETS[@]}
for target in "${TARGETS[@]}"; do
    # shellcheck disable=SC2046  # word splitting of the connection arguments is wanted
    got=$(psql -X -tAc 'select count(*) from pgbench_branches' $(target_conn "$target") "$BENCH_DB" 2>&1) ||
        die "cannot query through $target: $got"
    [[ "$got" == "$SCALE" ]] || die "unexpected answer through $target: $got"
done

# The policy must really be in force on every Vigil: a guardrail and a user rule
# each refuse a statement (both harmless, should they run after all).
expect_refusal() {
    local target=$1 rule=$2 sql=$3 got
    # shellcheck disable=SC2046
    if got=$(psql -X -tAc "$sql" $(target_conn "$target") "$BENCH_DB" 2>&1); then
        die "$target ran '$sql': the policy is not in force"
    fi
    [[ "$got" == *"(rule $rule)"* ]] || die "$target did not refuse '$sql' by rule $rule: $got"
}
for target in vigil-policy vigil-fast vigil-strict vigil-strict-nofsync; do
    expect_refusal "$target" guardrail.drop 'DROP TABLE IF EXISTS vigil_bench_guardrail_probe'
    expect_refusal "$target" no-secrets 'SELECT 1 FROM secret.probe'
done

say "warm-up: 2 s per target"
for target in "${TARGETS[@]}"; do
    # shellcheck disable=SC2046
    pgbench -S -n -T 2 -c 2 -j 1 $(target_conn "$target") "$BENCH_DB" >"$WORK/warmup-$target.log" 2>&1 ||
        { cat "$WORK/warmup-$target.log" >&2; die "warm-up through $target failed"; }
done

# --- the runs --------------------------------------------------------------------------

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
CLK_TCK=$(getconf CLK_TCK)
total=$((ROUNDS * 3 * 2 * NTARGETS))
say "$total runs: $ROUNDS round(s) × 3 modes × 2 client counts × $NTARGETS targets, ${DURATION} s each"

# One pgbench run against one target; appends its record to $RUNS.
run_case() {
    local round=$1 position=$2 mode=$3 clients=$4 target=$5
    local jobs=1 pid before after ticks= rc=0 log_prefix=
    ((clients > 1)) && jobs=2
    local name="r$round-$mode-c$clients-$target"
    local args=(-S -n -M "$mode" -c "$clients" -j "$jobs" -T "$DURATION")
    if ((clients == 1)); then
        # Per-transaction log for latency percentiles; 1 client only, where the
        # added latency is reported and the logging costs pgbench nothing that matters.
        log_prefix="$WORK/lat-$name"
        args+=(-l --log-prefix="$log_prefix")
    fi
    pid=$(target_pid "$target")
    if [[ -n "$pid" ]]; then
        kill -0 "$pid" 2>/dev/null || die "$target (pid $pid) is no longer running"
        before=$(cpu_ticks "$pid")
    fi
    # shellcheck disable=SC2046
    pgbench "${args[@]}" $(target_conn "$target") "$BENCH_DB" >"$WORK/$name.out" 2>&1 || rc=$?
    if [[ -n "$pid" ]]; then
        after=$(cpu_ticks "$pid")
        ticks=$((after - before))
    fi
    python3 "$REPORT" record --runs "$RUNS" --output "$WORK/$name.out" --exit-code "$rc" \
        --round "$round" --position "$position" --mode "$mode" --clients "$clients" \
        --target "$target" --duration "$DURATION" --clk-tck "$CLK_TCK" \
        ${ticks:+--cpu-ticks "$ticks"} ${log_prefix:+--log-prefix "$log_prefix"}
    if [[ -n "$log_prefix" ]]; then rm -f "$log_prefix".*; fi
}

for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the targets' order each round so none always runs first (cold) or last.
    order=()
    for ((i = 0; i < NTARGETS; i++)); do order+=("${TARGETS[$(((i + round - 1) % NTARGETS))]}"); done
    say "round $round/$ROUNDS, order: ${order[*]}"
    for mode in simple extended prepared; do
        for clients in 1 10; do
            for ((i = 0; i < NTARGETS; i++)); do
                run_case "$round" "$i" "$mode" "$clients" "${order[$i]}"
            done
        done
    done
done

# --- report ----------------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z "$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]] || commit+="+dirty"
meta=$(
    python3 - "$ROUNDS" "$DURATION" "$SCALE" "$QUICK" "$CLK_TCK" "$commit" \
        "$(pgbench --version)" "$("$PGBOUNCER_BIN" --version | head -n 1)" \
        "$(psql_direct -d postgres -tAc 'show server_version' | sed 's/ .*//')" "$(nproc)" "$VIGIL_WORKERS" <<'PY'
import datetime, json, platform, sys
a = sys.argv[1:]
print(json.dumps({
    "benchmark": "pgbench -S", "rounds": int(a[0]), "duration_s": int(a[1]),
    "scale": int(a[2]), "quick": a[3] == "1", "clk_tck": int(a[4]), "vigil_commit": a[5],
    "pgbench": a[6], "pgbouncer": a[7], "postgres": "PostgreSQL " + a[8], "nproc": int(a[9]),
    "vigil_workers": int(a[10]), "kernel": platform.release(),
    "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
}))
PY
)
echo
status=0
summarize_args=(--runs "$RUNS" --json "$OUT" --meta "$meta")
[[ "$STRICT" == 1 ]] && summarize_args+=(--strict)
python3 "$REPORT" summarize "${summarize_args[@]}" || status=$?
echo
echo "JSON: $OUT"
exit "$status"
