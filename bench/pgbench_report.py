#!/usr/bin/env python3
"""Records and summarises the runs of bench/pgbench.sh (standard library only).

Two subcommands:

  record    parse one pgbench run (its output and, at 1 client, its per-transaction
            logs), append it as one JSON line to the runs file, print a progress line
  summarize read the runs file, print the comparison table, write the JSON report

Numbers are medians across rounds. Latency percentiles come from pgbench's
per-transaction log (third column: elapsed time of the transaction in µs).

Targets: direct, pgbouncer, and four Vigils with the same policy (guardrail pack on a
production-labelled database plus ordinary rules) and different audit modes:
"vigil-policy" (audit off), "vigil-fast" (audit fast), "vigil-strict" (audit strict,
every statement's event committed before it is forwarded, each commit fsynced) and
"vigil-strict-nofsync" (strict with fsync = false).
"""

import argparse
import glob
import json
import math
import os
import re
import statistics
import sys

TARGETS = ("direct", "pgbouncer", "vigil-policy", "vigil-fast", "vigil-strict", "vigil-strict-nofsync")
VIGILS = ("vigil-policy", "vigil-fast", "vigil-strict", "vigil-strict-nofsync")
PROXIES = ("pgbouncer",) + VIGILS
LABELS = {
    "direct": "direct",
    "pgbouncer": "pgbouncer",
    "vigil-policy": "vigil (policy, audit off)",
    "vigil-fast": "vigil (policy, audit fast)",
    "vigil-strict": "vigil (policy, audit strict)",
    "vigil-strict-nofsync": "vigil (policy, audit strict, no fsync)",
}
SHORT = {
    "direct": "direct",
    "pgbouncer": "pgbouncer",
    "vigil-policy": "v-off",
    "vigil-fast": "v-fast",
    "vigil-strict": "v-strict",
    "vigil-strict-nofsync": "v-strict-nf",
}
MODES = ("simple", "extended", "prepared")
# Each Vigil's TPS >= this x PgBouncer's at TARGET_CLIENTS, every mode (the issues' targets).
TARGET_RATIOS = {"vigil-policy": 0.90, "vigil-fast": 0.95, "vigil-strict": 0.85, "vigil-strict-nofsync": 0.85}
TARGET_CLIENTS = 10


# --- record --------------------------------------------------------------------------


def parse_pgbench_output(text):
    """The numbers pgbench prints at the end of a run; None where absent."""

    def number(pattern, cast=float):
        m = re.search(pattern, text, re.MULTILINE)
        return cast(m.group(1)) if m else None

    return {
        "tps": number(r"^tps = ([0-9.]+)"),
        "transactions": number(r"^number of transactions actually processed: (\d+)", int),
        "failed": number(r"^number of failed transactions: (\d+)", int),
        "latency_avg_ms": number(r"^latency average = ([0-9.]+) ms"),
    }


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def transaction_latencies(paths):
    """Per-transaction latencies (µs) from pgbench -l files; skips failed/skipped ones."""
    values = []
    for path in paths:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    values.append(int(fields[2]))
    values.sort()
    return values


