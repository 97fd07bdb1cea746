#!/usr/bin/env bash
# Compares two builds of Vigil with pgbench -S at 10 clients: does a change
# cost throughput? Both builds serve the same policy (the guardrail pack on a
# production-labelled database, as bench/pgbench.sh sets it up) in the audit
# modes off, fast and strict, and every (mode × audit mode) case runs against
# both, interleaved over several rounds with the order swapped each round.
# Prints, per case, the median TPS of each build and new / base.
#
#   bench/compare.sh BASE_BIN [NEW_BIN]     # NEW_BIN: this tree's release build
#
# Environment (defaults in brackets): ROUNDS [3]  DURATION [10]  CLIENTS [10]
#   SCALE [10]  BENCH_DB [vigil_bench]  PORT_BASE [6460] (six ports from it)
#   MODES ["simple extended prepared"]  AUDITS ["off fast strict"]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE_BIN=${1:?usage: bench/compare.sh BASE_BIN [NEW_BIN]}
NEW_BIN=${2:-}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-10}
SCALE=${SCALE:-10}
BENCH_DB=${BENCH_DB:-vigil_bench}
PORT_BASE=${PORT_BASE:-6460}
MODES=${MODES:-"simple extended prepared"}
AUDITS=${AUDITS:-"off fast strict"}
PGHOST_DIRECT=${PGHOST_DIRECT:-127.0.0.1}
PGPORT_DIRECT=${PGPORT_DIRECT:-5432}
PGSUPERUSER=${PGSUPERUSER:-postgres}

BENCH_NAME=compare.sh
READY_DEADLINE_S=30
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ensure_tools pgbench psql
if [[ -z "$NEW_BIN" ]]; then
    build_vigil
    NEW_BIN=$VIGIL_BIN
fi
[[ -x "$BASE_BIN" ]] || die "no binary at $BASE_BIN"

WORK=$(mktemp -d -t vigil-compare.XXXXXX)
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

ensure_database "$BENCH_DB"
pgbench -i -q -s "$SCALE" -h "$PGHOST_DIRECT" -p "$PGPORT_DIRECT" -U "$PGSUPERUSER" "$BENCH_DB" \
    >"$WORK/init.log" 2>&1 || { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }
verifier=$(echo bench-pass | "$NEW_BIN" passwd) || die "vigil passwd failed"

# One Vigil per (build, audit mode), on consecutive ports.
declare -A PORT
declare -A PID
port=$PORT_BASE
for build in base new; do
    bin=$BASE_BIN
    [[ "$build" == new ]] && bin=$NEW_BIN
    for audit in $AUDITS; do
        PORT[$build-$audit]=$port
        cat >"$WORK/$build-$audit.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
drain_timeout_secs = 5

[policy]
guardrails = true
guardrails_exempt = { groups = ["dba"] }

[[databases]]
name = "$BENCH_DB"
upstream = "$PGHOST_DIRECT:$PGPORT_DIRECT"
database = "$BENCH_DB"
user = "$PGSUPERUSER"
labels = { environment = "production" }

[[identities]]
name = "bench"
kind = "service"
password = "$verifier"

[[rules]]
id = "reads"
when = { classes = ["read"] }
action = "allow"

[audit]
mode = "$audit"
store = "sqlite://$WORK/audit-$build-$audit.db"
EOF
        VIGIL_LOG=warn "$bin" serve --config "$WORK/$build-$audit.toml" </dev/null \
            2>"$WORK/$build-$audit.log" &
        PIDS+=($!)
        PID[$build-$audit]=$!
        port=$((port + 1))
    done
done
for target in "${!PORT[@]}"; do
    wait_for_port "$target" "${PORT[$target]}" "${PID[$target]}" "$WORK/$target.log"
done

export PGPASSWORD=bench-pass PGCONNECT_TIMEOUT=10
results="$WORK/results"
: >"$results"
for ((round = 1; round <= ROUNDS; round++)); do
    for mode in $MODES; do
        for audit in $AUDITS; do
            order=(base new)
            ((round % 2 == 0)) && order=(new base)
            for build in "${order[@]}"; do
                out=$(pgbench -S -n -M "$mode" -c "$CLIENTS" -j 2 -T "$DURATION" \
                    -h 127.0.0.1 -p "${PORT[$build-$audit]}" -U bench "$BENCH_DB" 2>&1) ||
                    die "pgbench through $build-$audit failed: $out"
                tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
                echo "$mode $audit $build $tps" >>"$results"
                say "round $round: $mode $audit $build $tps tps"
            done
        done
    done
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
cases = sorted({(m, a) for m, a, _, _ in rows}, key=lambda c: (c[1], c[0]))
print(f"{'mode':<9} {'audit':<7} {'base tps':>10} {'new tps':>10} {'new/base':>9}")
for mode, audit in cases:
    tps = lambda b: statistics.median(float(t) for m, a, bb, t in rows if (m, a, bb) == (mode, audit, b))
    base, new = tps("base"), tps("new")
    print(f"{mode:<9} {audit:<7} {base:>10.0f} {new:>10.0f} {new / base:>8.3f}x")
EOF
