#!/usr/bin/env bash
# Benchmarks dynamic data masking: a bulk read of a 1M-row table through Vigil with
# masking on, through Vigil with masking off, and through PgBouncer.
#
# The table: people(id bigint, name text, email text, ssn text, note text), about
# 150 bytes a row, in its own database. Four targets: PgBouncer (session pooling);
# "vigil-off", a Vigil with no [masking] section; "vigil-exempt", a Vigil with the
# masking below whose identity is in the exempt group (what masking costs those it
# does not apply to); and "vigil-mask", the same masking with the identity not exempt:
# public.people.ssn masked keep_last 4, one column of five. Audit is off in every
# Vigil and no rules are configured, so this measures masking alone.
#
# Two cases, each a real client reading the whole table:
#   select-text   psql -At -c 'SELECT * FROM people' >/dev/null (simple query, text rows)
#   copy-binary   psql -c 'COPY (SELECT * FROM people) TO STDOUT (FORMAT binary)' >/dev/null
# Every case runs against the targets back to back, over several rounds, with the
# targets' order rotated each round. Before timing, each target's output is checked
# once: every row's ssn masked through vigil-mask and in clear elsewhere.
# Prints rows/s (median across rounds), the ratios masking on/off and on/PgBouncer,
# the proxies' CPU time per run, and writes the same as JSON. Starts and stops its
# own Vigils and PgBouncer.
#
#   bench/masking.sh            # ROUNDS=5 (~5 min after the build and the table)
#   bench/masking.sh --quick    # 1 round, a smoke test (same as QUICK=1)
#
# Environment (defaults in brackets):
#   ROUNDS [5]  NROWS [1000000] rows in the table
#   PGHOST_DIRECT [127.0.0.1]  PGPORT_DIRECT [5432]  PGSUPERUSER [postgres]
#   BENCH_DB [vigil_mask_bench]  PGBOUNCER_PORT [6453]  VIGIL_OFF_PORT [6452]
#   VIGIL_EXEMPT_PORT [6454]  VIGIL_MASK_PORT [6455]
#   OUT [<target dir>/bench/masking-<time>.json]  STRICT=1: exit 1 if the target fails
#   KEEP_WORK=1: keep the temp dir (configs, proxy logs, client errors)
#
# Target, in every case: masking on reads at ≥ 0.90× the rows/s of masking off.
# Exit status: 0 done (target PASS or FAIL is printed), 1 target FAIL with STRICT=1,
# 2 setup failed, 3 some run failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPORT="$ROOT/bench/masking_report.py"

