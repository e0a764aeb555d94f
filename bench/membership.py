"""Membership-inference benchmark: AUC and TPR at low FPR per attack and target, with and without DP.

Trains the quick preset on the real brain-MRI images (``../shared/data/brain-mri``; skipped
with a message when absent, or on the embedded subset with ``--data embedded``), once
without DP and once with sample-level DP-SGD, then runs every membership attack on both
targets and prints one row per (run, target, method, knowledge, model) with the seconds
each attack took (reference-model training reported apart).

    .venv/bin/python bench/membership.py --out /tmp/bench-membership [--max-members 200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = REPO.parent / "shared" / "data" / "brain-mri"


def train(out: Path, data: str, dp: bool, extra: list[str]) -> float:
    if (out / "summary.json").is_file():
        return 0.0
    command = [sys.executable, "-m", "privfed", "train", "--preset", "quick", "--data", data, "--out", str(out), *extra]
    if dp:
        command += ["--dp", "sample", "--target-epsilon", "4"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/privfed-bench-membership"))
    parser.add_argument("--data", default=str(REAL_DATA), help="image folder, or 'embedded'")
    parser.add_argument("--max-members", type=int, default=200)
    parser.add_argument("--reference-models", type=int, default=4)
    parser.add_argument("--clients", default="0", help="comma list of clients to attack")
    parser.add_argument("--no-dp-run", action="store_true", help="skip the DP run")
    parser.add_argument("--train-arg", action="append", default=[], help="extra argument for privfed train (repeatable)")
    args = parser.parse_args()
    if args.data != "embedded" and not Path(args.data).is_dir():
        print(f"skipped: {args.data} is absent (real brain-MRI images); pass --data embedded to bench on the bundled subset")
        return 0

    from attacks.membership.runner import MembershipOptions, run_membership_attacks
    from attacks.run_access import open_run

    runs = [("no-dp", False)] + ([] if args.no_dp_run else [("dp", True)])
    clients = [int(c) for c in args.clients.split(",")]
    print(f"{'run':6s} {'target':12s} {'method':14s} {'know':5s} {'model':9s} {'AUC':>6s} {'TPR@1%':>7s} {'TPR@.1%':>7s} "
          f"{'eps_lb':>6s} {'eps_cl':>6s} {'sec':>7s} {'ref_s':>6s}")
    for name, dp in runs:
        run_dir = args.out / name
        train_seconds = train(run_dir, args.data, dp, args.train_arg)
        view = open_run(run_dir)
        for target in view.supported_targets():
            options = MembershipOptions(
                target=target, clients=clients, max_members=args.max_members, reference_models=args.reference_models
            )
            path = run_membership_attacks(run_dir, options, progress=False)
            for r in json.loads(path.read_text())["results"]:
                claimed = "-" if r["epsilon_claimed"] is None else f"{r['epsilon_claimed']:.2f}"
                print(
                    f"{name:6s} {target:12s} {r['method']:14s} {r['knowledge']:5s} {r['model']:9s} {r['auc']:6.3f} "
                    f"{r['tpr_at_1pct_fpr']:7.3f} {r['tpr_at_01pct_fpr']:7.3f} {r['epsilon_lower_bound']:6.2f} {claimed:>6s} "
                    f"{r['seconds']:7.2f} {r['reference_seconds']:6.1f}",
                    flush=True,
                )
        if train_seconds:
            print(f"# {name}: training took {train_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
