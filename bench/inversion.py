"""Benchmark the gradient-inversion attacks on real brain-MRI images, scored like the runner.

Usage:
    .venv/bin/python bench/inversion.py [--sizes 64,224] [--batches 1,4,8] [--images 20]
        [--methods layerwise,analytic,inverting-gradients] [--shared] [--against breaching]

Needs ../shared/data/brain-mri (skips with a message otherwise). Per size, batch and method
it replays one plain SGD step (lr 0.01) of a freshly initialised `simple` model (round 1,
knowledge init: the server initialised the client, so it knows the weights exactly) on
``--images`` held-out images, ``batch`` at a time, attacks every update and prints:

* PSNR and SSIM of the Hungarian-matched reconstructions;
* ``gain``: PSNR minus the null attack's (the stronger of the server's mean image and random
  server images, matched the same way), with its 95% interval, exactly as the runner scores
  rows (:func:`attacks.inversion.runner.leakage_fields`);
* identification top-1 among the attacked images plus as many other held-out images, and chance;
* with ``--per-slice``, each slice's id, PSNR, both null guesses' PSNR and its identification rank;
* where the guess used the convolutional decoder: whether it was kept, its held-out gain and
  the epoch whose weights were kept (``conv.kept``, ``conv.held``, ``conv.best`` in the notes);
* seconds per attacked update (all in one process, ``--threads`` threads) and the budget
  (``iterations``) each method ran.

``--shared`` adds the shared-layer target (only ``shared`` seen, knowledge init) with the
recovered shared-input error and what the fc algebra pins down. ``--against breaching``
also runs breaching 0.1.2's Inverting Gradients (``pip install breaching==0.1.2``, the
``bench`` extra; the package never imports it) on the identical model, update and images,
given the true labels and ``--breaching-iterations`` steps, and prints it in the same table.
The server's images (256 unless ``--server-images``; they fit the priors and the learned
posterior) never overlap the attacked or pool images.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from attacks.inversion import INVERSION_METHODS, ClientStep, ImagePrior, Observation
from attacks.inversion.runner import _feature_error, _merge, _score, leakage_fields
from attacks.inversion.simulate import client_update
from privfed.models import build_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain-mri"
FULL = ("layerwise", "analytic", "inverting-gradients")
SHARED = ("shared-subspace", "shared-analytic")
SERVER_IMAGES = 256
SHARED_NAMES = ("shared.weight", "shared.bias")


class _Attr(dict):
    """A dict that breaching's code can also read as attributes (its metadata objects)."""

    __getattr__ = dict.__getitem__