QUICK=${QUICK:-0}
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "masking.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done
if [[ "$QUICK" == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
else
    ROUNDS=${ROUNDS:-5}
fi
NROWS=${NROWS:-1000000}
PGHOST_DIRECT=${PGHOST_DIRECT:-127.0.0.1}
PGPORT_DIRECT=${PGPORT_DIRECT:-5432}
PGSUPERUSER=${PGSUPERUSER:-postgres}
BENCH_DB=${BENCH_DB:-vigil_mask_bench}
VIGIL_OFF_PORT=${VIGIL_OFF_PORT:-6452}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-6453}
VIGIL_EXEMPT_PORT=${VIGIL_EXEMPT_PORT:-6454}
VIGIL_MASK_PORT=${VIGIL_MASK_PORT:-6455}
STRICT=${STRICT:-0}
KEEP_WORK=${KEEP_WORK:-0}
READY_DEADLINE_S=30   # how long a proxy may take to open its port
STOP_DEADLINE_S=15    # how long a proxy may take to exit on SIGTERM
RUN_DEADLINE_S=600    # how long one full read may take before it counts as failed

for n in ROUNDS NROWS; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || { echo "masking.sh: $n must be a positive integer" >&2; exit 2; }
done

BENCH_NAME=masking.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# --- tools ---------------------------------------------------------------------------

ensure_tools psql

# --- state and cleanup ---------------------------------------------------------------

WORK=$(mktemp -d -t vigil-masking.XXXXXX)
chmod 755 "$WORK"   # PgBouncer drops root and must still read its config
VIGIL_OFF_PID=
VIGIL_EXEMPT_PID=
VIGIL_MASK_PID=
PGBOUNCER_PID=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_process vigil-off "$VIGIL_OFF_PID"
    stop_process vigil-exempt "$VIGIL_EXEMPT_PID"
    stop_process vigil-mask "$VIGIL_MASK_PID"
    stop_process pgbouncer "$PGBOUNCER_PID"
    if [[ "$KEEP_WORK" == 1 || $status -eq 2 || $status -eq 3 ]]; then   # setup or run failed
        echo "masking.sh: work dir kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL and the bench table --------------------------------------------------

ensure_database "$BENCH_DB"

# The table is rebuilt only when its shape or row count differs from what this
# script makes (a marker comment records both), so repeated runs skip ~20 s of setup.
TABLE_MARK="vigil masking bench v1, $NROWS rows"
if [[ "$(psql_direct -d "$BENCH_DB" -tAc "select obj_description('public.people'::regclass, 'pg_class')" 2>/dev/null || true)" != "$TABLE_MARK" ]]; then
    say "creating public.people ($NROWS rows)"
    # SSNs shaped like real ones (area 001–665/667–899, group 01–99, serial 0001–9999)
    # so a content detector, were one configured, would see realistic values.
    psql_direct -d "$BENCH_DB" >"$WORK/setup.log" 2>&1 <<SQL || { cat "$WORK/setup.log" >&2; die "creating the table failed"; }
drop table if exists public.people;
create table public.people (id bigint primary key, name text, email text, ssn text, note text);
insert into public.people
select i,
       'Person ' || i,
       'user' || i || '@example.com',
       to_char(case when (i * 7) % 898 + 1 >= 666 then (i * 7) % 898 + 2 else (i * 7) % 898 + 1 end, 'FM000')
           || '-' || to_char(i % 99 + 1, 'FM00') || '-' || to_char(i % 9999 + 1, 'FM0000'),
       md5(i::text) || ' ' || md5((i + 1)::text) || ' ' || left(md5((i + 2)::text), 24)
from generate_series(1, $NROWS) as i;
vacuum analyze public.people;
comment on table public.people is '$TABLE_MARK';
SQL
fi
TABLE_BYTES=$(psql_direct -d "$BENCH_DB" -tAc "select pg_table_size('public.people')")
CLEAR_SSN=$(psql_direct -d "$BENCH_DB" -tAc 'select ssn from public.people where id = 1')
[[ "$CLEAR_SSN" =~ ^[0-9]{3}-[0-9]{2}-[0-9]{4}$ ]] || die "unexpected ssn of row 1: $CLEAR_SSN"

# --- Vigil -----------------------------------------------------------------------------

build_vigil
OUT=${OUT:-"$TARGET_DIR/bench/masking-$(date -u +%Y%m%dT%H%M%SZ).json"}

for port in "$VIGIL_OFF_PORT" "$VIGIL_EXEMPT_PORT" "$VIGIL_MASK_PORT" "$PGBOUNCER_PORT"; do
    ! port_open "$port" || die "port $port is already in use; set VIGIL_OFF_PORT / VIGIL_EXEMPT_PORT / VIGIL_MASK_PORT / PGBOUNCER_PORT"
done

verifier=$(echo bench-pass | "$VIGIL_BIN" passwd) || die "vigil passwd failed"

# A Vigil config: the listen port, the bench identity's groups (a TOML array) and
# the [masking] section (may be empty). Audit off and no rules in all of them.
vigil_config() {
    local port=$1 groups=$2 masking=$3 name=$4
    cat <<EOF
[server]
listen = "127.0.0.1:$port"
drain_timeout_secs = 5

[auth]
method = "scram-sha-256"

[audit]
mode = "off"
store = "sqlite://$WORK/audit-$name.db"
$masking
[[databases]]
name = "$BENCH_DB"
upstream = "$PGHOST_DIRECT:$PGPORT_DIRECT"
database = "$BENCH_DB"
user = "$PGSUPERUSER"

[[identities]]
name = "bench"
kind = "service"
groups = $groups
password = "$verifier"
EOF
}

# One masked column of five; the rest of the section as the quickstart has it.
MASKING='
[masking]
exempt = { groups = ["dba"] }
unknown_lineage = "mask"
inference_guard = true

[[masking.columns]]
column = "public.people.ssn"
strategy = "keep_last"
keep = 4
'
vigil_config "$VIGIL_OFF_PORT" '[]' '' vigil-off >"$WORK/vigil-off.toml"
vigil_config "$VIGIL_EXEMPT_PORT" '["dba"]' "$MASKING" vigil-exempt >"$WORK/vigil-exempt.toml"
vigil_config "$VIGIL_MASK_PORT" '["analysts"]' "$MASKING" vigil-mask >"$WORK/vigil-mask.toml"

for config in vigil-off vigil-exempt vigil-mask; do
    "$VIGIL_BIN" check --config "$WORK/$config.toml" >"$WORK/$config-check.log" 2>&1 ||
        { cat "$WORK/$config-check.log" >&2; die "vigil check rejects $config.toml"; }
done
VIGIL_LOG=warn "$VIGIL_BIN" serve --config "$WORK/vigil-off.toml" </dev/null 2>"$WORK/vigil-off.log" &
VIGIL_OFF_PID=$!
VIGIL_LOG=warn "$VIGIL_BIN" serve --config "$WORK/vigil-exempt.toml" </dev/null 2>"$WORK/vigil-exempt.log" &
VIGIL_EXEMPT_PID=$!
VIGIL_LOG=warn "$VIGIL_BIN" serve --config "$WORK/vigil-mask.toml" </dev/null 2>"$WORK/vigil-mask.log" &
VIGIL_MASK_PID=$!

# --- PgBouncer -----------------------------------------------------------------------

start_pgbouncer

wait_for_port vigil-off "$VIGIL_OFF_PORT" "$VIGIL_OFF_PID" "$WORK/vigil-off.log"
wait_for_port vigil-exempt "$VIGIL_EXEMPT_PORT" "$VIGIL_EXEMPT_PID" "$WORK/vigil-exempt.log"
wait_for_port vigil-mask "$VIGIL_MASK_PORT" "$VIGIL_MASK_PID" "$WORK/vigil-mask.log"
wait_for_port pgbouncer "$PGBOUNCER_PORT" "$PGBOUNCER_PID" "$WORK/pgbouncer.log"
say "vigil-off pid $VIGIL_OFF_PID on :$VIGIL_OFF_PORT, vigil-exempt pid $VIGIL_EXEMPT_PID on :$VIGIL_EXEMPT_PORT," \
    "vigil-mask pid $VIGIL_MASK_PID on :$VIGIL_MASK_PORT, pgbouncer pid $PGBOUNCER_PID on :$PGBOUNCER_PORT"

# --- targets and cases -----------------------------------------------------------------

target_conn() {
    case "$1" in
        pgbouncer) echo "-h 127.0.0.1 -p $PGBOUNCER_PORT -U $PGSUPERUSER" ;;
        vigil-off) echo "-h 127.0.0.1 -p $VIGIL_OFF_PORT -U bench" ;;
        vigil-exempt) echo "-h 127.0.0.1 -p $VIGIL_EXEMPT_PORT -U bench" ;;
        vigil-mask) echo "-h 127.0.0.1 -p $VIGIL_MASK_PORT -U bench" ;;
    esac
}
target_pid() {
    case "$1" in
        pgbouncer) echo "$PGBOUNCER_PID" ;;
        vigil-off) echo "$VIGIL_OFF_PID" ;;
        vigil-exempt) echo "$VIGIL_EXEMPT_PID" ;;
        vigil-mask) echo "$VIGIL_MASK_PID" ;;
    esac
}
case_sql() {
    case "$1" in
        select-text) echo 'SELECT * FROM people' ;;
        copy-binary) echo 'COPY (SELECT * FROM people) TO STDOUT (FORMAT binary)' ;;
    esac
}
export PGPASSWORD=bench-pass   # only Vigil asks; trust elsewhere
export PGCONNECT_TIMEOUT=10

