"""Do DP models still classify? Accuracy, balanced accuracy and AUC against epsilon, one run each.

Trains FedAvg on the quick preset (the embedded data at 64x64) without DP and with
sample-level DP-SGD at each target epsilon, once with the preset's DP recipe (plain SGD,
momentum 0.9, lr 0.5, batch 64, per-layer clipping: config.PRESETS_UNDER_DP) and once with
the non-private optimiser (Adam 1e-3, batch 16), and prints one line per run. The study issue
asks for accuracy >= 0.85 at epsilon 8.

    .venv/bin/python bench/dp_utility.py [--epsilons 1,3,8] [--seeds 0,1] [--out /tmp/dp-utility]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def train(out: Path, extra: list[str]) -> dict:
    if not (out / "summary.json").is_file():
        subprocess.run([sys.executable, "-m", "privfed", "train", "--out", str(out), "--quiet", *extra], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", default="1,3,8")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--algorithm", default="fedavg")
    parser.add_argument("--out", type=Path, default=Path("/tmp/privfed-dp-utility"))
    args = parser.parse_args()
    recipes = {"preset DP recipe": [], "Adam (non-DP recipe)": ["--optimizer", "adam", "--lr", "0.001", "--batch-size", "16",
                                                                "--clipping", "flat"]}
    print(f"{'run':34} {'seed':>4} {'epsilon':>7} {'acc':>6} {'bal.acc':>7} {'AUC':>6} {'one-class share':>15} {'sec':>5}")
    for seed in [int(s) for s in args.seeds.split(",")]:
        rows = [("no DP", None, [])]
        for eps in [float(e) for e in args.epsilons.split(",")]:
            rows += [(name, eps, ["--dp", "--target-epsilon", str(eps), *extra]) for name, extra in recipes.items()]
        for name, eps, extra in rows:
            tag = f"{name.split()[0].lower()}-eps{eps}-seed{seed}" if eps else f"nodp-seed{seed}"
            s = train(args.out / args.algorithm / tag, ["--algorithm", args.algorithm, "--seed", str(seed), *extra])
            prefix = "global" if s.get("global_test_accuracy") is not None else "mean_client"
            print(f"{name:34} {seed:4d} {eps if eps else '-':>7} {s[f'{prefix}_test_accuracy']:6.3f} "
                  f"{s[f'{prefix}_test_balanced_accuracy']:7.3f} {s[f'{prefix}_test_auc']:6.3f} "
                  f"{s[f'{prefix}_test_majority_share']:15.3f} {s['wall_seconds']:5.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