def cmd_record(args):
    with open(args.output, encoding="utf-8", errors="replace") as f:
        text = f.read()
    run = {
        "round": args.round,
        "position": args.position,
        "mode": args.mode,
        "clients": args.clients,
        "target": args.target,
        "duration_s": args.duration,
        "exit_code": args.exit_code,
    }
    run.update(parse_pgbench_output(text))

    run["cpu_ticks"] = args.cpu_ticks
    run["cpu_us_per_tx"] = None
    if args.cpu_ticks is not None and run["transactions"]:
        run["cpu_us_per_tx"] = args.cpu_ticks * 1e6 / args.clk_tck / run["transactions"]

    run["lat_p50_us"] = run["lat_p99_us"] = None
    run["lat_samples"] = 0
    if args.log_prefix:
        latencies = transaction_latencies(sorted(glob.glob(glob.escape(args.log_prefix) + ".*")))
        run["lat_samples"] = len(latencies)
        run["lat_p50_us"] = percentile(latencies, 50)
        run["lat_p99_us"] = percentile(latencies, 99)

    run["ok"] = args.exit_code == 0 and run["tps"] is not None and not run["failed"]
    if not run["ok"]:
        # Keep the tail of pgbench's complaint; it names the protocol error, if any.
        run["error"] = "\n".join(text.strip().splitlines()[-5:])

    with open(args.runs, "a", encoding="utf-8") as f:
        f.write(json.dumps(run) + "\n")

    detail = f"{run['tps']:10.1f} tps" if run["ok"] else "     ERROR"
    if run["cpu_us_per_tx"] is not None:
        detail += f"  cpu {run['cpu_us_per_tx']:6.1f} µs/tx"
    if run["lat_p50_us"] is not None:
        detail += f"  p50 {run['lat_p50_us'] / 1000:.3f} ms  p99 {run['lat_p99_us'] / 1000:.3f} ms"
    print(
        f"  round {args.round} {args.mode:<8} c={args.clients:<2} {args.target:<12} {detail}",
        file=sys.stderr,
        flush=True,
    )
    if not run["ok"]:
        print("    " + run["error"].replace("\n", "\n    "), file=sys.stderr, flush=True)
    return 0


# --- summarize -----------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def diff(a, b):
    return a - b if a is not None and b is not None else None


def summarise(runs):
    """Per (mode, clients): each target's medians and the comparisons between them."""
    cases = []
    client_counts = sorted({r["clients"] for r in runs})
    for mode in MODES:
        for clients in client_counts:
            case_runs = [r for r in runs if r["mode"] == mode and r["clients"] == clients]
            if not case_runs:
                continue
            per_target = {}
            for target in TARGETS:
                mine = sorted(
                    (r for r in case_runs if r["target"] == target), key=lambda r: r["round"]
                )
                good = [r for r in mine if r["ok"]]
                per_target[target] = {
                    "rounds": len(mine),
                    "errors": len(mine) - len(good),
                    "tps_rounds": [r["tps"] if r["ok"] else None for r in mine],
                    "tps": median([r["tps"] for r in good]),
                    "cpu_us_per_tx": median([r["cpu_us_per_tx"] for r in good]),
                    "lat_p50_us": median([r["lat_p50_us"] for r in good]),
                    "lat_p99_us": median([r["lat_p99_us"] for r in good]),
                }
            d, b = per_target["direct"], per_target["pgbouncer"]
            vigils = {}
            for name in VIGILS:
                v = per_target[name]
                # Paired per-round ratios: the targets of one round ran back to back,
                # so these cancel slow drift in machine load; kept for the JSON reader.
                paired = [
                    ratio(v["tps_rounds"][i], b["tps_rounds"][i])
                    for i in range(min(len(b["tps_rounds"]), len(v["tps_rounds"])))
                ]
                vigils[name] = {
                    "vs_pgbouncer": ratio(v["tps"], b["tps"]),
                    "vs_direct": ratio(v["tps"], d["tps"]),
                    "vs_pgbouncer_per_round": paired,
                    "cpu_vs_pgbouncer": ratio(v["cpu_us_per_tx"], b["cpu_us_per_tx"]),
                }
                if clients == TARGET_CLIENTS:
                    r = vigils[name]["vs_pgbouncer"]
                    vigils[name]["target_pass"] = (
                        r is not None and r >= TARGET_RATIOS[name] and v["errors"] == 0
                    )
            case = {
                "mode": mode,
                "clients": clients,
                "targets": per_target,
                "vigils": vigils,
                "pgbouncer_vs_direct": ratio(b["tps"], d["tps"]),
                # What strict audit costs over the same Vigil without audit.
                "strict_vs_off": ratio(per_target["vigil-strict"]["tps"], per_target["vigil-policy"]["tps"]),
                "added_latency_us": {
                    t: {
                        "p50": diff(per_target[t]["lat_p50_us"], d["lat_p50_us"]),
                        "p99": diff(per_target[t]["lat_p99_us"], d["lat_p99_us"]),
                    }
                    for t in PROXIES
                },
            }
            cases.append(case)
    return cases


