"""Benchmark the gradient-inversion attacks on real brain-MRI images.

Usage: .venv/bin/python bench/inversion.py [--size 64] [--batches 1,4,8] [--iterations 200]
Needs ../shared/data/brain-mri (skips with a message otherwise). For each batch size it
replays one client SGD step of a freshly initialised `simple` model (round 1, where the
server's knowledge of the weights is exact) on that many images, attacks it, and prints
PSNR/SSIM (Hungarian-matched), label accuracy, seconds and iterations per second. Full-model
attacks see every tensor; shared-layer attacks see only `shared`, with the client's real
backbone (knowledge full, = init in round 1) or a surrogate backbone (knowledge none: the
server's own, differently initialised model).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from attacks.inversion import INVERSION_METHODS, ClientStep, ImagePrior, Observation
from attacks.inversion.runner import _feature_error
from attacks.inversion.simulate import client_update
from attacks.metrics import score_reconstructions
from privfed.models import build_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-mri"
FULL = ("analytic", "inverting-gradients", "idlg")
SHARED = ("shared-analytic", "shared-gradient-matching")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--methods", default=",".join(FULL + SHARED))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the brain-MRI images are needed for this benchmark)")
        return 0
    torch.set_num_threads(args.threads)
    from privfed.data import open_dataset

    dataset = open_dataset(DATA, args.size)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(dataset), generator=generator).tolist()
    server_ids = [dataset.ids[i] for i in order[:32]]
    server_images, _ = dataset.load(server_ids)
    torch.manual_seed(0)
    client_model = build_model("simple", image_size=args.size, shared_width=1024).eval()
    torch.manual_seed(1)
    server_model = build_model("simple", image_size=args.size, shared_width=1024).eval()
    print(f"# simple at {args.size}x{args.size}, one SGD step (lr 0.01), {args.iterations} iterations, {torch.get_num_threads()} thread(s)")
    print(f"{'method':26} {'target':12} {'knowledge':9} {'batch':>5} {'PSNR':>6} {'max':>6} {'SSIM':>5} {'label':>5} {'feat.err':>8} {'sec':>6} {'it/s':>6} {'found':>5}")
    for batch in [int(b) for b in args.batches.split(",")]:
        ids = [dataset.ids[i] for i in order[32 : 32 + batch]]
        images, labels = dataset.load(ids)
        step = ClientStep(lr=0.01, local_steps=1, batch_size=batch)
        names = [n for n, _ in client_model.named_parameters()]
        update = client_update(client_model, images, labels, step, names)
        baseline = score_reconstructions(server_images.mean(0, keepdim=True).expand(batch, -1, -1, -1), images, ids, labels.tolist())
        print(f"{'(server mean image, no attack)':26} {'-':12} {'-':9} {batch:5d} {np.mean([r.psnr for r in baseline]):6.2f} "
              f"{np.max([r.psnr for r in baseline]):6.2f} {np.mean([r.ssim for r in baseline]):5.3f}", flush=True)
        for method in args.methods.split(","):
            target = "full-model" if method in FULL else "shared-layer"
            levels = [("full", client_model)] + ([("none", server_model)] if target == "shared-layer" else [])
            for knowledge, model in levels:
                seen = update if target == "full-model" else {k: update[k] for k in ("shared.weight", "shared.bias")}
                if target == "shared-layer":  # knowledge none: the server's own model carrying the client's shared layer
                    model = build_model("simple", image_size=args.size, shared_width=1024).eval()
                    model.load_state_dict((client_model if knowledge == "full" else server_model).state_dict())
                    model.shared.load_state_dict(client_model.shared.state_dict())
                prior = ImagePrior.from_server_images(server_images, model)
                observation = Observation(model, seen, step, batch, args.size, 2, target=target, prior=prior)
                start = time.perf_counter()
                rec = INVERSION_METHODS.get(method)(iterations=args.iterations).reconstruct(observation)
                seconds = time.perf_counter() - start
                rows = score_reconstructions(rec.images, images, ids, labels.tolist(), rec.labels.tolist())
                psnr = np.minimum([r.psnr for r in rows], 100.0)
                error = "-"
                if rec.features is not None:
                    with torch.no_grad():
                        error = f"{_feature_error(rec.features, client_model.shared_input(images)):.2e}"
                accuracy = np.mean([r.predicted_label == r.label for r in rows])
                print(f"{method:26} {target:12} {knowledge:9} {batch:5d} {psnr.mean():6.2f} {psnr.max():6.2f} "
                      f"{np.mean([r.ssim for r in rows]):5.3f} {accuracy:5.2f} {error:>8} {seconds:6.1f} {rec.iterations / seconds:6.1f} {rec.stats.get('clusters_found', '-')!s:>5}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