def breaching_attack(model, update: dict, labels: torch.Tensor, step: ClientStep, size: int, iterations: int):
    """breaching 0.1.2's Inverting Gradients on our update; returns images in [0, 1]."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import breaching  # bench-only dependency: the package itself never imports it

        cfg = breaching.get_attack_config("invertinggradients", overrides=[f"optim.max_iterations={iterations}",
                                                                          f"optim.callback={iterations + 1}"])
    attacker = breaching.attacks.prepare_attack(model, torch.nn.CrossEntropyLoss(), cfg,
                                                dict(device=torch.device("cpu"), dtype=torch.float))
    names = [n for n, _ in model.named_parameters()]
    metadata = _Attr(shape=(3, size, size), modality="vision", task="classification", classes=2,
                     mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    payload = [dict(parameters=[p.detach() for p in model.parameters()], buffers=None, metadata=metadata)]
    shared = [dict(gradients=[-update[n] / step.lr for n in names], buffers=None,
                   metadata=dict(num_data_points=len(labels), labels=labels.clone(), local_hyperparams=None))]
    with contextlib.redirect_stdout(io.StringIO()):  # breaching prints its progress
        reconstruction, _ = attacker.reconstruct(payload, shared, {}, dryrun=False)
    return reconstruction["data"].detach().clamp(0, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--images", type=int, default=20, help="attacked images per size and batch")
    parser.add_argument("--methods", default=",".join(FULL))
    parser.add_argument("--iterations", type=int, default=None, help="default: each method's own")
    parser.add_argument("--shared", action="store_true", help="also attack the shared layer alone")
    parser.add_argument("--against", choices=["breaching"], default=None)
    parser.add_argument("--breaching-iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--per-slice", action="store_true",
                        help="also print each attacked slice's PSNR and its null's, to compare slice sets")
    parser.add_argument("--server-images", type=int, default=SERVER_IMAGES,
                        help="server images the priors are fitted on (the runner uses up to 1,200)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the brain-MRI images are needed for this benchmark)")
        return 0
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m] + (list(SHARED) if args.shared else [])
    if args.against:
        methods.append("breaching-ig")
    print(f"# simple, freshly initialised (round 1, knowledge init), one plain SGD step lr 0.01; {args.images} images per row; "
          f"{torch.get_num_threads()} thread(s)")
    print(f"{'size':>4} {'batch':>5} {'method':22} {'PSNR':>6} {'null':>6} {'gain [95% interval]':>22} {'SSIM':>5} "
          f"{'ident':>5} {'chance':>6} {'sec':>6} {'iters':>6}  notes")
    for size in [int(s) for s in args.sizes.split(",")]:
        for batch in [int(b) for b in args.batches.split(",")]:
            _bench_case(size, batch, methods, args)
    return 0


def _bench_case(size: int, batch: int, methods: list[str], args) -> None:
    from privfed.data import open_dataset

    dataset = open_dataset(DATA, size)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).tolist()
    server_images, _ = dataset.load([dataset.ids[i] for i in order[:args.server_images]])
    n = (args.images // batch) * batch
    attacked = [dataset.ids[i] for i in order[-n:]]
    others = [dataset.ids[i] for i in order[-2 * n : -n]]
    pool_ids = attacked + others
    pool, _ = dataset.load(pool_ids)
    torch.manual_seed(0)
    model = build_model("simple", image_size=size, shared_width=1024).eval()
    prior = ImagePrior.from_server_images(server_images, model)
    step = ClientStep(lr=0.01, local_steps=1, batch_size=batch)
    names = [name for name, _ in model.named_parameters()]
    generator = torch.Generator().manual_seed(1)
    for method in methods:
        target = "shared-layer" if method in SHARED else "full-model"
        parts, seconds, iterations, notes = [], [], 0, []
        for trial in range(n // batch):
            ids = attacked[trial * batch : (trial + 1) * batch]
            images, labels = dataset.load(ids)
            update = client_update(model, images, labels, step, names)
            seen = update if target == "full-model" else {k: update[k] for k in SHARED_NAMES}
            start = time.perf_counter()
            if method == "breaching-ig":
                rec_images, predicted, iterations = breaching_attack(model, update, labels, step, size, args.breaching_iterations), labels, args.breaching_iterations
            else:
                observation = Observation(model, seen, step, batch, size, 2, target=target, prior=prior)
                rec = INVERSION_METHODS.get(method)(iterations=args.iterations, seed=trial).reconstruct(observation)
                rec_images, predicted, iterations = rec.images, rec.labels, rec.iterations
                if rec.features is not None:
                    with torch.no_grad():
                        notes.append(("feat.err", _feature_error(rec.features, model.shared_input(images))))
                        fc_true = torch.flatten(model.backbone(images), 1)
                    if "fc_inputs" in rec.stats and batch == 1:
                        found = rec.stats["fc_inputs"]
                        notes.append(("fc.err", float((found - fc_true).norm() / fc_true.norm())))
                        notes.append(("fc.eqs", rec.stats["fc_input_rank"][0] / rec.stats["fc_input_unknowns"]))
                conv = ((rec.stats.get("posterior") or {}).get("conv_decoder")
                        if isinstance(rec.stats.get("posterior"), dict) else None)
                if conv:  # the network behind the guess: kept or not, its held-out gain and kept epoch
                    notes += [("conv.kept", float(conv["kept"])), ("conv.held", conv["held_out_gain_db"] or float("nan")),
                              ("conv.best", conv["best_epoch"] or 0)]
                if "clusters_found" in rec.stats and rec.stats["clusters_found"] is not None:
                    notes.append(("found", rec.stats["clusters_found"] / batch))
            seconds.append(time.perf_counter() - start)
            pick = torch.randint(0, len(server_images), (batch,), generator=generator)
            parts.append(_score(rec_images.cpu(), images, ids, labels.tolist(), predicted.tolist(), server_images[pick],
                                prior.mean_image, pool_ids, pool))
        merged = _merge(parts, pool_ids, pool)
        fields = leakage_fields(merged, len(pool_ids))
        ci = fields["gain_db_ci"] or [float("nan")] * 2
        summary = {}
        for key, value in notes:
            summary.setdefault(key, []).append(value)
        note = " ".join(f"{k} {np.mean(v):.2g}" for k, v in summary.items())
        print(f"{size:4d} {batch:5d} {method:22} {np.mean(merged.psnr):6.2f} {fields['null_psnr_mean']:6.2f} "
              f"{fields['gain_db']:+6.2f} [{ci[0]:+6.2f},{ci[1]:+6.2f}] {np.mean([r['ssim'] for r in merged.rows]):5.3f} "
              f"{fields['identification_top1']:5.2f} {fields['identification_chance']:6.3f} {np.mean(seconds):6.1f} {iterations:6d}  {note}",
              flush=True)
        if args.per_slice:  # both null guesses: the gain above takes the one stronger on average
            mean_nulls = merged.null_mean_psnr or [float("nan")] * len(merged.rows)
            for row, by_mean, by_server in zip(merged.rows, mean_nulls, merged.null_sample_psnr):
                print(f"     {row['sample_id']:40} PSNR {row['psnr']:6.2f}  null: mean image {by_mean:6.2f}, "
                      f"server image {by_server:6.2f}  rank {row['identification_rank']}")


if __name__ == "__main__":
    sys.exit(main())