def fmt(value, spec, missing="—"):
    return missing if value is None else format(value, spec)


def times(value, width):
    return f"{fmt(value, '.3f') + '×':>{width}}"


def render(cases, meta, target):
    out = []
    out.append(
        f"Vigil vs PgBouncer vs direct — pgbench -S (select-only), scale {meta['scale']}, "
        f"{meta['rounds']} round(s) × {meta['duration_s']} s, medians across rounds"
    )
    out.append(
        f"host: {meta['nproc']} cores, {meta['postgres']}; {meta['pgbouncer']}; "
        f"vigil {meta['vigil_commit']}, workers = {meta.get('vigil_workers', 0)} (0: one per core)"
    )
    out.append("; ".join(f"{SHORT[v]} = {LABELS[v]}" for v in VIGILS))
    out.append("")
    out.append("Throughput (TPS)")
    header = f"{'mode':<9}{'clients':>7}" + "".join(f" {SHORT[t]:>10}" for t in TARGETS) + f" {'pgb/direct':>11}"
    out.append(header)
    out.append("-" * len(header))
    for c in cases:
        t = c["targets"]
        errors = sum(t[x]["errors"] for x in TARGETS)
        out.append(
            f"{c['mode']:<9}{c['clients']:>7}"
            + "".join(f" {fmt(t[x]['tps'], '10.0f'):>10}" for x in TARGETS)
            + f" {times(c['pgbouncer_vs_direct'], 11)}"
            + (f"  [{errors} failed run(s)]" if errors else "")
        )

    out.append("")
    out.append("TPS ratios of each Vigil (strict/off: what strict audit costs)")
    header = (
        f"{'mode':<9}{'clients':>7}"
        + "".join(f" {SHORT[v] + '/pgb':>14} {SHORT[v] + '/direct':>17}" for v in VIGILS)
        + f" {'strict/off':>13}   target"
    )
    out.append(header)
    out.append("-" * len(header))
    for c in cases:
        verdicts = [
            f"{SHORT[v]} {'PASS' if c['vigils'][v]['target_pass'] else 'FAIL'}"
            for v in VIGILS
            if "target_pass" in c["vigils"][v]
        ]
        line = (
            f"{c['mode']:<9}{c['clients']:>7}"
            + "".join(
                f" {times(c['vigils'][v]['vs_pgbouncer'], 14)} {times(c['vigils'][v]['vs_direct'], 17)}"
                for v in VIGILS
            )
            + f" {times(c['strict_vs_off'], 13)}   {', '.join(verdicts)}"
        )
        out.append(line.rstrip())

    lat_cases = [c for c in cases if c["targets"]["direct"]["lat_p50_us"] is not None]
    if lat_cases:
        out.append("")
        out.append("Latency at 1 client (ms; added = minus direct)")
        header = f"{'mode':<9} {'target':<38} {'p50':>7} {'p99':>7} {'+p50':>7} {'+p99':>7}"
        out.append(header)
        out.append("-" * len(header))
        ms = lambda us, spec="7.3f": fmt(None if us is None else us / 1000, spec)  # noqa: E731
        for c in lat_cases:
            t, a = c["targets"], c["added_latency_us"]
            for x in TARGETS:
                added = a.get(x, {"p50": None, "p99": None})
                line = (
                    f"{c['mode']:<9} {LABELS[x]:<38} {ms(t[x]['lat_p50_us']):>7} {ms(t[x]['lat_p99_us']):>7}"
                    f" {ms(added['p50'], '+7.3f') if x != 'direct' else '':>7}"
                    f" {ms(added['p99'], '+7.3f') if x != 'direct' else '':>7}"
                )
                out.append(line.rstrip())

    out.append("")
    out.append("Proxy CPU per transaction (µs of user+system time, whole process)")
    header = (
        f"{'mode':<9}{'clients':>7}"
        + "".join(f" {SHORT[p]:>10}" for p in PROXIES)
        + "".join(f" {SHORT[v] + '/pgb':>14}" for v in VIGILS)
    )
    out.append(header)
    out.append("-" * len(header))
    for c in cases:
        t = c["targets"]
        out.append(
            f"{c['mode']:<9}{c['clients']:>7}"
            + "".join(f" {fmt(t[p]['cpu_us_per_tx'], '10.1f'):>10}" for p in PROXIES)
            + "".join(f" {fmt(c['vigils'][v]['cpu_vs_pgbouncer'], '13.2f') + '×':>14}" for v in VIGILS)
        )

    out.append("")
    out.append(f"Target: {target['rule']}: {'PASS' if target['pass'] else 'FAIL'}")
    for v in VIGILS:
        per_mode = target["per_vigil"][v]
        out.append(f"  {LABELS[v]}: {'PASS' if per_mode and all(r['pass'] for r in per_mode.values()) else 'FAIL'}")
        for mode, r in per_mode.items():
            out.append(f"    {mode:<9} {SHORT[v]}/pgbouncer = {fmt(r['ratio'], '.3f')}  {'PASS' if r['pass'] else 'FAIL'}")
    return "\n".join(out)


