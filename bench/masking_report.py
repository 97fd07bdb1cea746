#!/usr/bin/env python3
"""Records and summarises the runs of bench/masking.sh (standard library only).

Two subcommands:

  record    append one timed full read (target, case, wall time, proxy CPU ticks)
            as one JSON line to the runs file, print a progress line
  summarize read the runs file, print the comparison table, write the JSON report

Numbers are medians across rounds. Targets: PgBouncer; "vigil-off", a Vigil with no
[masking] section; "vigil-exempt", masking configured but the identity exempt; and
"vigil-mask", one column of five masked for the identity. Audit is off in all Vigils.
"""

import argparse
import json
import os
import statistics
import sys

TARGETS = ("pgbouncer", "vigil-off", "vigil-exempt", "vigil-mask")
LABELS = {
    "pgbouncer": "pgbouncer (session pooling)",
    "vigil-off": "vigil, no [masking]",
    "vigil-exempt": "vigil, masking configured, identity exempt",
    "vigil-mask": "vigil, masking on (ssn keep_last 4)",
}
SHORT = {"pgbouncer": "pgbouncer", "vigil-off": "v-off", "vigil-exempt": "v-exempt", "vigil-mask": "v-mask"}
CASES = ("select-text", "copy-binary")
# Ratios reported per case: (name, numerator, denominator).
RATIOS = (
    ("mask/off", "vigil-mask", "vigil-off"),
    ("mask/pgb", "vigil-mask", "pgbouncer"),
    ("off/pgb", "vigil-off", "pgbouncer"),
    ("exempt/off", "vigil-exempt", "vigil-off"),
)
# The target: masking on reads at >= this x the rows/s of masking off, every case.
TARGET_RATIO = 0.90


# --- record --------------------------------------------------------------------------


def cmd_record(args):
    with open(args.stderr, encoding="utf-8", errors="replace") as f:
        errors = f.read().strip()
    run = {
        "round": args.round,
        "position": args.position,
        "case": args.case,
        "target": args.target,
        "rows": args.rows,
        "seconds": args.seconds,
        "exit_code": args.exit_code,
        "cpu_ticks": args.cpu_ticks,
        "cpu_s": args.cpu_ticks / args.clk_tck,
    }
    # psql -q prints nothing on success; anything on stderr is a failure worth seeing.
    run["ok"] = args.exit_code == 0 and not errors and args.seconds > 0
    run["rows_per_s"] = args.rows / args.seconds if run["ok"] else None
    # Proxy CPU per million rows, in seconds: comparable across NROWS.
    run["cpu_s_per_mrow"] = run["cpu_s"] * 1e6 / args.rows if run["ok"] else None
    if not run["ok"]:
        run["error"] = "\n".join(errors.splitlines()[-5:]) or f"exit code {args.exit_code}"

    with open(args.runs, "a", encoding="utf-8") as f:
        f.write(json.dumps(run) + "\n")

    detail = f"{run['rows_per_s']:11.0f} rows/s  {args.seconds:6.2f} s" if run["ok"] else "      ERROR"
    detail += f"  proxy cpu {run['cpu_s']:5.2f} s"
    print(f"  round {args.round} {args.case:<12} {args.target:<13} {detail}", file=sys.stderr, flush=True)
    if not run["ok"]:
        print("    " + run["error"].replace("\n", "\n    "), file=sys.stderr, flush=True)
    return 0


# --- summarize -----------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def summarise(runs):
    """Per case: each target's medians and the ratios between them."""
    cases = []
    for kase in CASES:
        case_runs = [r for r in runs if r["case"] == kase]
        if not case_runs:
            continue
        per_target = {}
        for target in TARGETS:
            mine = sorted((r for r in case_runs if r["target"] == target), key=lambda r: r["round"])
            good = [r for r in mine if r["ok"]]
            per_target[target] = {
                "rounds": len(mine),
                "errors": len(mine) - len(good),
                "rows_per_s_rounds": [r["rows_per_s"] for r in mine],
                "rows_per_s": median([r["rows_per_s"] for r in good]),
                "seconds": median([r["seconds"] for r in good]),
                "cpu_s": median([r["cpu_s"] for r in good]),
                "cpu_s_per_mrow": median([r["cpu_s_per_mrow"] for r in good]),
            }
        ratios = {}
        for name, a, b in RATIOS:
            ta, tb = per_target[a], per_target[b]
            # Paired per-round ratios: the targets of one round ran back to back, so
            # these cancel slow drift in machine load; kept for the JSON reader.
            paired = [
                ratio(x, y) for x, y in zip(ta["rows_per_s_rounds"], tb["rows_per_s_rounds"])
            ]
            ratios[name] = {
                "rows_per_s": ratio(ta["rows_per_s"], tb["rows_per_s"]),
                "per_round": paired,
                "per_round_median": median(paired),
                "cpu": ratio(ta["cpu_s"], tb["cpu_s"]),
            }
        r = ratios["mask/off"]["rows_per_s"]
        cases.append(
            {
                "case": kase,
                "targets": per_target,
                "ratios": ratios,
                "target_pass": r is not None
                and r >= TARGET_RATIO
                and per_target["vigil-mask"]["errors"] == 0
                and per_target["vigil-off"]["errors"] == 0,
            }
        )
    return cases


