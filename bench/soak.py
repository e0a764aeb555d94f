"""Soak test: many rounds of the quick preset with many clients; resident memory must stay flat.

A leak in the round loop (tensors kept per round, growing lists, autograd graphs held by
metrics) shows up as resident memory growing round over round; over 200 rounds even a few
hundred KB a round is plain to see. Resident memory is read after every round (psutil when
installed, else VmRSS from /proc/self/status) once garbage is collected and glibc has
returned freed pages; the table shows every ``--every``-th round with the count of live
tensors, and the slope is a least-squares fit over the rounds after the warm-up (the first
``--every`` rounds: allocator and kernel caches fill).

    .venv/bin/python bench/soak.py [--rounds 200] [--clients 20] [--observe none] [--every 10] [--device cpu]

Exits 1 when the slope is above ``--max-slope-kb`` KB per round.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from privfed.federated import build_config, run_training


def settle() -> None:
    """Collect garbage and hand freed heap pages back to the OS before a sample.

    Without it, resident memory swings by tens of MB as glibc keeps or returns freed
    blocks (each round frees ~100 MB of model copies), which hides a slow trend; after
    ``malloc_trim`` what stays resident is what is still allocated.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: sample as is
        pass


def live_tensors() -> int:
    """Tensors reachable from Python: a leak of per-round tensors makes this count climb."""
    with warnings.catch_warnings():  # isinstance() pokes lazy module attributes that warn
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def rss_mb() -> float:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return psutil.Process().memory_info().rss / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no psutil and no /proc/self/status: cannot read resident memory on this system")


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of memory (MB) against round number."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(r for r, _ in points) / n
    my = sum(m for _, m in points) / n
    var = sum((r - mx) ** 2 for r, _ in points)
    return sum((r - mx) * (m - my) for r, m in points) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--algorithm", default="fedavg")
    parser.add_argument("--observe", default="none", help="rounds whose traffic is saved (as privfed train --observe)")
    parser.add_argument("--every", type=int, default=10, help="sample resident memory every this many rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--max-slope-kb", type=float, default=64.0, help="fail above this growth, KB per round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = build_config({"preset": "quick", "algorithm": args.algorithm, "rounds": args.rounds,
                           "num_clients": args.clients, "observe": args.observe, "device": args.device})
    memory: list[tuple[int, float]] = []  # (round, MB) after every round
    table: list[tuple[int, float, float, int]] = []  # (round, MB, seconds since start, live tensors)
    start = time.perf_counter()

    def on_round(server_round: int) -> None:
        settle()
        memory.append((server_round, rss_mb()))
        if server_round == 1 or server_round % args.every == 0 or server_round == args.rounds:
            table.append((server_round, memory[-1][1], time.perf_counter() - start, live_tensors()))

    before = rss_mb()
    with tempfile.TemporaryDirectory(prefix="privfed-soak-") as tmp:
        out = args.out or Path(tmp) / "run"
        summary = run_training(config, out, progress=False, command="bench/soak.py", on_round=on_round)
    wall = time.perf_counter() - start

    print(f"soak: {args.algorithm}, quick preset, {args.clients} clients, {args.rounds} rounds, observe={args.observe}, "
          f"device={args.device}, threads={args.threads}, pid {os.getpid()}")
    print(f"resident memory before training: {before:.1f} MB")
    print(f"{'round':>6} {'RSS MB':>9} {'delta MB':>9} {'s/round':>8} {'tensors':>8}")
    previous = None
    for r, mb, t, tensors in table:
        delta = "" if previous is None else f"{mb - previous[1]:+9.2f}"
        per_round = "" if previous is None else f"{(t - previous[2]) / (r - previous[0]):8.3f}"
        print(f"{r:6d} {mb:9.1f} {delta:>9} {per_round:>8} {tensors:8d}")
        previous = (r, mb, t)
    steady = [(r, mb) for r, mb in memory if r > args.every] or memory
    kb = slope(steady) * 1024
    print(f"slope after warm-up (rounds > {args.every}, sampled every round): {kb:+.1f} KB/round over {len(steady)} rounds "
          f"(limit {args.max_slope_kb:.0f}); wall {wall:.1f} s; final test accuracy {summary.get('global_test_accuracy', summary.get('server_test_accuracy'))}")
    if kb > args.max_slope_kb:
        print("FAIL: resident memory grows round over round")
        return 1
    print("OK: resident memory is flat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