def cmd_summarize(args):
    with open(args.runs, encoding="utf-8") as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        print("no runs recorded", file=sys.stderr)
        return 2
    meta = json.loads(args.meta)
    cases = summarise(runs)
    per_vigil = {
        v: {
            c["mode"]: {"ratio": c["vigils"][v]["vs_pgbouncer"], "pass": c["vigils"][v]["target_pass"]}
            for c in cases
            if "target_pass" in c["vigils"][v]
        }
        for v in VIGILS
    }
    target = {
        "rule": f"at {TARGET_CLIENTS} clients, TPS ≥ "
        + ", ".join(f"{TARGET_RATIOS[v]}× PgBouncer's for {LABELS[v]}" for v in VIGILS)
        + ", in every mode",
        "per_vigil": per_vigil,
        "pass": all(
            set(per_mode) == set(MODES) and all(r["pass"] for r in per_mode.values())
            for per_mode in per_vigil.values()
        ),
    }
    report = {"meta": meta, "target": target, "cases": cases, "runs": runs}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(render(cases, meta, target))
    failed_runs = sum(1 for r in runs if not r["ok"])
    if failed_runs:
        return 3
    return 1 if args.strict and not target["pass"] else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("record", help="append one pgbench run to the runs file")
    rec.add_argument("--runs", required=True)
    rec.add_argument("--output", required=True, help="pgbench's captured stdout+stderr")
    rec.add_argument("--exit-code", type=int, required=True)
    rec.add_argument("--round", type=int, required=True)
    rec.add_argument("--position", type=int, required=True, help="0-based slot of the target in this round")
    rec.add_argument("--mode", choices=MODES, required=True)
    rec.add_argument("--clients", type=int, required=True)
    rec.add_argument("--target", choices=TARGETS, required=True)
    rec.add_argument("--duration", type=int, required=True)
    rec.add_argument("--cpu-ticks", type=int, help="utime+stime delta of the proxy, in clock ticks")
    rec.add_argument("--clk-tck", type=int, default=100)
    rec.add_argument("--log-prefix", help="pgbench --log-prefix of this run")
    rec.set_defaults(func=cmd_record)

    summ = sub.add_parser("summarize", help="print the table and write the JSON report")
    summ.add_argument("--runs", required=True)
    summ.add_argument("--json", required=True)
    summ.add_argument("--meta", default="{}", help="JSON object of run settings")
    summ.add_argument("--strict", action="store_true", help="exit 1 when the target fails")
    summ.set_defaults(func=cmd_summarize)

    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