TARGETS=(pgbouncer vigil-off vigil-exempt vigil-mask)
NTARGETS=${#TARGETS[@]}
CASES=(select-text copy-binary)

# shellcheck disable=SC2046  # word splitting of the connection arguments is wanted
target_psql() { local target=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 $(target_conn "$target") -d "$BENCH_DB" "$@"; }

# Masking must really be in force where it should be, and only there: row 1's ssn
# (a filter on id, which the inference guard allows).
MASKED_SSN="*******${CLEAR_SSN: -4}"
for target in "${TARGETS[@]}"; do
    got=$(target_psql "$target" -c 'SELECT ssn FROM people WHERE id = 1' 2>&1) ||
        die "cannot query through $target: $got"
    want=$CLEAR_SSN
    [[ "$target" == vigil-mask ]] && want=$MASKED_SSN
    [[ "$got" == "$want" ]] || die "ssn of row 1 through $target: got '$got', want '$want'"
done
say "row 1's ssn: $CLEAR_SSN in clear, $MASKED_SSN through vigil-mask"

# A full read of each case through each target, untimed: warms the caches and
# checks the whole output. Text: NROWS rows, the ssn field of every one masked through
# vigil-mask and none elsewhere. Binary COPY: the same length everywhere (keep_last
# keeps a value's length), the bytes differing from PgBouncer's only through vigil-mask.
say "checking and warming up: one full read per case and target"
for target in "${TARGETS[@]}"; do
    got=$(target_psql "$target" -F '|' -c "$(case_sql select-text)" 2>"$WORK/check-$target.err" |
        awk -F '|' -v n=0 -v m=0 '{ n++; if ($4 ~ /^\*\*\*\*\*\*\*[0-9][0-9][0-9][0-9]$/) m++ } END { print n, m }') ||
        { cat "$WORK/check-$target.err" >&2; die "select-text through $target failed"; }
    [[ -s "$WORK/check-$target.err" ]] && { cat "$WORK/check-$target.err" >&2; die "select-text through $target printed errors"; }
    read -r rows masked <<<"$got"
    want_masked=0
    [[ "$target" == vigil-mask ]] && want_masked=$NROWS
    [[ "$rows" == "$NROWS" && "$masked" == "$want_masked" ]] ||
        die "select-text through $target: $rows rows, $masked with a masked ssn (want $NROWS and $want_masked)"

    target_psql "$target" -c "$(case_sql copy-binary)" >"$WORK/copy-$target.bin" 2>"$WORK/check-$target.err" ||
        { cat "$WORK/check-$target.err" >&2; die "copy-binary through $target failed"; }
done
COPY_BYTES=$(stat -c %s "$WORK/copy-pgbouncer.bin")
for target in "${TARGETS[@]}"; do
    [[ "$target" == pgbouncer ]] && continue
    bytes=$(stat -c %s "$WORK/copy-$target.bin")
    [[ "$bytes" == "$COPY_BYTES" ]] || die "copy-binary through $target: $bytes bytes, PgBouncer's $COPY_BYTES"
    if cmp -s "$WORK/copy-$target.bin" "$WORK/copy-pgbouncer.bin"; then
        [[ "$target" != vigil-mask ]] || die "copy-binary through vigil-mask is byte for byte PgBouncer's: nothing masked"
    else
        [[ "$target" == vigil-mask ]] || die "copy-binary through $target differs from PgBouncer's"
    fi
    rm -f "$WORK/copy-$target.bin"
done
rm -f "$WORK/copy-pgbouncer.bin"

# --- the runs --------------------------------------------------------------------------

RUNS="$WORK/runs.jsonl"
: >"$RUNS"
CLK_TCK=$(getconf CLK_TCK)
read -r LOAD1 _ <"/proc/loadavg"
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 2.5) }'; then
    say "warning: load average $LOAD1 before the runs; other work may skew the numbers"