def fmt(value, spec, missing="—"):
    return missing if value is None else format(value, spec)


def render(cases, meta, target):
    out = []
    out.append(
        f"Bulk read through masking — {meta['rows']:,} rows "
        f"({meta['table_bytes'] / 1e6:.0f} MB table), {meta['rounds']} round(s), medians across rounds"
    )
    out.append(
        f"host: {meta['nproc']} cores, load {meta['load1_before']:.2f} before / {meta['load1_after']:.2f} after;"
        f" {meta['postgres']}; {meta['pgbouncer']}; vigil {meta['vigil_commit']}"
    )
    out.append("; ".join(f"{SHORT[t]} = {LABELS[t]}" for t in TARGETS))
    out.append("")
    out.append("Throughput (rows/s)")
    header = f"{'case':<13}" + "".join(f" {SHORT[t]:>10}" for t in TARGETS)
    out.append(header)
    out.append("-" * len(header))
    for c in cases:
        t = c["targets"]
        errors = sum(t[x]["errors"] for x in TARGETS)
        out.append(
            f"{c['case']:<13}"
            + "".join(f" {fmt(t[x]['rows_per_s'], '10.0f'):>10}" for x in TARGETS)
            + (f"  [{errors} failed run(s)]" if errors else "")
        )

    out.append("")
    out.append(f"Ratios of rows/s (target: mask/off ≥ {TARGET_RATIO:.2f} in every case)")
    header = f"{'case':<13}" + "".join(f" {name:>11}" for name, _, _ in RATIOS) + "   target"
    out.append(header)
    out.append("-" * len(header))
    for c in cases:
        out.append(
            f"{c['case']:<13}"
            + "".join(f" {fmt(c['ratios'][name]['rows_per_s'], '10.3f') + '×':>11}" for name, _, _ in RATIOS)
            + f"   {'PASS' if c['target_pass'] else 'FAIL'}"
        )

    out.append("")
    out.append("Proxy CPU per run (s of user+system time, whole process)")
    header = f"{'case':<13}" + "".join(f" {SHORT[t]:>10}" for t in TARGETS) + f" {'mask/off':>9}"
    out.append(header)
    out.append("-" * len(header))
    for c in cases:
        t = c["targets"]
        out.append(
            f"{c['case']:<13}"
            + "".join(f" {fmt(t[x]['cpu_s'], '10.2f'):>10}" for x in TARGETS)
            + f" {fmt(c['ratios']['mask/off']['cpu'], '8.2f') + '×':>9}"
        )

    out.append("")
    out.append(f"Target: {target['rule']}: {'PASS' if target['pass'] else 'FAIL'}")
    return "\n".join(out)


def cmd_summarize(args):
    with open(args.runs, encoding="utf-8") as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        print("no runs recorded", file=sys.stderr)
        return 2
    meta = json.loads(args.meta)
    cases = summarise(runs)
    target = {
        "rule": f"masking on reads ≥ {TARGET_RATIO}× the rows/s of masking off, in every case",
        "per_case": {c["case"]: {"ratio": c["ratios"]["mask/off"]["rows_per_s"], "pass": c["target_pass"]} for c in cases},
        "pass": {c["case"] for c in cases} == set(CASES) and all(c["target_pass"] for c in cases),
    }
    report = {"meta": meta, "target": target, "cases": cases, "runs": runs}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(render(cases, meta, target))
    if any(not r["ok"] for r in runs):
        return 3
    return 1 if args.strict and not target["pass"] else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("record", help="append one timed read to the runs file")
    rec.add_argument("--runs", required=True)
    rec.add_argument("--stderr", required=True, help="psql's captured stderr")
    rec.add_argument("--exit-code", type=int, required=True)
    rec.add_argument("--round", type=int, required=True)
    rec.add_argument("--position", type=int, required=True, help="0-based slot of the target in this round")
    rec.add_argument("--case", choices=CASES, required=True)
    rec.add_argument("--target", choices=TARGETS, required=True)
    rec.add_argument("--rows", type=int, required=True)
    rec.add_argument("--seconds", type=float, required=True, help="wall time of the client, connect to exit")
    rec.add_argument("--cpu-ticks", type=int, required=True, help="utime+stime delta of the proxy, in clock ticks")
    rec.add_argument("--clk-tck", type=int, default=100)
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
