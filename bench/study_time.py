"""How long the study takes, stage by stage, and what it answered: the `make demo` budget.

Runs `privfed compare` (the quick study unless told otherwise) in a fresh folder, or reads a
finished one with --from, then prints the wall seconds of each stage from its study.json,
the total against the 5-minute goal of `make demo` on 2 CPU cores, and the study's table:
per arm and attacker position, the strongest attack's gain over the null, identification
and membership AUC with their familywise intervals, beside the arms' accuracies.

    .venv/bin/python bench/study_time.py [--from runs/compare-...] [-- extra compare options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GOAL_SECONDS = 300


def _interval(ci) -> str:
    return f"[{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "(no interval)"


def print_table(study: Path) -> None:
    from reports.load import load_run
    from reports.summary import summarize

    runs = [load_run(p) for p in sorted(study.iterdir()) if (p / "config.json").is_file()]
    summary = summarize(runs, [r.path.name for r in runs])
    print(f"\n{'arm':22} {'accuracy':>8} {'bal.acc':>7} {'AUC':>5}  position     inversion (gain dB, ident.)              membership AUC")
    for arm in summary.everything:
        u = arm.utility
        head = f"{arm.label:22} {u.accuracy or 0:8.3f} {u.balanced_accuracy or 0:7.3f} {u.auc or 0:5.2f}"
        if arm.baseline:
            print(head + "  (baseline: not attacked)")
            continue
        for position, findings in arm.findings.items():
            inv, mem = findings.get("inversion"), findings.get("membership")
            inv_text = (f"{inv.method} ({inv.knowledge}) {inv.value:+.1f} {_interval(inv.ci)}, {100 * (inv.ident or 0):.0f}%"
                        + (" LEAKS" if inv.leaks else "")) if inv else "not measured"
            mem_text = (f"{mem.method} ({mem.knowledge}) {mem.value:.2f} [{mem.ci[0]:.2f}, {mem.ci[1]:.2f}]"
                        + (" LEAKS" if mem.leaks else "")) if mem and mem.ci else "not measured"
            print(f"{head}  {position:11}  {inv_text:42} {mem_text}")
            head = " " * len(head)
    print("\nanswer:")
    for _, sentence in summary.answer:
        print(" -", sentence)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="study", type=Path, help="a finished study folder (skip running compare)")
    parser.add_argument("extra", nargs="*", help="options passed to privfed compare")
    args = parser.parse_args()
    study = args.study
    if study is None:
        study = Path(tempfile.mkdtemp(prefix="privfed-study-")) / "study"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "privfed", "compare", "--out", str(study), "--quiet", *args.extra],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        print(f"privfed compare {' '.join(args.extra)}: {time.perf_counter() - start:.0f} s wall, process start included")
    timing = json.loads((study / "study.json").read_text())
    for stage in timing["stages"]:
        print(f"  {stage['stage']:55} {stage['seconds']:7.1f} s")
    total = timing["total_seconds"]
    print(f"  {'total':55} {total:7.1f} s = {total / 60:.1f} min (make demo goal: {GOAL_SECONDS / 60:.0f} min on 2 CPU cores; "
          f"{'met' if total <= GOAL_SECONDS else 'NOT met'})")
    print_table(study)
    return 0


if __name__ == "__main__":
    sys.exit(main())