fi
say "$((ROUNDS * ${#CASES[@]} * NTARGETS)) runs: $ROUNDS round(s) × ${#CASES[@]} cases × $NTARGETS targets, $NROWS rows each"

# One full read through one target; appends its record to $RUNS.
run_case() {
    local round=$1 position=$2 kase=$3 target=$4
    local pid before after start end rc=0 name="r$round-$kase-$target"
    pid=$(target_pid "$target")
    kill -0 "$pid" 2>/dev/null || die "$target (pid $pid) is no longer running"
    before=$(cpu_ticks "$pid")
    start=$EPOCHREALTIME
    # shellcheck disable=SC2046
    timeout "$RUN_DEADLINE_S" psql -X -q -At -v ON_ERROR_STOP=1 $(target_conn "$target") -d "$BENCH_DB" \
        -c "$(case_sql "$kase")" >/dev/null 2>"$WORK/$name.err" || rc=$?
    end=$EPOCHREALTIME
    after=$(cpu_ticks "$pid")
    python3 "$REPORT" record --runs "$RUNS" --stderr "$WORK/$name.err" --exit-code "$rc" \
        --round "$round" --position "$position" --case "$kase" --target "$target" \
        --rows "$NROWS" --seconds "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.6f", e - s }')" \
        --cpu-ticks "$((after - before))" --clk-tck "$CLK_TCK"
}

for ((round = 1; round <= ROUNDS; round++)); do
    # Rotate the targets' order each round so none always runs first or last.
    order=()
    for ((i = 0; i < NTARGETS; i++)); do order+=("${TARGETS[$(((i + round - 1) % NTARGETS))]}"); done
    say "round $round/$ROUNDS, order: ${order[*]}"
    for kase in "${CASES[@]}"; do
        for ((i = 0; i < NTARGETS; i++)); do
            run_case "$round" "$i" "$kase" "${order[$i]}"
        done
    done
done

# --- report ----------------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z "$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]] || commit+="+dirty"
read -r LOAD1_END _ <"/proc/loadavg"
meta=$(
    python3 - "$ROUNDS" "$NROWS" "$QUICK" "$CLK_TCK" "$commit" "$(psql --version)" \
        "$("$PGBOUNCER_BIN" --version | head -n 1)" \
        "$(psql_direct -d postgres -tAc 'show server_version' | sed 's/ .*//')" "$(nproc)" \
        "$TABLE_BYTES" "$COPY_BYTES" "$LOAD1" "$LOAD1_END" <<'PY'
import datetime, json, platform, sys
a = sys.argv[1:]
print(json.dumps({
    "benchmark": "bulk read through masking", "rounds": int(a[0]), "rows": int(a[1]),
    "quick": a[2] == "1", "clk_tck": int(a[3]), "vigil_commit": a[4], "psql": a[5],
    "pgbouncer": a[6], "postgres": "PostgreSQL " + a[7], "nproc": int(a[8]),
    "table_bytes": int(a[9]), "copy_binary_bytes": int(a[10]),
    "load1_before": float(a[11]), "load1_after": float(a[12]),
    "masked_columns": ["public.people.ssn keep_last 4"], "kernel": platform.release(),
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
